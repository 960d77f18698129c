"""The Okta-style provisioning flow over real HTTP, against the C and the Swift connector."""
import pytest

from conftest import session_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.mark.parametrize("app", ["mem", "files"])
def test_okta_provisioning_flow(agent, app):
    s, base = session_for(app), agent.base(app)

    # Okta first looks the user up by userName.
    r = s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen@example.com"', "startIndex": 1, "count": 100})
    assert r.status_code == 200 and r.json()["totalResults"] == 0

    r = s.post(f"{base}/Users", json={
        "schemas": [USER], "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}], "active": True,
        "password": "t1meMa$heen"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/scim+json")
    user = r.json()
    uid = user["id"]
    assert r.headers["Location"] == f"{base}/Users/{uid}"
    assert user["meta"]["resourceType"] == "User" and user["meta"]["location"] == r.headers["Location"]
    assert r.headers["ETag"] == user["meta"]["version"]
    assert "password" not in user

    # Duplicate userName (case-insensitive) → 409 uniqueness.
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "BJensen@Example.com"})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"

    r = s.get(f"{base}/Users", params={"filter": 'userName eq "BJENSEN@example.com"'})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]

    # PUT profile update.
    user["name"]["givenName"] = "Babs"
    user["title"] = "Tour Guide"
    r = s.put(f"{base}/Users/{uid}", json=user)
    assert r.status_code == 200 and r.json()["name"]["givenName"] == "Babs" and r.json()["title"] == "Tour Guide"

    # Okta's deactivate PATCH: op name capitalised, value object carrying id, boolean as a string.
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "value": {"id": uid, "active": "False"}}]})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert s.get(f"{base}/Users/{uid}").json()["active"] is False
    r = s.get(f"{base}/Users", params={"filter": "active eq false"})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]

    # Reactivate.
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]})
    assert r.json()["active"] is True

    # Group push and membership PATCH.
    r = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Research and Development", "members": []})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = s.get(f"{base}/Groups", params={"filter": 'displayName eq "Research and Development"'})
    assert [g["id"] for g in r.json()["Resources"]] == [gid]
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": uid, "type": "User"}]}]})
    # Member changes alone are answered 204 (RFC 7644 §3.5.2), as Okta and Entra expect.
    assert r.status_code == 204 and not r.content, r.text
    assert [m["value"] for m in s.get(f"{base}/Groups/{gid}").json()["members"]] == [uid]
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{uid}"]'}]})
    assert r.status_code == 204
    assert s.get(f"{base}/Groups/{gid}").json().get("members", []) == []

    # Paged import.
    for i in range(5):
        assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"user{i}@example.com"}).status_code == 201
    r = s.get(f"{base}/Users", params={"startIndex": 2, "count": 3, "sortBy": "userName"})
    body = r.json()
    assert body["totalResults"] == 6 and body["startIndex"] == 2 and body["itemsPerPage"] == 3
    assert [u["userName"] for u in body["Resources"]] == ["user0@example.com", "user1@example.com", "user2@example.com"]
    r = s.get(f"{base}/Users", params={"count": 0})
    assert r.json()["totalResults"] == 6 and r.json()["Resources"] == []

    # Projection: only what was asked, id always.
    r = s.get(f"{base}/Users/{uid}", params={"attributes": "userName"})
    assert set(r.json()) == {"schemas", "id", "userName"}

    # Delete group and user.
    assert s.delete(f"{base}/Groups/{gid}").status_code == 204
    assert s.get(f"{base}/Groups/{gid}").status_code == 404
    assert s.delete(f"{base}/Users/{uid}").status_code == 204
    r = s.get(f"{base}/Users/{uid}")
    assert r.status_code == 404 and r.json()["status"] == "404"


@pytest.mark.parametrize("app", ["mem", "files"])
def test_etag_if_match(agent, app):
    s, base = session_for(app), agent.base(app)
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "etag@example.com"})
    uid, etag = r.json()["id"], r.headers["ETag"]
    assert s.get(f"{base}/Users/{uid}", headers={"If-None-Match": etag}).status_code == 304
    r = s.put(f"{base}/Users/{uid}", json={"schemas": [USER], "userName": "etag@example.com", "title": "x"}, headers={"If-Match": etag})
    assert r.status_code == 200
    r = s.put(f"{base}/Users/{uid}", json={"schemas": [USER], "userName": "etag@example.com", "title": "y"}, headers={"If-Match": etag})
    assert r.status_code == 412


