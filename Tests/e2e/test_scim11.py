"""The SCIM 1.1 dialect under /apps/{app}/scim/v1, as Okta's on-premises agent speaks it by
default: the provisioning flow on a memory, a flatfile and a mysql app, what 1.1 clients read
(schemas, ListResponse, Errors) and that both dialects see the same resources."""
import pytest
import requests

from conftest import remote_app, session_for

CORE = "urn:scim:schemas:core:1.0"
ENTERPRISE = "urn:scim:schemas:extension:enterprise:1.0"


def v1(agent, app):
    return agent.url(f"/apps/{app}/scim/v1")


OKTA_CUSTOM = "urn:okta:onprem_app:1.0:user:custom"


def okta_11_flow(s, base, v2base, keeps_custom=True):
    """Okta's on-premises agent in SCIM 1.1, as its documentation shows its requests. `keeps_custom`:
    whether the target holds Okta's custom extension (a directory without a mapping for it, or a
    remote that publishes its schemas, does not: the attribute is left out, logged)."""
    # Lookup by userName before the create: none.
    r = s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen@example.com"', "startIndex": "1", "count": "100"})
    assert r.status_code == 200, r.text
    assert r.json()["schemas"] == [CORE] and r.json()["totalResults"] == 0
    # Create, with the enterprise extension under its 1.1 URN.
    r = s.post(f"{base}/Users", json={
        "schemas": [CORE, ENTERPRISE], "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}], "active": True, "password": "t1meMa$heen",
        "externalId": "00u1", ENTERPRISE: {"department": "Tour Operations"}, OKTA_CUSTOM: {"costCenter": "CC-42"}})
    assert r.status_code == 201, r.text
    user = r.json()
    uid = user["id"]
    assert user["schemas"][:2] == [CORE, ENTERPRISE]
    assert (user.get(OKTA_CUSTOM) == {"costCenter": "CC-42"}) == keeps_custom, user
    assert user[ENTERPRISE]["department"] == "Tour Operations" and "password" not in user
    assert r.headers["Location"] == f"{base}/Users/{uid}" == user["meta"]["location"]
    # The same user through SCIM 2.0, under the 2.0 URNs.
    r2 = s.get(f"{v2base}/Users/{uid}").json()
    # (the mysql app keeps the extension in its attributes column; the URN is listed all the same)
    assert r2["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert r2["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "Tour Operations"
    assert r2["meta"]["location"] == f"{v2base}/Users/{uid}"
    # Lookup finds it; GET by id.
    listed = s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen@example.com"'}).json()
    assert listed["totalResults"] == 1 and listed["Resources"][0]["id"] == uid and listed["Resources"][0]["schemas"][0] == CORE
    assert s.get(f"{base}/Users/{uid}").json()["userName"] == "bjensen@example.com"
    # Profile update with PUT, deactivation with PUT (what Okta's 1.1 agent sends), reactivation with PATCH.
    user["name"]["givenName"] = "Babs"
    user["active"] = False
    r = s.put(f"{base}/Users/{uid}", json=user)
    assert r.status_code == 200, r.text
    assert r.json()["name"]["givenName"] == "Babs" and r.json()["active"] is False
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [CORE], "active": True})
    assert r.status_code == 200 and r.json()["active"] is True and r.json()["name"]["givenName"] == "Babs"
    # Deactivate and reactivate with PUT, and a password change (a PUT carrying the password).
    for active in (False, True):
        user["active"] = active
        r = s.put(f"{base}/Users/{uid}", json=user)
        assert r.status_code == 200 and r.json()["active"] is active, r.text
    r = s.put(f"{base}/Users/{uid}", json={**user, "password": "n3w-Pa$$word"})
    assert r.status_code == 200 and "password" not in r.json(), r.text
    # Import: every user, page by page.
    for i in range(5):
        assert s.post(f"{base}/Users", json={"schemas": [CORE], "userName": f"import{i}@example.com"}).status_code == 201
    seen, start = [], 1
    while True:
        page = s.get(f"{base}/Users", params={"startIndex": start, "count": 2}).json()
        assert page["schemas"] == [CORE] and page["startIndex"] == start and len(page["Resources"]) <= 2
        seen += [u["userName"] for u in page["Resources"]]
        start += len(page["Resources"])
        if not page["Resources"] or start > page["totalResults"]:
            break
    assert sorted(seen) == sorted(["bjensen@example.com"] + [f"import{i}@example.com" for i in range(5)]), seen
    # Groups: push with a member, add one and remove one with a 1.1 PATCH, clear, delete.
    other = s.post(f"{base}/Users", json={"schemas": [CORE], "userName": "other@example.com"}).json()["id"]
    r = s.post(f"{base}/Groups", json={"schemas": [CORE], "displayName": "Tour Guides", "members": [{"value": uid}]})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert r.json()["schemas"] == [CORE]
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [CORE], "members": [{"value": uid, "operation": "delete"}, {"value": other}]})
    assert r.status_code == 200, r.text
    assert [m["value"] for m in s.get(f"{v2base}/Groups/{gid}").json().get("members", [])] == [other]
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [CORE], "meta": {"attributes": ["members"]}})
    assert r.status_code == 200 and not s.get(f"{v2base}/Groups/{gid}").json().get("members")
    assert s.delete(f"{base}/Groups/{gid}").status_code == 204
    # Errors in the 1.1 shape.
    r = s.get(f"{base}/Groups/{gid}")
    assert r.status_code == 404 and r.json()["Errors"][0]["code"] == "404" and gid in r.json()["Errors"][0]["description"]
    r = s.post(f"{base}/Users", json={"schemas": [CORE], "userName": "bjensen@example.com"})
    assert r.status_code == 409 and r.json()["Errors"][0]["code"] == "409"
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [CORE], "emails": [{"operation": "delete"}]})
    assert r.status_code == 400 and "value" in r.json()["Errors"][0]["description"]
    return uid


