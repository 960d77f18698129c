"""The mysql connector against a real MariaDB: the Okta flow checked with SQL, a legacy mapping,
literal filter values, compliance, TLS and socket connections, and a MariaDB restart in the
middle of traffic."""
import concurrent.futures
import datetime
import re
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import filter_cases
from conftest import creates_across_a_restart, session_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def db_agent(make_agent, mariadb):
    mariadb.empty_database()
    apps = {"db": {"connector": "mysql", "settings": mariadb.settings(createSchema=True), "auth": {"type": "none"}}}
    return make_agent(apps, plugins=("mysql.so",)).start()


def test_okta_flow_lands_in_the_tables(db_agent, mariadb):
    okta_flow_in_tables(requests.Session(), db_agent.base("db"), mariadb)


def okta_flow_in_tables(s, base, mariadb):
    """Okta's provisioning flow against an empty mysql app at `base`, each step read back with SQL."""
    assert s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen@example.com"'}).json()["totalResults"] == 0
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen"},
                                      "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}], "active": True,
                                      "password": "t1meMa$heen", "nickName": "Babs"})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    row = mariadb.query("SELECT userName, givenName, familyName, email, active, password, attributes FROM users WHERE id = %s", uid)[0]
    assert row[:5] == ("bjensen@example.com", "Barbara", "Jensen", "bjensen@example.com", 1)
    assert row[5].startswith("$y$") and crypt.crypt("t1meMa$heen", row[5]) == row[5]  # yescrypt, never plain
    assert '"nickName":"Babs"' in row[6]
    assert "password" not in r.json()
    # Duplicate userName: 409 from the unique index.
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "BJENSEN@example.com"})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"
    # PUT update.
    user = s.get(f"{base}/Users/{uid}").json()
    user["title"] = "Tour Guide"
    assert s.put(f"{base}/Users/{uid}", json=user).status_code == 200
    assert mariadb.query("SELECT title FROM users WHERE id = %s", uid)[0][0] == "Tour Guide"
    # Deactivate, reactivate, password push.
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert r.json()["active"] is False and mariadb.query("SELECT active FROM users WHERE id = %s", uid)[0][0] == 0
    s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]})
    assert mariadb.query("SELECT active FROM users WHERE id = %s", uid)[0][0] == 1
    s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "password", "value": "n3w-Secret"}]})
    h = mariadb.query("SELECT password FROM users WHERE id = %s", uid)[0][0]
    assert crypt.crypt("n3w-Secret", h) == h
    # Paged import.
    for i in range(25):
        assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"import{i:02}@example.com"}).status_code == 201
    seen, start = [], 1
    while True:
        page = s.get(f"{base}/Users", params={"startIndex": start, "count": 10, "sortBy": "userName"}).json()
        assert page["totalResults"] == 26
        seen += [u["userName"] for u in page["Resources"]]
        start += 10
        if start > 26:
            break
    assert seen == sorted(seen) and len(seen) == 26
    # Incremental import is pushed down to the lastModified column.
    since = mariadb.query("SELECT DATE_FORMAT(MAX(lastModified), '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ') FROM users")[0][0]
    assert s.get(f"{base}/Users", params={"filter": f'meta.lastModified gt "{since}"'}).json()["totalResults"] == 0
    # A timestamp that is not one is an error, not an empty page (the import would miss changes).
    r = s.get(f"{base}/Users", params={"filter": 'meta.lastModified gt "yesterday"'})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter" and "RFC 3339" in r.json()["detail"]
    # Group push and membership PATCH.
    r = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Tour Guides", "members": [{"value": uid}]})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert mariadb.query("SELECT member_id FROM group_members WHERE group_id = %s", gid) == ((uid,),)
    other = s.get(f"{base}/Users", params={"filter": 'userName eq "import00@example.com"'}).json()["Resources"][0]["id"]
    s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": other}]}]})
    assert {r[0] for r in mariadb.query("SELECT member_id FROM group_members WHERE group_id = %s", gid)} == {uid, other}
    s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]})
    assert mariadb.query("SELECT member_id FROM group_members WHERE group_id = %s", gid) == ((other,),)
    assert s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "nobody"}]}]}).status_code == 400
    # Group delete.
    assert s.delete(f"{base}/Groups/{gid}").status_code == 204
    assert mariadb.query("SELECT COUNT(*) FROM group_members WHERE group_id = %s", gid)[0][0] == 0
    assert s.delete(f"{base}/Users/{uid}").status_code == 204
    assert mariadb.query("SELECT COUNT(*) FROM users WHERE id = %s", uid)[0][0] == 0