@pytest.mark.parametrize("app", ["mem", "files"])
def test_bulk_with_bulk_id_references(agent, app):
    s, base = session_for(app), agent.base(app)
    r = s.post(f"{base}/Bulk", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": [USER], "userName": "bulk1@example.com"}},
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": [GROUP], "displayName": "Bulk", "members": [{"value": "bulkId:u1", "type": "User"}]}},
        ]})
    assert r.status_code == 200, r.text
    ops = r.json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "201"]
    gid = ops[1]["location"].rsplit("/", 1)[1]
    uid = ops[0]["location"].rsplit("/", 1)[1]
    assert [m["value"] for m in s.get(f"{base}/Groups/{gid}").json()["members"]] == [uid]


def test_errors_are_scim_errors(agent):
    s, base = session_for("mem"), agent.base("mem")
    r = s.get(f"{base}/Users", params={"filter": 'userName eq'})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"
    r = s.get(f"{base}/Nope")
    assert r.status_code == 404 and r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    r = s.post(f"{base}/Users", data=b"\xff\xfe not json")
    assert r.status_code == 400 and r.json()["scimType"] == "invalidSyntax"
    r = s.post(f"{base}/Users", data=b"{" * 2_000_000)
    assert r.status_code == 413
    r = s.put(f"{base}/ServiceProviderConfig", json={})
    assert r.status_code == 405
    r = s.patch(f"{base}/Users/x", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}] * 5000})
    assert r.status_code == 413
    r = s.get(f"{base}/Users", params={"filter": "(" * 10000 + 'userName eq "x"' + ")" * 10000})
    assert r.status_code == 400


def test_authentication(agent):
    import requests
    r = requests.get(agent.base("mem") + "/Users")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.json()["status"] == "401"
    r = requests.get(agent.base("mem") + "/Users", auth=("okta", "wrong"))
    assert r.status_code == 401
    r = requests.get(agent.base("files") + "/Users", headers={"Authorization": "Bearer s3cre"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(agent.base("files") + "/Users", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # Credentials never reach the log.
    assert "change-me" not in agent.log.read_text() and "s3cret" not in agent.log.read_text()


def test_discovery_reflects_the_connector(agent):
    s, base = session_for("mem"), agent.base("mem")
    spc = s.get(f"{base}/ServiceProviderConfig").json()
    assert spc["patch"]["supported"] is True and spc["sort"]["supported"] is False
    assert spc["bulk"]["maxOperations"] == 1000
    okta = s.get(f"{base}/ServiceProviderConfig", params={"attributes": "urn:okta:schemas:scim:providerconfig:1.0"}).json()
    caps = okta["urn:okta:schemas:scim:providerconfig:1.0"]["userManagementCapabilities"]
    assert "PUSH_NEW_USERS" in caps and "GROUP_PUSH" in caps and "PUSH_PASSWORD_UPDATES" in caps
    types = s.get(f"{base}/ResourceTypes").json()["Resources"]
    assert {t["id"] for t in types} == {"User", "Group"}
    files = session_for("files").get(agent.base("files") + "/ServiceProviderConfig").json()
    assert files["sort"]["supported"] is True and files["changePassword"]["supported"] is False


def test_missing_connector_answers_503(make_agent):
    a = make_agent({"ghost": {"connector": "nosuch", "auth": {"type": "none"}},
                    "mem": {"connector": "memory", "auth": {"type": "none"}}}).start()
    import requests
    r = requests.get(a.base("ghost") + "/Users")
    assert r.status_code == 503 and "nosuch" in r.json()["detail"]
    assert requests.get(a.base("mem") + "/Users").status_code == 200
    h = requests.get(a.url("/healthz")).json()
    assert h["apps"]["ghost"]["status"] == "unavailable" and h["apps"]["mem"]["status"] == "serving"
