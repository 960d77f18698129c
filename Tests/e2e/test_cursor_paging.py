"""RFC 9865 cursor paging: every user once, the pagination capability, invalid, foreign and
expired cursors, a count beyond the page size, imports side by side with their own cursors,
and changes behind a running import."""
import base64
import concurrent.futures
import time

import pytest
import requests

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def decode(cursor):
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def encode(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def cursor_import(s, base, count, **params):
    """Every resource by cursor; the pages' userNames."""
    pages, cursor = [], ""
    while True:
        body = s.get(f"{base}/Users", params={"cursor": cursor, "count": count, **params}).json()
        assert "startIndex" not in body, body
        pages.append([u["userName"] for u in body["Resources"]])
        if "nextCursor" not in body:
            return pages, body
        cursor = body["nextCursor"]


@pytest.fixture
def mem(make_agent):
    a = make_agent({"mem": {"connector": "memory", "auth": {"type": "none"}}}).start()
    s = requests.Session()
    base = a.base("mem")
    for i in range(25):
        assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"user{i:02}", "title": "odd" if i % 2 else "even"}).status_code == 201
    return s, base


def test_a_cursor_import_reads_every_user_once(mem):
    s, base = mem
    pages, last = cursor_import(s, base, 10)
    assert [len(p) for p in pages] == [10, 10, 5]
    names = [n for p in pages for n in p]
    assert sorted(names) == [f"user{i:02}" for i in range(25)] and len(set(names)) == 25
    assert last["totalResults"] == 25 and last["itemsPerPage"] == 5 and "previousCursor" in last
    # previousCursor goes back a page.
    second = s.get(f"{base}/Users", params={"cursor": "", "count": 10}).json()
    second = s.get(f"{base}/Users", params={"cursor": second["nextCursor"], "count": 10}).json()
    first_again = s.get(f"{base}/Users", params={"cursor": second["previousCursor"], "count": 10}).json()
    assert [u["userName"] for u in first_again["Resources"]] == pages[0]
    # The same by POST .search, and index paging is unchanged.
    body = s.post(f"{base}/Users/.search", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "cursor": "", "count": 20}).json()
    assert len(body["Resources"]) == 20 and body["nextCursor"]
    index = s.get(f"{base}/Users", params={"startIndex": 11, "count": 10}).json()
    assert index["startIndex"] == 11 and "nextCursor" not in index


def test_the_pagination_capability(mem):
    s, base = mem
    pagination = s.get(f"{base}/ServiceProviderConfig").json()["pagination"]
    assert pagination["cursor"] is True and pagination["index"] is True and pagination["defaultPaginationMethod"] == "index"
    assert pagination["cursorTimeout"] == 600 and pagination["maxPageSize"] >= pagination["defaultPageSize"] > 0


def test_bad_cursors_are_400_with_the_rfc_types(mem):
    s, base = mem
    first = s.get(f"{base}/Users", params={"cursor": "", "count": 5}).json()
    start, digest, issued = decode(first["nextCursor"]).split(".")

    def error(**params):
        r = s.get(f"{base}/Users", params=params)
        assert r.status_code == 400, r.text
        return r.json()["scimType"]

    assert error(cursor="not a cursor!") == "invalidCursor"
    assert error(cursor=encode("x.y")) == "invalidCursor"
    # A cursor of another query (another filter) is refused rather than paging the wrong list.
    assert error(cursor=first["nextCursor"], filter='title eq "odd"') == "invalidCursor"
    # Older than cursorTimeout: expired.
    assert error(cursor=encode(f"{start}.{digest}.{int(time.time()) - 601}")) == "expiredCursor"
    assert error(cursor="", count=100000) == "invalidCount"
    assert error(cursor="", startIndex=3) == "invalidValue"
    # A cursor within its time still works.
    assert s.get(f"{base}/Users", params={"cursor": encode(f"{start}.{digest}.{int(time.time()) - 500}"), "count": 5}).status_code == 200


def test_imports_side_by_side_keep_their_own_cursors(mem):
    s, base = mem

    def run(title):
        with requests.Session() as own:
            pages, _ = cursor_import(own, base, 3, filter=f'title eq "{title}"')
            return sorted(n for p in pages for n in p)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        odd, even, odd2, even2 = pool.map(run, ["odd", "even", "odd", "even"])
    assert odd == odd2 == [f"user{i:02}" for i in range(1, 25, 2)]
    assert even == even2 == [f"user{i:02}" for i in range(0, 25, 2)]


def test_users_changed_behind_a_mysql_cursor_import_are_not_skipped_or_repeated(make_agent, mariadb):
    from test_import_scale import fill, scratch_database
    apps = {"db": scratch_database(mariadb, "cursor_changes")}
    a = make_agent(apps, plugins=("mysql.so",)).start()
    try:
        from conftest import wait_for
        assert wait_for(lambda: requests.get(a.base("db") + "/Users?count=0", timeout=10).status_code == 200)
        fill(mariadb, "cursor_changes", 3000)
        seen, cursor, page = [], "", 0
        while True:
            body = requests.get(a.base("db") + "/Users", params={"cursor": cursor, "count": 1000}, timeout=60).json()
            seen += [u["id"] for u in body["Resources"]]
            page += 1
            if page == 1:
                mariadb.root_sql("DELETE FROM cursor_changes.users WHERE id = 'u-000000000010'")
            if page == 2:
                mariadb.root_sql("INSERT INTO cursor_changes.users (id, userName, active, created, lastModified) "
                                 "VALUES ('u-000000000500a', 'added.behind', 1, NOW(3), NOW(3))")
            if "nextCursor" not in body:
                break
            cursor = body["nextCursor"]
        assert seen == [f"u-{i:012d}" for i in range(1, 3001)]
    finally:
        mariadb.root_sql("DROP DATABASE IF EXISTS cursor_changes")


def test_a_remote_that_pages_by_cursor_gets_its_own_cursors_passed_through(make_agent):
    """A remote app whose server pages by cursor (another agent: it advertises
    pagination.cursor) is imported by its own cursors, which ride inside the agent's."""
    server = make_agent({"mem": {"connector": "memory", "auth": {"type": "none"}}}).start()
    s = requests.Session()
    for i in range(25):
        s.post(server.base("mem") + "/Users", json={"schemas": [USER], "userName": f"r{i:02}"})
    front = make_agent({"far": {"remote": {"url": server.base("mem")}, "auth": {"type": "none"}}}).start()
    pages, last = cursor_import(s, front.base("far"), 10)
    assert [len(p) for p in pages] == [10, 10, 5] and sorted(n for p in pages for n in p) == [f"r{i:02}" for i in range(25)]
    # The server was asked by cursor: the agent's cursor carries the server's own.
    first = s.get(front.base("far") + "/Users", params={"cursor": "", "count": 10}).json()
    inner = decode(first["nextCursor"]).split(".", 3)[3]
    assert decode(inner).split(".")[0] == "11"  # the server's own cursor, for its 11th user
    # An index import of the same app is unchanged.
    assert s.get(front.base("far") + "/Users", params={"startIndex": 21, "count": 10}).json()["itemsPerPage"] == 5