@pytest.mark.parametrize("value", ['x" or 1=1 -- ', "%_\\", "'; DROP TABLE users; --", "a%", "_"])
def test_filter_values_are_literal(db_agent, mariadb, value):
    s, base = requests.Session(), db_agent.base("db")
    for name in ["plain@example.com", value, "xx", "a1"]:
        s.post(f"{base}/Users", json={"schemas": [USER], "userName": name, "title": name})
    import json as _json
    quoted = _json.dumps(value)
    r = s.get(f"{base}/Users", params={"filter": f"userName eq {quoted}"})
    assert [u["userName"] for u in r.json()["Resources"]] == [value]
    for op in ("co", "sw", "ew"):
        r = s.get(f"{base}/Users", params={"filter": f"title {op} {quoted}"})
        assert [u["userName"] for u in r.json()["Resources"]] == [value], (op, r.text)
    assert mariadb.query("SELECT COUNT(*) FROM users")[0][0] == 4


def test_legacy_table_mapping(make_agent, mariadb):
    mariadb.root_sql(f"""
        DROP DATABASE IF EXISTS legacy; CREATE DATABASE legacy CHARACTER SET utf8mb4;
        GRANT ALL ON legacy.* TO '{mariadb.USER}'@'%';
        CREATE TABLE legacy.app_accounts (
          account_no INT AUTO_INCREMENT PRIMARY KEY, login VARCHAR(100) NOT NULL UNIQUE, first_name VARCHAR(100), surname VARCHAR(100),
          mail VARCHAR(200), enabled TINYINT NOT NULL DEFAULT 1, pw_hash VARCHAR(100), updated_at DATETIME(3)) CHARSET=utf8mb4;
        CREATE TABLE legacy.app_roles (role_id INT AUTO_INCREMENT PRIMARY KEY, role_name VARCHAR(100) NOT NULL) CHARSET=utf8mb4;
        CREATE TABLE legacy.app_role_members (role_id INT NOT NULL, account_no INT NOT NULL, PRIMARY KEY (role_id, account_no));
        INSERT INTO legacy.app_accounts (login, first_name, surname, mail, enabled) VALUES ('existing', 'Old', 'Timer', 'old@example.com', 0);
        """)
    settings = mariadb.settings(database="legacy", mapping={
        "users": {"table": "app_accounts", "key": "account_no", "keyGeneration": "auto",
                  "columns": {"userName": "login", "name.givenName": "first_name", "name.familyName": "surname", "emails.value": "mail"},
                  "active": {"column": "enabled", "true": 1, "false": 0}, "password": {"column": "pw_hash", "scheme": "bcrypt"},
                  "lastModified": "updated_at"},
        "groups": {"table": "app_roles", "key": "role_id", "keyGeneration": "auto", "columns": {"displayName": "role_name"},
                   "members": {"table": "app_role_members", "group": "role_id", "member": "account_no"}},
    })
    a = make_agent({"legacy": {"connector": "mysql", "settings": settings, "auth": {"type": "none"}}}, plugins=("mysql.so",)).start()
    s, base = requests.Session(), a.base("legacy")
    existing = s.get(f"{base}/Users", params={"filter": 'userName eq "EXISTING"'}).json()["Resources"]
    assert existing[0]["active"] is False and existing[0]["name"] == {"givenName": "Old", "familyName": "Timer"}
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "new.hire", "name": {"givenName": "New", "familyName": "Hire"},
                                      "emails": [{"value": "new@example.com", "primary": True}], "password": "Secr3t!"})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    row = mariadb.query("SELECT login, first_name, surname, mail, enabled, pw_hash FROM legacy.app_accounts WHERE account_no = %s", uid)[0]
    assert row[:5] == ("new.hire", "New", "Hire", "new@example.com", 1)
    assert row[5].startswith("$2b$") and crypt.crypt("Secr3t!", row[5]) == row[5]
    s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert mariadb.query("SELECT enabled FROM legacy.app_accounts WHERE account_no = %s", uid)[0][0] == 0
    g = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Admins", "members": [{"value": uid}]}).json()
    assert mariadb.query("SELECT account_no FROM legacy.app_role_members WHERE role_id = %s", g["id"]) == ((int(uid),),)
    # Discovery tells the truth: only the mapped attributes, password push available.
    schema = s.get(f"{base}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    assert {a["name"] for a in schema["attributes"]} == {"userName", "name", "emails", "active", "password"}
    assert s.get(f"{base}/ServiceProviderConfig").json()["changePassword"]["supported"] is True
    # check names what is missing.
    mariadb.root_sql("ALTER TABLE legacy.app_accounts DROP COLUMN surname")
    r = a.cli("check", "--json", check=False)
    assert r.returncode == 1 and "app_accounts has no column surname" in r.stdout


def test_no_group_tables_means_no_groups(make_agent, mariadb):
    mariadb.root_sql(f"DROP DATABASE IF EXISTS solo; CREATE DATABASE solo; GRANT ALL ON solo.* TO '{mariadb.USER}'@'%';"
                     "CREATE TABLE solo.people (id INT AUTO_INCREMENT PRIMARY KEY, uname VARCHAR(50) UNIQUE);")
    settings = mariadb.settings(database="solo", mapping={"users": {"table": "people", "key": "id", "columns": {"userName": "uname"}}})
    a = make_agent({"solo": {"connector": "mysql", "settings": settings, "auth": {"type": "none"}}}, plugins=("mysql.so",)).start()
    base = a.base("solo")
    assert [t["id"] for t in requests.get(f"{base}/ResourceTypes").json()["Resources"]] == ["User"]
    assert requests.get(f"{base}/Groups").status_code == 501
    spc = requests.get(f"{base}/ServiceProviderConfig", params={"attributes": "urn:okta:schemas:scim:providerconfig:1.0"}).json()
    caps = spc["urn:okta:schemas:scim:providerconfig:1.0"]["userManagementCapabilities"]
    assert "GROUP_PUSH" not in caps and "PUSH_PASSWORD_UPDATES" not in caps and "PUSH_USER_DEACTIVATION" not in caps


def test_scim2_tester_against_mysql(db_agent):
    scim2 = Path(sys.executable).parent / "scim2"
    r = subprocess.run([str(scim2), "--url", db_agent.base("db"), "test"], capture_output=True, text=True, timeout=600)
    failures = [l for l in r.stdout.splitlines() if l.startswith(("ERROR", "CRITICAL"))]
    assert r.returncode == 0 and not failures, r.stdout[-4000:]


def test_mariadb_restart_in_the_middle_of_traffic(db_agent, mariadb):
    statuses = creates_across_a_restart(db_agent.base("db"), mariadb, "@example.com")
    assert set(statuses) <= {201, 503}, set(statuses)
    assert 503 in statuses and statuses[-1] == 201  # failed in the gap, recovered by itself
    # Every acknowledged create is there. One request may have been cut mid-way (written, but
    # the server went away before the reply): the client saw 503 and a retry would get 409.
    stored = mariadb.query("SELECT COUNT(*) FROM users WHERE userName LIKE 'restart%%'")[0][0]
    assert statuses.count(201) <= stored <= statuses.count(201) + 1


def burst(base, mariadb, names, passwords=None):
    """POSTs one user per name (with its password, if given), all at once, while the users
    table is locked, so that the creates pile up behind the first ones as under load; returns
    the answers and how many INSERT statements MariaDB ran for them."""
    results = [None] * len(names)

    def create(i):
        user = {"schemas": [USER], "userName": names[i], "name": {"givenName": f"G{i}", "familyName": "Burst"},
                "title": f"title {i}", "active": i % 2 == 0}
        if passwords:
            user["password"] = passwords[i]
        r = requests.post(f"{base}/Users", json=user)
        results[i] = (r.status_code, r.json())

    def inserts():
        return int(mariadb.query("SHOW GLOBAL STATUS LIKE 'Com_insert'")[0][1])

    before = inserts()
    lock = mariadb.connect()
    lock.cursor().execute("LOCK TABLES users WRITE")
    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    lock.cursor().execute("UNLOCK TABLES")
    lock.close()
    for t in threads:
        t.join()
    return results, inserts() - before


def check_created(base, mariadb, i, name, status, body):
    assert status == 201, body
    assert body["userName"] == name and body["title"] == f"title {i}" and body["active"] == (i % 2 == 0)
    assert body["name"]["givenName"] == f"G{i}"
    row = mariadb.query("SELECT userName, givenName, title, active FROM users WHERE id = %s", body["id"])
    assert row == ((name, f"G{i}", f"title {i}", 1 if i % 2 == 0 else 0),)
    got = requests.get(f"{base}/Users/{body['id']}").json()
    assert got["meta"]["created"] == body["meta"]["created"] and got["meta"]["version"] == body["meta"]["version"]


def test_concurrent_creates_share_inserts(db_agent, mariadb):
    """Creates that arrive together are written together (multi-row INSERTs): each client
    still gets its own user back, as stored."""
    base = db_agent.base("db")
    names = [f"burst{i:03}@example.com" for i in range(60)]
    results, statements = burst(base, mariadb, names)
    assert statements < len(names) / 2, f"{len(names)} creates took {statements} INSERT statements: they were not batched"
    for i, (status, body) in enumerate(results):
        check_created(base, mariadb, i, names[i], status, body)
    assert len({body["id"] for _, body in results}) == len(names)
    assert mariadb.query("SELECT COUNT(*) FROM users")[0][0] == len(names)


def test_new_ids_are_time_ordered_uuids(db_agent, mariadb):
    """New users get version 7 UUIDs (RFC 9562): their first 48 bits are the creation time in
    Unix milliseconds, so later users sort after earlier ones and a large table's primary key
    grows at its end instead of on random pages."""
    s, base = requests.Session(), db_agent.base("db")
    created = []
    for i in range(5):
        r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"ordered{i}@example.com"})
        assert r.status_code == 201, r.text
        created.append(r.json())
        time.sleep(0.003)
    ids = [u["id"] for u in created]
    for u in created:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u["id"]), u["id"]
        millis = int(u["id"].replace("-", "")[:12], 16)
        stamp = datetime.datetime.fromisoformat(u["meta"]["created"].replace("Z", "+00:00")).timestamp() * 1000
        assert abs(millis - stamp) < 1000, (u["id"], u["meta"]["created"])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [r[0] for r in mariadb.query("SELECT id FROM users ORDER BY id")] == ids