@pytest.mark.parametrize("app", ["mem", "files"])
def test_okta_scim11_flow(agent, app):
    s = session_for(app)
    okta_11_flow(s, v1(agent, app), agent.base(app))


def test_scim11_errors_and_discovery(agent):
    base = v1(agent, "mem")
    r = requests.get(f"{base}/Users")
    assert r.status_code == 401 and r.json()["Errors"][0]["code"] == "401" and "WWW-Authenticate" in r.headers
    s = session_for("mem")
    r = s.get(f"{base}/Nothing")
    assert r.status_code == 404 and r.json()["Errors"][0]["code"] == "404"
    r = s.post(f"{base}/Users", data=b'{"userName": ')
    assert r.status_code == 400 and r.json()["Errors"][0]["code"] == "400"
    spc = s.get(f"{base}/ServiceProviderConfigs").json()
    # Okta's documented shape: the list inside the extension object, none at the top level.
    assert "PUSH_NEW_USERS" in spc["urn:okta:schemas:scim:providerconfig:1.0"]["userManagementCapabilities"]
    assert "userManagementCapabilities" not in spc
    # SCIM 2.0 errors are unchanged, even where "/scim/v1/" appears further down a 2.0 path.
    assert "Errors" not in s.get(f"{agent.base('mem')}/Users/nope").json()
    r = s.get(f"{agent.base('mem')}/Users/x/scim/v1/y")
    assert r.status_code == 404 and r.json()["status"] == "404" and "Errors" not in r.json()


def test_okta_scim11_flow_on_mysql_lands_in_the_table(make_agent, mariadb):
    mariadb.empty_database()
    apps = {"db": {"connector": "mysql", "settings": mariadb.settings(createSchema=True), "auth": {"type": "none"}}}
    agent = make_agent(apps, plugins=("mysql.so",)).start()
    uid = okta_11_flow(requests.Session(), v1(agent, "db"), agent.base("db"))
    assert mariadb.query("SELECT userName, givenName, active FROM users WHERE id = %s", uid)[0] == ("bjensen@example.com", "Babs", 1)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    (hashed, attributes), = mariadb.query("SELECT password, attributes FROM users WHERE id = %s", uid)
    assert crypt.crypt("n3w-Pa$$word", hashed) == hashed  # the password change, hashed
    assert '"costCenter":"CC-42"' in attributes  # Okta's custom extension, in the attributes column
    assert mariadb.query("SELECT COUNT(*) FROM `groups`")[0][0] == 0


def test_okta_scim11_flow_on_ldap_lands_in_the_directory(make_agent, slapd):
    from test_ldap import clean
    clean(slapd)
    # The enterprise department has no default attribute in a directory: the admin maps it.
    settings = slapd.settings(attributes={"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "departmentNumber"})
    agent = make_agent({"dir": {"connector": "ldap", "settings": settings, "auth": {"type": "none"}}}, plugins=("ldap.so",)).start()
    uid = okta_11_flow(requests.Session(), v1(agent, "dir"), agent.base("dir"), keeps_custom=False)
    (entry,) = slapd.search(slapd.PEOPLE, f"(entryUUID={uid})")
    assert entry.uid.value == "bjensen@example.com" and entry.givenName.value == "Babs" and entry.departmentNumber.value == "Tour Operations"
    assert entry.entry_dn.endswith(slapd.PEOPLE) and "disabled" not in entry.entry_dn  # reactivated
    # The password change reached the directory: the user binds with the new one.
    import ldap3
    assert ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{slapd.port}"), entry.entry_dn, "n3w-Pa$$word").bind()
    assert not ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{slapd.port}"), entry.entry_dn, "t1meMa$heen").bind()


def test_okta_scim11_flow_through_a_remote_app(make_agent, peer):
    agent = make_agent({"crm": remote_app(peer.base)}, plugins=()).start()
    uid = okta_11_flow(requests.Session(), v1(agent, "crm"), agent.base("crm"), keeps_custom=False)
    stored = peer.get(f"/Users/{uid}").json()
    assert stored["name"]["givenName"] == "Babs" and stored["active"] is True
    assert stored["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "Tour Operations"
