"""No acknowledged change is lost: concurrent PATCHes of one user and concurrent member adds
and removes on one group, on every kind of target, through one agent and split across two
agents on the same MariaDB, slapd and scim2-server. Each stored result is read back through
the agent and, where there is one, independently (SQL, an LDAP search, the remote server)."""
import concurrent.futures
import itertools

import pytest
import requests

from conftest import remote_app
from servers import ScimPeer
from test_ldap import clean

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# Attributes every target keeps; each gets exactly one replace, so its final value is known.
REPLACED = ["title", "displayName", "name.givenName", "name.familyName", "externalId"]


def apps_for(target, request):
    """The app (named `app`) for a target, and the server object to read it back from."""
    if target == "memory":
        return {"connector": "memory", "auth": {"type": "none"}}, None
    if target == "flatfile":
        return {"connector": "flatfile", "settings": {"directory": "data/app"}, "auth": {"type": "none"}}, None
    if target == "mysql":
        db = request.getfixturevalue("mariadb")
        db.empty_database()
        return {"connector": "mysql", "settings": db.settings(createSchema=True), "auth": {"type": "none"}}, db
    if target == "ldap":
        directory = request.getfixturevalue("slapd")
        clean(directory)
        return {"connector": "ldap", "settings": directory.settings(), "auth": {"type": "none"}}, directory
    peer = request.getfixturevalue("peer")
    if target == "remote-without-patch":
        # A server without PATCH that publishes ETags: the agent's GET + PUT carries If-Match.
        spc = peer.get("/ServiceProviderConfig").json()
        spc["patch"]["supported"] = False
        assert spc["etag"]["supported"] is True
        peer = ScimPeer(spc=spc)
        request.addfinalizer(peer.stop)
    return remote_app(peer.base), peer


PLUGINS = {"memory": ("memory.so",), "flatfile": ("flatfile.so",), "mysql": ("mysql.so",), "ldap": ("ldap.so",), "remote": (), "remote-without-patch": ()}


def agents_for(make_agent, request, target, count, isolated=False):
    app, server = apps_for(target, request)
    if isolated:  # the connector in a child process of each agent (isolation: process)
        app["isolation"] = "process"
    return [make_agent({"app": app}, plugins=PLUGINS[target]).start() for _ in range(count)], server


def send_all(requests_to_send):
    """Sends (method, url, json, headers) all at once; a 409 (the agent gave up after retries) is
    sent again, as the README says a client should. Returns the final statuses."""
    def one(req):
        method, url, body, headers = req
        s = requests.Session()
        for _ in range(5):
            r = s.request(method, url, json=body, headers={"Content-Type": "application/scim+json", **headers}, timeout=60)
            if r.status_code != 409:
                return r.status_code, r.text
        return r.status_code, r.text

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(one, requests_to_send))


def sub(resource, path):
    for part in path.split("."):
        resource = (resource or {}).get(part)
    return resource


def value_of(path, i):
    return f"v{i}-{path}"


def patch(ops):
    return {"schemas": [PATCH], "Operations": ops}


CASES = [("memory", 1), ("flatfile", 1), ("mysql", 1), ("ldap", 1), ("remote", 1), ("remote-without-patch", 1),
         ("mysql", 2), ("ldap", 2), ("remote", 2), ("remote-without-patch", 2),
         ("flatfile-isolated", 1), ("mysql-isolated", 2)]