def test_a_bad_create_in_a_batch_fails_alone(db_agent, mariadb):
    """In a batch, a taken userName fails only its own request with 409, two requests for the
    same new userName get one 201 and one 409, and a value the column cannot hold fails only
    its own request with 400; the others are created."""
    base = db_agent.base("db")
    requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "taken@example.com"}).raise_for_status()
    names = [f"burst{i:03}@example.com" for i in range(60)]
    names[10] = names[20] = names[30] = "taken@example.com"
    names[40] = names[41] = "twice@example.com"
    names[50] = "x" * 300 + "@example.com"  # userName is VARCHAR(255)
    results, _ = burst(base, mariadb, names)
    for i, (status, body) in enumerate(results):
        if names[i] == "taken@example.com":
            assert status == 409 and body["scimType"] == "uniqueness", body
        elif i == 50:
            assert status == 400, body
        elif names[i] != "twice@example.com":
            check_created(base, mariadb, i, names[i], status, body)
    assert sorted(results[i][0] for i in (40, 41)) == [201, 409]
    ids = [body["id"] for status, body in results if status == 201]
    assert len(set(ids)) == len(ids) == 60 - 3 - 1 - 1
    assert mariadb.query("SELECT COUNT(*) FROM users")[0][0] == len(ids) + 1


