"""What Okta and Microsoft Entra ID send, stored as they meant it: Entra's email update and
member removal on a directory and through a remote app, Okta's custom extension on targets
that cannot hold it (unknownAttributes), and a query string that is not UTF-8."""
import concurrent.futures
import time

import pytest
import requests

from conftest import remote_app
from test_ldap import clean

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OKTA_CUSTOM = "urn:okta:onprem_app:1.0:user:custom"


def okta_user(name):
    return {"schemas": [USER, OKTA_CUSTOM], "userName": name, "name": {"givenName": "Cost", "familyName": "Center"},
            "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}], OKTA_CUSTOM: {"costCenter": "CC-42"}}


def test_entra_email_update_replaces_the_directory_address(make_agent, slapd):
    clean(slapd)
    a = make_agent({"dir": {"connector": "ldap", "settings": slapd.settings(), "auth": {"type": "none"}}}, plugins=("ldap.so",)).start()
    base = a.base("dir")
    u = requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "ent", "emails": [{"value": "old@example.com", "type": "work", "primary": True}]}).json()
    r = requests.patch(f"{base}/Users/{u['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@example.com"}]})
    assert r.status_code == 200, r.text
    (entry,) = slapd.search(slapd.PEOPLE, f"(entryUUID={u['id']})")
    assert entry.mail.values == ["new@example.com"]
    assert [e["value"] for e in requests.get(f"{base}/Users/{u['id']}").json()["emails"]] == ["new@example.com"]


def test_concurrent_first_members_of_an_empty_directory_group(make_agent, slapd):
    clean(slapd)
    a = make_agent({"dir": {"connector": "ldap", "settings": slapd.settings(), "auth": {"type": "none"}}}, plugins=("ldap.so",)).start()
    base = a.base("dir")
    ids = [requests.post(f"{base}/Users", json={"schemas": [USER], "userName": f"first{i}"}).json()["id"] for i in range(16)]
    gid = requests.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Empty"}).json()["id"]

    def add(uid):
        return requests.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(add, ids)) == [204] * 16
    (entry,) = slapd.search(slapd.GROUPS, f"(entryUUID={gid})")
    assert sorted(dn.split(",")[0] for dn in entry.member.values) == sorted(f"uid=first{i}" for i in range(16))


