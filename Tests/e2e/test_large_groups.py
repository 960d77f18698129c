"""Large groups: a change of members is answered 204 without reading the group; a group read
without its members (GET or list with excludedAttributes=members) does not read them, and
keeps the version it has read whole where the connector keeps one. On every connector, with
a group of 2,000 members (`make bench` measures 100,000)."""
import pytest
import requests

from test_concurrent_updates import PLUGINS, apps_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEMBERS = 2000


def member_patch(op, uid):
    if op == "add":
        return {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}
    return {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]}


def stored_member_count(target, server, gid, base, s):
    """The members as the target stores them: SQL, an LDAP search, or (memory, flatfile) the
    agent's full read."""
    if target == "mysql":
        return server.query("SELECT COUNT(*) FROM group_members WHERE group_id = %s", gid)[0][0]
    if target == "ldap":
        (entry,) = server.search(server.GROUPS, f"(entryUUID={gid})")
        return len([v for v in entry.member.values if v.lower() != "cn=empty-group-placeholder"])
    return len(s.get(f"{base}/Groups/{gid}").json().get("members", []))


@pytest.mark.parametrize("target", ["memory", "flatfile", "mysql", "ldap"])
def test_member_changes_of_a_large_group_are_204_and_reads_can_leave_members_out(make_agent, request, target):
    app, server = apps_for(target, request)
    a = make_agent({"app": app}, plugins=PLUGINS[target]).start()
    base = a.base("app")
    with requests.Session() as s:
        bulk = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": {"schemas": [USER], "userName": f"member{i}"}} for i in range(MEMBERS + 1)]}
        ids = []
        for chunk in range(0, len(bulk["Operations"]), 500):
            r = s.post(f"{base}/Bulk", json={**bulk, "Operations": bulk["Operations"][chunk:chunk + 500]})
            assert r.status_code == 200, r.text
            ids += [op["location"].rsplit("/", 1)[1] for op in r.json()["Operations"]]
        extra, ids = ids[-1], ids[:-1]
        r = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Everyone", "members": [{"value": u} for u in ids]})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]

        whole = s.get(f"{base}/Groups/{gid}")
        assert len(whole.json()["members"]) == MEMBERS
        # Read without members: the same group, none of them; the version it has read whole
        # where the connector keeps one (memory's counter, ldap's entryCSN), none otherwise.
        bare = s.get(f"{base}/Groups/{gid}", params={"excludedAttributes": "members"})
        assert bare.status_code == 200 and "members" not in bare.json() and bare.json()["displayName"] == "Everyone"
        listed = s.get(f"{base}/Groups", params={"excludedAttributes": "members", "filter": 'displayName eq "Everyone"'}).json()["Resources"]
        assert [g["id"] for g in listed] == [gid] and "members" not in listed[0]
        # Whatever the connector: a version given is the one the group has read whole.
        for version in (bare.headers.get("ETag"), bare.json()["meta"].get("version"), listed[0]["meta"].get("version")):
            assert version in (None, whole.headers["ETag"])
        if target in ("memory", "ldap"):
            assert bare.headers["ETag"] == bare.json()["meta"]["version"] == listed[0]["meta"]["version"]
        if target == "mysql":  # no version column, and the members were not read
            assert "ETag" not in bare.headers and "version" not in bare.json()["meta"] and "version" not in listed[0]["meta"]

        # One member added, one removed: 204, no body, and stored.
        r = s.patch(f"{base}/Groups/{gid}", json=member_patch("add", extra))
        assert r.status_code == 204 and not r.content and "ETag" not in r.headers, r.text
        assert stored_member_count(target, server, gid, base, s) == MEMBERS + 1
        r = s.patch(f"{base}/Groups/{gid}", json=member_patch("remove", ids[0]))
        assert r.status_code == 204, r.text
        after = s.get(f"{base}/Groups/{gid}")
        members = [m["value"] for m in after.json()["members"]]
        assert len(members) == MEMBERS and extra in members and ids[0] not in members
        assert stored_member_count(target, server, gid, base, s) == MEMBERS
        # The version changed with the members, and a member-less read follows it.
        assert after.headers["ETag"] != whole.headers["ETag"]
        if target in ("memory", "ldap"):
            bare = s.get(f"{base}/Groups/{gid}", params={"excludedAttributes": "members"})
            assert bare.headers["ETag"] == after.headers["ETag"]
            # ... and is good for If-Match.
            r = s.patch(f"{base}/Groups/{gid}", json=member_patch("add", ids[0]), headers={"If-Match": bare.headers["ETag"]})
            assert r.status_code == 204, r.text
            r = s.patch(f"{base}/Groups/{gid}", json=member_patch("remove", ids[0]), headers={"If-Match": bare.headers["ETag"]})
            assert r.status_code == 412, r.text
        # A client that asks for attributes gets them, with a 200.
        r = s.patch(f"{base}/Groups/{gid}", params={"attributes": "displayName"}, json=member_patch("remove", extra))
        assert r.status_code == 200 and r.json()["displayName"] == "Everyone" and "members" not in r.json(), r.text
        assert extra not in [m["value"] for m in s.get(f"{base}/Groups/{gid}").json()["members"]]
        # A group that is not there: 404, as when it was read first.
        r = s.patch(f"{base}/Groups/no-such-group", json=member_patch("add", extra))
        assert r.status_code == 404, r.text
        assert s.get(f"{base}/Groups/no-such-group", params={"excludedAttributes": "members"}).status_code == 404