def test_tls_and_socket_connections(make_agent, mariadb, tmp_path):
    """An account that MariaDB only lets in over TLS: `tls: required` and `verify-ca` with the
    server's CA (also as a path relative to the configuration) provision into it; `verify-ca`
    with another CA, with a CA file that is not there, and `tls: off` are refused, each with an
    error that says why. A Unix `socket` instead of host and port works too."""
    from servers import make_ca_and_server_cert
    mariadb.empty_database(
        f"CREATE USER IF NOT EXISTS 'tlsagent'@'%' IDENTIFIED BY 'tls-pw' REQUIRE SSL; GRANT ALL ON {mariadb.DATABASE}.* TO 'tlsagent'@'%';")
    other_ca, _, _ = make_ca_and_server_cert(tmp_path, "other")
    tls_user = mariadb.settings(user="tlsagent", password="tls-pw", createSchema=True)
    socket_only = {k: v for k, v in mariadb.settings(createSchema=True).items() if k not in ("host", "port")}
    apps = {name: {"connector": "mysql", "settings": settings, "auth": {"type": "none"}} for name, settings in {
        "required": {**tls_user, "tls": "required"},
        "verified": {**tls_user, "tls": "verify-ca", "caFile": str(mariadb.ca)},
        "relative": {**tls_user, "tls": "verify-ca", "caFile": "certs/mariadb-ca.pem"},
        "otherca": {**tls_user, "tls": "verify-ca", "caFile": str(other_ca)},
        "nofile": {**tls_user, "tls": "verify-ca", "caFile": "certs/typo-ca.pem"},
        "plain": {**tls_user, "tls": "off"},
        "socket": {**socket_only, "socket": str(mariadb.socket)},
    }.items()}
    a = make_agent(apps, plugins=("mysql.so",))
    (a.workdir / "certs").mkdir()
    (a.workdir / "certs" / "mariadb-ca.pem").write_bytes(mariadb.ca.read_bytes())
    a.start()
    for app in ("required", "verified", "relative", "socket"):
        r = requests.post(f"{a.base(app)}/Users", json={"schemas": [USER], "userName": f"{app}@example.com"})
        assert r.status_code == 201, (app, r.text)
        assert mariadb.query("SELECT COUNT(*) FROM users WHERE userName = %s", f"{app}@example.com")[0][0] == 1
    missing = f"settings.caFile: cannot read {a.workdir / 'certs/typo-ca.pem'}: No such file or directory"
    for app, reason in (("otherca", "certificate"), ("nofile", missing), ("plain", "Access denied for user 'tlsagent'")):
        r = requests.post(f"{a.base(app)}/Users", json={"schemas": [USER], "userName": f"{app}@example.com"})
        assert r.status_code == 503 and reason in r.json()["detail"], (app, r.text)
    assert mariadb.query("SELECT COUNT(*) FROM users")[0][0] == 4
    r = a.cli("check", "--json", check=False)
    assert r.returncode == 1, r.stdout
    assert all(reason in r.stdout for reason in ("certificate", missing, "tlsagent")), r.stdout