def test_entra_forms_reach_a_strict_remote_server_in_rfc_form(make_agent, peer):
    a = make_agent({"crm": remote_app(peer.base)}, plugins=()).start()
    base = a.base("crm")
    users = [requests.post(f"{base}/Users", json={"schemas": [USER], "userName": f"r{i}", "active": True}).json()["id"] for i in range(3)]
    gid = requests.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Sales", "members": [{"value": u} for u in users]}).json()["id"]
    # Entra's member removal: the members as the value of a remove of "members".
    r = requests.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": users[0]}, {"value": users[2]}]}]})
    assert r.status_code == 200, r.text
    assert [m["value"] for m in peer.get(f"/Groups/{gid}").json()["members"]] == [users[1]]
    # Entra's disable, a string boolean in a path-less replace with a dotted path.
    r = requests.patch(f"{base}/Users/{users[1]}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "value": {"active": "False", "name.givenName": "Rita"}}]})
    assert r.status_code == 200, r.text
    stored = peer.get(f"/Users/{users[1]}").json()
    assert stored["active"] is False and stored["name"]["givenName"] == "Rita"


def test_okta_custom_extension_on_a_directory(make_agent, slapd):
    clean(slapd)
    settings = slapd.settings()
    apps = {
        "ignoring": {"connector": "ldap", "settings": settings, "auth": {"type": "none"}},
        "rejecting": {"connector": "ldap", "settings": settings, "auth": {"type": "none"}, "unknownAttributes": "reject"},
        "mapped": {"connector": "ldap", "settings": {**settings, "attributes": {f"{OKTA_CUSTOM}:costCenter": "departmentNumber"}}, "auth": {"type": "none"}},
    }
    a = make_agent(apps, plugins=("ldap.so",)).start()
    r = requests.post(f"{a.base('rejecting')}/Users", json=okta_user("rejected"))
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue" and f"{OKTA_CUSTOM}:costCenter" in r.json()["detail"], r.text
    assert slapd.search(slapd.PEOPLE, "(uid=rejected)") == []

    r = requests.post(f"{a.base('ignoring')}/Users", json=okta_user("ignored"))
    assert r.status_code == 201, r.text
    requests.post(f"{a.base('ignoring')}/Users", json=okta_user("ignored2"))
    time.sleep(0.2)
    warnings = [l for l in a.log.read_text().splitlines() if "cannot hold is ignored" in l]
    assert len(warnings) == 1 and f"{OKTA_CUSTOM}:costCenter" in warnings[0], warnings

    r = requests.post(f"{a.base('mapped')}/Users", json=okta_user("mapped"))
    assert r.status_code == 201, r.text
    (entry,) = slapd.search(slapd.PEOPLE, "(uid=mapped)")
    assert entry.departmentNumber.value == "CC-42"
    assert requests.get(f"{a.base('mapped')}/Users/{r.json()['id']}").json()[OKTA_CUSTOM] == {"costCenter": "CC-42"}
    schemas = requests.get(f"{a.base('mapped')}/Schemas").json()["Resources"]
    assert OKTA_CUSTOM in [s["id"] for s in schemas]
    # check says what each app keeps and what becomes of the rest, and how PATCH is made.
    text = a.cli("check").stdout
    assert "other attributes are rejected (400)" in text and "other attributes are ignored, logged once each" in text, text
    assert "patch(get+conditional replace)" in text and f"keeps only: " in text and OKTA_CUSTOM in text, text


def test_okta_custom_extension_through_a_remote_that_publishes_its_schemas(make_agent, peer):
    a = make_agent({"ignoring": remote_app(peer.base), "rejecting": {**remote_app(peer.base), "unknownAttributes": "reject"}}, plugins=()).start()
    r = requests.post(f"{a.base('rejecting')}/Users", json=okta_user("rejected"))
    assert r.status_code == 400 and OKTA_CUSTOM in r.json()["detail"], r.text
    r = requests.post(f"{a.base('ignoring')}/Users", json=okta_user("ignored"))
    assert r.status_code == 201, r.text
    stored = peer.get(f"/Users/{r.json()['id']}").json()
    assert stored["userName"] == "ignored" and OKTA_CUSTOM not in stored
    # A PATCH the remote applies itself is screened the same way.
    r = requests.patch(f"{a.base('ignoring')}/Users/{stored['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": f"{OKTA_CUSTOM}:costCenter", "value": "CC-7"}, {"op": "replace", "path": "displayName", "value": "Ig"}]})
    assert r.status_code == 200, r.text
    assert peer.get(f"/Users/{stored['id']}").json()["displayName"] == "Ig"


def test_a_query_string_that_is_not_utf8_is_a_400(agent):
    r = requests.get(agent.base("mem") + "/Users?filter=userName%20eq%20%22%FF%22", auth=("okta", "change-me"))
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter", r.text
    r = requests.get(agent.base("mem") + "/Users?attributes=%C3", auth=("okta", "change-me"))
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text


ENTRA_TARGETS = ["memory", "flatfile", "mysql", "ldap", "remote"]