@pytest.mark.parametrize("target,agents", CASES, ids=[f"{t}-{n}agent{'s' if n > 1 else ''}" for t, n in CASES])
def test_concurrent_patches_of_one_user_all_land(make_agent, request, target, agents):
    target, isolated = target.removesuffix("-isolated"), target.endswith("-isolated")
    fleet, server = agents_for(make_agent, request, target, agents, isolated)
    bases = itertools.cycle([a.base("app") for a in fleet])
    created = requests.post(f"{fleet[0].base('app')}/Users", json={
        "schemas": [USER], "userName": "race@example.com", "name": {"givenName": "Ra", "familyName": "Ce"},
        "emails": [{"value": "race@example.com", "type": "work", "primary": True}], "active": True})
    assert created.status_code == 201, created.text
    uid, stale = created.json()["id"], created.headers["ETag"]
    # One change first, so that the creation's ETag is stale before the load starts.
    first = requests.patch(f"{fleet[0].base('app')}/Users/{uid}", json=patch([{"op": "add", "path": "emails", "value": [{"value": "first@example.com"}]}]))
    assert first.status_code == 200 and first.headers["ETag"] != stale, first.text

    work, emails, replaced = [], ["race@example.com", "first@example.com"], {}
    for i in range(32):
        url = f"{next(bases)}/Users/{uid}"
        if i % 6 == 1 and len(replaced) < len(REPLACED):
            path = REPLACED[len(replaced)]
            replaced[path] = value_of(path, i)
            work.append(("PATCH", url, patch([{"op": "replace", "path": path, "value": replaced[path]}]), {}))
        elif i % 6 == 4:
            work.append(("PATCH", url, patch([{"op": "replace", "value": {"active": i % 12 != 4}}]), {}))
        else:
            emails.append(f"e{i}@example.com")
            work.append(("PATCH", url, patch([{"op": "add", "path": "emails", "value": [{"value": emails[-1], "type": "other"}]}]), {}))
    stale_ones = [("PATCH", f"{next(bases)}/Users/{uid}", patch([{"op": "replace", "path": "title", "value": "stale"}]), {"If-Match": stale})
                  for _ in range(3)]
    statuses = send_all(work + stale_ones)
    assert [s for s, _ in statuses[:len(work)] if s != 200] == [], statuses
    assert [s for s, _ in statuses[len(work):]] == [412] * 3, statuses[len(work):]

    for a in fleet:
        user = requests.get(f"{a.base('app')}/Users/{uid}").json()
        assert sorted(e["value"] for e in user["emails"]) == sorted(emails)
        for path, value in replaced.items():
            assert sub(user, path) == value, (path, user)
        assert isinstance(user["active"], bool)

    # The target itself, read without the agent.
    if target == "mysql":
        row = server.query("SELECT title, displayName, givenName, familyName, externalId, email, attributes FROM users WHERE id = %s", uid)[0]
        assert row[:5] == tuple(replaced[p] for p in REPLACED)
        stored = " ".join(str(c) for c in row)
        assert [e for e in emails if e not in stored] == []
    elif target == "ldap":
        (entry,) = server.search("dc=example,dc=org", f"(entryUUID={uid})")
        assert sorted(entry.mail.values) == sorted(emails)
        assert entry.title.value == replaced["title"] and entry.givenName.value == replaced["name.givenName"]
        assert entry.sn.value == replaced["name.familyName"] and entry.employeeNumber.value == replaced["externalId"]
    elif target.startswith("remote"):
        stored = server.get(f"/Users/{uid}").json()
        assert sorted(e["value"] for e in stored["emails"]) == sorted(emails)
        assert all(sub(stored, p) == v for p, v in replaced.items()), stored


@pytest.mark.parametrize("target,agents", CASES, ids=[f"{t}-{n}agent{'s' if n > 1 else ''}" for t, n in CASES])
def test_concurrent_member_adds_and_removes_on_one_group_all_land(make_agent, request, target, agents):
    target, isolated = target.removesuffix("-isolated"), target.endswith("-isolated")
    fleet, server = agents_for(make_agent, request, target, agents, isolated)
    base = fleet[0].base("app")
    users = []
    for i in range(32):
        r = requests.post(f"{base}/Users", json={"schemas": [USER], "userName": f"member{i}", "name": {"familyName": f"M{i}"}})
        assert r.status_code == 201, r.text
        users.append(r.json()["id"])
    leaving, joining = users[:8], users[8:]
    g = requests.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Racers0", "members": [{"value": u} for u in leaving]})
    assert g.status_code == 201, g.text
    gid, stale = g.json()["id"], g.headers["ETag"]
    first = requests.patch(f"{base}/Groups/{gid}", json=patch([{"op": "replace", "path": "displayName", "value": "Racers"}]))
    assert first.status_code == 200 and first.headers["ETag"] != stale, first.text

    bases = itertools.cycle([a.base("app") for a in fleet])
    work = [("PATCH", f"{next(bases)}/Groups/{gid}", patch([{"op": "add", "path": "members", "value": [{"value": u}]}]), {}) for u in joining]
    work += [("PATCH", f"{next(bases)}/Groups/{gid}", patch([{"op": "remove", "path": f'members[value eq "{u}"]'}]), {}) for u in leaving]
    work.sort(key=lambda w: hash(w[2]["Operations"][0]["op"] + str(w[2])))  # adds and removes interleaved
    stale_ones = [("PATCH", f"{next(bases)}/Groups/{gid}", patch([{"op": "replace", "path": "displayName", "value": "Stale"}]), {"If-Match": stale})
                  for _ in range(3)]
    statuses = send_all(work + stale_ones)
    assert [s for s, _ in statuses[:len(work)] if s not in (200, 204)] == [], statuses
    assert [s for s, _ in statuses[len(work):]] == [412] * 3, statuses[len(work):]

    for a in fleet:
        group = requests.get(f"{a.base('app')}/Groups/{gid}").json()
        assert sorted(m["value"] for m in group.get("members", [])) == sorted(joining)
        assert group["displayName"] == "Racers"

    if target == "mysql":
        rows = server.query("SELECT member_id FROM group_members WHERE group_id = %s", gid)
        assert sorted(r[0] for r in rows) == sorted(joining)
    elif target == "ldap":
        (entry,) = server.search(server.GROUPS, f"(entryUUID={gid})")
        members = {dn.split(",")[0].lower() for dn in entry.member.values}
        assert members == {f"uid=member{i}" for i in range(8, 32)}
    elif target.startswith("remote"):
        stored = server.get(f"/Groups/{gid}").json()
        assert sorted(m["value"] for m in stored.get("members", [])) == sorted(joining)