def test_check_names_missing_privileges_and_tables(make_agent, mariadb):
    """`check` on an account that may only read, with a mapping naming a group table that is not
    there: it names the privileges and the table missing."""
    mariadb.empty_database(
        f"CREATE TABLE {mariadb.DATABASE}.people (id INT AUTO_INCREMENT PRIMARY KEY, uname VARCHAR(50) UNIQUE);"
        f"CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY 'reader-pw'; GRANT SELECT ON {mariadb.DATABASE}.* TO 'reader'@'%';")
    mapping = {"users": {"table": "people", "key": "id", "columns": {"userName": "uname"}},
               "groups": {"table": "teams", "key": "id", "columns": {"displayName": "name"}}}
    apps = {"ro": {"connector": "mysql", "settings": mariadb.settings(user="reader", password="reader-pw", mapping=mapping), "auth": {"type": "none"}}}
    a = make_agent(apps, plugins=("mysql.so",))
    r = a.cli("check", check=False)
    assert r.returncode == 1, r.stdout
    assert "no INSERT, UPDATE, DELETE privilege on people" in r.stdout and "table teams does not exist" in r.stdout, r.stdout
    mariadb.root_sql(f"GRANT INSERT, UPDATE, DELETE ON {mariadb.DATABASE}.* TO 'reader'@'%'; CREATE TABLE {mariadb.DATABASE}.teams (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50));")
    r = a.cli("check", check=False)
    assert r.returncode == 0 and "0 users in people" in r.stdout, r.stdout