@pytest.mark.parametrize("target", ENTRA_TARGETS)
def test_microsoft_entra_provisioning_lands_on_every_target(make_agent, request, target):
    """Entra ID's documented provisioning requests, in its own forms, and the stored result."""
    from test_concurrent_updates import PLUGINS, apps_for
    app, server = apps_for(target, request)
    a = make_agent({"app": app}, plugins=PLUGINS[target]).start()
    s = requests.Session()
    s.headers["Content-Type"] = "application/scim+json"
    base = a.base("app")
    # Query before create; create.
    r = s.get(f"{base}/Users", params={"filter": 'userName eq "Test_User_ab6490ee"'})
    assert r.status_code == 200 and r.json()["totalResults"] == 0
    r = s.post(f"{base}/Users", json={"schemas": [USER], "externalId": "0a21f0f2", "userName": "Test_User_ab6490ee", "active": True,
                                      "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
                                      "displayName": "Test_User_dfeef4c5", "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"}})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    # Multi-valued and single-valued updates, as Entra sends them.
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "value": {"name.familyName": "updatedFamilyName", "displayName": "Updated Name"}}]})
    assert r.status_code == 200, r.text
    # Disable with a string boolean.
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    user = s.get(f"{base}/Users/{uid}").json()
    assert [e["value"] for e in user["emails"]] == ["updatedEmail@microsoft.com"]
    assert user["name"]["familyName"] == "updatedFamilyName" and user["displayName"] == "Updated Name" and user["active"] is False
    # Groups: create, add a member, remove it in Entra's form, rename.
    other = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "Test_User_2"}).json()["id"]
    r = s.post(f"{base}/Groups", json={"schemas": [GROUP], "externalId": "8aa1a0c0", "displayName": "displayName"})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": uid}, {"value": other}]}]})
    assert r.status_code in (200, 204), r.text
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": uid}]}]})
    assert r.status_code in (200, 204), r.text
    r = s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]})
    assert r.status_code in (200, 204), r.text
    group = s.get(f"{base}/Groups/{gid}", params={"excludedAttributes": "members"}).json()
    assert group["displayName"] == "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName" and "members" not in group
    assert [m["value"] for m in s.get(f"{base}/Groups/{gid}").json()["members"]] == [other]

    if target == "mysql":
        row = server.query("SELECT email, familyName, displayName, active FROM users WHERE id = %s", uid)[0]
        assert row == ("updatedEmail@microsoft.com", "updatedFamilyName", "Updated Name", 0)
        assert [r[0] for r in server.query("SELECT member_id FROM group_members WHERE group_id = %s", gid)] == [other]
    elif target == "ldap":
        (entry,) = server.search("dc=example,dc=org", f"(entryUUID={uid})")
        assert entry.mail.values == ["updatedEmail@microsoft.com"] and entry.sn.value == "updatedFamilyName" and ",ou=disabled," in entry.entry_dn
        (g,) = server.search(server.GROUPS, f"(entryUUID={gid})")
        assert g.cn.value == "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName" and [d.split(",")[0] for d in g.member.values] == ["uid=Test_User_2"]
    elif target == "remote":
        stored = server.get(f"/Users/{uid}").json()
        assert [e["value"] for e in stored["emails"]] == ["updatedEmail@microsoft.com"] and stored["active"] is False
        assert [m["value"] for m in server.get(f"/Groups/{gid}").json()["members"]] == [other]


def test_okta_custom_extension_mapped_to_a_legacy_column(make_agent, mariadb):
    mariadb.root_sql(f"""
        DROP DATABASE IF EXISTS custom; CREATE DATABASE custom CHARACTER SET utf8mb4;
        GRANT ALL ON custom.* TO '{mariadb.USER}'@'%';
        CREATE TABLE custom.accounts (id INT AUTO_INCREMENT PRIMARY KEY, login VARCHAR(100) NOT NULL UNIQUE, surname VARCHAR(100),
          cost_center VARCHAR(20)) CHARSET=utf8mb4;
        """)
    mapping = {"users": {"table": "accounts", "key": "id", "keyGeneration": "auto",
                         "columns": {"userName": "login", "name.familyName": "surname", f"{OKTA_CUSTOM}:costCenter": "cost_center"}}}
    apps = {"legacy": {"connector": "mysql", "settings": mariadb.settings(database="custom", mapping=mapping), "auth": {"type": "none"},
                       "unknownAttributes": "reject"}}
    a = make_agent(apps, plugins=("mysql.so",)).start()
    base = a.base("legacy")
    # The mapped extension attribute lands in its column; an email the table cannot hold is refused.
    r = requests.post(f"{base}/Users", json=okta_user("cc"))
    assert r.status_code == 400 and "emails" in r.json()["detail"] and "name.givenName" in r.json()["detail"], r.text
    body = okta_user("cc")
    del body["emails"]
    del body["name"]["givenName"]
    r = requests.post(f"{base}/Users", json=body)
    assert r.status_code == 201, r.text
    assert mariadb.query("SELECT login, surname, cost_center FROM custom.accounts WHERE id = %s", r.json()["id"])[0] == ("cc", "Center", "CC-42")
    assert requests.get(f"{base}/Users/{r.json()['id']}").json()[OKTA_CUSTOM] == {"costCenter": "CC-42"}
    r = requests.patch(f"{base}/Users/{r.json()['id']}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": f"{OKTA_CUSTOM}:costCenter", "value": "CC-7"}]})
    assert r.status_code == 200 and mariadb.query("SELECT cost_center FROM custom.accounts WHERE login = 'cc'")[0] == ("CC-7",), r.text