def test_a_batch_with_passwords_hashes_each_one(db_agent, mariadb):
    """Creates with passwords that arrive together are still written together, and each row
    holds the yescrypt hash of its own password (a batch hashes them on all cores at once)."""
    base = db_agent.base("db")
    names = [f"pw{i:02}@example.com" for i in range(24)]
    passwords = [f"S3cret-{i}-{'x' * i}" for i in range(24)]
    results, statements = burst(base, mariadb, names, passwords)
    assert statements < len(names) / 2, f"{len(names)} creates took {statements} INSERT statements: they were not batched"
    for i, (status, body) in enumerate(results):
        check_created(base, mariadb, i, names[i], status, body)
        assert "password" not in body
        stored = mariadb.query("SELECT password FROM users WHERE id = %s", body["id"])[0][0]
        assert stored.startswith("$y$") and crypt.crypt(passwords[i], stored) == stored, names[i]


def test_pushed_down_filters_and_sorts_answer_as_the_agent_does(make_agent, mariadb):
    """The same users in a mysql app (filters become SQL) and a memory app (the agent's own
    evaluator): every filter selects the same users from both, and every sort orders them
    alike."""
    mariadb.empty_database()
    apps = {"db": {"connector": "mysql", "settings": mariadb.settings(createSchema=True), "auth": {"type": "none"}},
            "mem": {"connector": "memory", "auth": {"type": "none"}}}
    a = make_agent(apps, plugins=("mysql.so", "memory.so")).start()
    differing = filter_cases.differing(a.base("db"), a.base("mem"), filter_cases.USERS)
    assert not differing, differing
    assert not filter_cases.sorts_differing(a.base("db"), a.base("mem"))
    assert filter_cases.selected(a.base("db"), "active pr") == ["Alice@Example.com", "bob@example.com", "dave_x"]  # an inactive user has an active value
    assert filter_cases.selected(a.base("db"), "name pr") == ["Alice@Example.com", "bob@example.com", "carol"]


def test_a_page_of_groups_reads_all_members_at_once(db_agent, mariadb):
    """A page of groups comes with each group's own members, read with one statement for the
    page (COUNT, the groups, their members), not one per group."""
    base, s = db_agent.base("db"), requests.Session()
    users = [s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"member{i}"}).json()["id"] for i in range(5)]
    made = {}
    for i in range(30):
        members = users[: i % 6]
        g = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": f"team{i:02}", "members": [{"value": u} for u in members]}).json()
        made[g["id"]] = sorted(members)

    def statements():
        return int(mariadb.query("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")[0][1])

    before = statements()
    page = s.get(f"{base}/Groups", params={"count": 30}).json()
    assert statements() - before <= 3
    assert {g["id"]: sorted(m["value"] for m in g.get("members", [])) for g in page["Resources"]} == made
    # Without members (as Entra ID asks), they are not read at all: COUNT and the groups.
    before = statements()
    page = s.get(f"{base}/Groups", params={"count": 30, "excludedAttributes": "members"}).json()
    assert statements() - before == 2 and page["totalResults"] == 30 and not any("members" in g for g in page["Resources"])
    # unless the filter reads them
    member = users[0]
    found = s.get(f"{base}/Groups", params={"filter": f'members.value eq "{member}"', "excludedAttributes": "members"}).json()
    assert sorted(g["id"] for g in found["Resources"]) == sorted(gid for gid, m in made.items() if member in m)


def test_filters_the_columns_cannot_answer_on_a_large_table(db_agent, mariadb):
    """50,000 users whose nickName and second email only the attributes column holds: a filter
    on them answers its page (it was a 502, the connector's reply being the whole table), and
    a sort by such an attribute over too many users is a 400 tooMany, not a reply of 20 MB."""
    base, s = db_agent.base("db"), requests.Session()
    s.post(f"{base}/Users", json={"schemas": [USER], "userName": "seed"}).raise_for_status()  # creates the tables
    mariadb.root_sql(f"""USE {mariadb.DATABASE};
        INSERT INTO users (id, userName, email, attributes, created, lastModified)
        SELECT UUID(), CONCAT('user', LPAD(seq, 5, '0')), CONCAT('user', seq, '@work.example'),
               CONCAT('{{"nickName":"Nick', seq, '","emails":[{{"type":"work","primary":true}},{{"value":"user', seq, '@home.example","type":"home"}}]}}'),
               NOW(3), NOW(3) FROM seq_1_to_50000;""")

    def search(**params):
        r = s.get(f"{base}/Users", params=params)
        assert r.status_code == 200, r.text
        return r.json()["totalResults"], [u["userName"] for u in r.json()["Resources"]]

    assert search(filter='nickName eq "nick4321"') == (1, ["user04321"])
    assert search(filter='emails.value eq "USER4321@home.example"') == (1, ["user04321"])
    assert search(filter='emails[type eq "home"].value eq "user4321@home.example"') == (1, ["user04321"])
    # nick432, nick4320…nick4329, nick43200…nick43299; the page from the 3rd, by userName
    assert search(filter='nickName co "k432"', startIndex=3, count=4, sortBy="userName") == (111, ["user04321", "user04322", "user04323", "user04324"])
    assert search(filter='nickName sw "Nick4999"', sortBy="nickName", sortOrder="descending")[1][:3] == ["user49999", "user49998", "user49997"]
    r = s.get(f"{base}/Users", params={"sortBy": "nickName", "count": 10})
    assert r.status_code == 400 and r.json()["scimType"] == "tooMany" and "nickName" in r.json()["detail"], r.text


def test_reads_after_a_restart_do_not_fail_on_stale_connections(db_agent, mariadb):
    """Once MariaDB is back from a restart, the connections the pool opened before it are
    dead: a read run on one runs again on a new connection, and the other dead ones are
    dropped with it, so no request fails (each stale connection used to fail one with 503)."""
    base, s = db_agent.base("db"), requests.Session()
    uid = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "stale@example.com"}).json()["id"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # several connections in the pool
        assert set(pool.map(lambda _: requests.get(f"{base}/Users/{uid}").status_code, range(64))) == {200}
    mariadb.stop()
    mariadb.start()
    statuses = [s.get(f"{base}/Users/{uid}").status_code for _ in range(4)]
    statuses.append(s.get(f"{base}/Users", params={"filter": 'userName eq "stale@example.com"'}).status_code)
    statuses.append(s.post(f"{base}/Users", json={"schemas": [USER], "userName": "fresh@example.com"}).status_code)
    assert statuses == [200] * 5 + [201]


def test_microsoft_entra_id_requests(db_agent, mariadb):
    """What Entra ID sends beyond RFC 7644, through the agent into the tables: paths as the
    member names of a path-less replace, the manager as a bare id, and a filter with a
    sub-attribute after a value filter."""
    base, s = db_agent.base("db"), requests.Session()
    ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    uid = s.post(f"{base}/Users", json={"schemas": [USER, ext], "userName": "entra@example.com", "active": True, "name": {"givenName": "Ann", "familyName": "Lee"},
                                        "emails": [{"value": "entra@example.com", "type": "work", "primary": True}]}).json()["id"]
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "value": {"name.givenName": "Anne", "active": "False", f"{ext}:department": "R&D"}},
        {"op": "Add", "path": f"{ext}:manager", "value": "boss-id"}]})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == {"givenName": "Anne", "familyName": "Lee"} and r.json()["active"] is False
    assert r.json()[ext] == {"department": "R&D", "manager": {"value": "boss-id"}}
    assert mariadb.query("SELECT givenName, active FROM users WHERE id = %s", uid) == (("Anne", 0),)
    found = s.get(f"{base}/Users", params={"filter": 'emails[type eq "work"].value eq "ENTRA@example.com"'}).json()
    assert [u["id"] for u in found["Resources"]] == [uid]
