"""The ldap connector against a real OpenLDAP slapd: the Okta flow checked with an independent
LDAP search, renames, literal filter values, compliance, and a slapd restart mid-traffic."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import filter_cases
from conftest import creates_across_a_restart
from servers import Slapd

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def clean(slapd):
    conn = slapd.connect()
    for base in (slapd.PEOPLE, slapd.GROUPS):
        conn.search(base, "(objectClass=*)", search_scope="SUBTREE", attributes=[])
        for dn in sorted((e.entry_dn for e in conn.entries if e.entry_dn.lower() != base.lower()), key=len, reverse=True):
            conn.delete(dn)
    conn.unbind()


@pytest.fixture
def dir_agent(make_agent, slapd):
    clean(slapd)
    apps = {"dir": {"connector": "ldap", "settings": slapd.settings(), "auth": {"type": "none"}}}
    return make_agent(apps, plugins=("ldap.so",)).start()


def test_okta_flow_lands_in_the_directory(dir_agent, slapd):
    s, base = requests.Session(), dir_agent.base("dir")
    assert s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen"'}).json()["totalResults"] == 0
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "bjensen", "name": {"givenName": "Barbara", "familyName": "Jensen"},
                                      "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
                                      "displayName": "Babs Jensen", "password": "t1meMa$heen", "active": True})
    assert r.status_code == 201, r.text
    user = r.json()
    entry = slapd.search(slapd.PEOPLE, "(uid=bjensen)")[0]
    assert entry.entry_dn == f"uid=bjensen,{slapd.PEOPLE}"
    assert user["id"] == str(entry.entryUUID) and str(entry.mail) == "bjensen@example.com" and str(entry.sn) == "Jensen"
    assert str(entry.cn) == "Babs Jensen"
    assert entry.userPassword.value.decode().startswith("{SSHA}")  # hashed by the directory (Password Modify)
    import ldap3
    assert ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{slapd.port}"), entry.entry_dn, "t1meMa$heen").bind()
    assert "password" not in user
    assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": "bjensen"}).status_code == 409
    uid = user["id"]
    # PUT update, deactivate (moved to the disabled container), reactivate.
    user["title"] = "Tour Guide"
    assert s.put(f"{base}/Users/{uid}", json=user).json()["title"] == "Tour Guide"
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert slapd.search(slapd.PEOPLE, "(uid=bjensen)")[0].entry_dn == f"uid=bjensen,ou=disabled,{slapd.PEOPLE}"
    assert s.get(f"{base}/Users/{uid}").json()["active"] is False
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]})
    assert r.json()["active"] is True and slapd.search(slapd.PEOPLE, "(uid=bjensen)")[0].entry_dn == f"uid=bjensen,{slapd.PEOPLE}"
    # Password push.
    s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "password", "value": "n3w-Secret"}]})
    assert ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{slapd.port}"), f"uid=bjensen,{slapd.PEOPLE}", "n3w-Secret").bind()
    # Paged import (the connector pages with RFC 2696 underneath).
    for i in range(30):
        assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"imp{i:02}"}).status_code == 201
    page = s.get(f"{base}/Users", params={"startIndex": 11, "count": 10, "sortBy": "userName"}).json()
    assert page["totalResults"] == 31 and [u["userName"] for u in page["Resources"]] == [f"imp{i:02}" for i in range(9, 19)]
    # Group push and membership.
    r = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Tour Guides", "members": [{"value": uid}]})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    g = slapd.search(slapd.GROUPS, "(cn=Tour Guides)")[0]
    assert [str(m) for m in g.member] == [f"uid=bjensen,{slapd.PEOPLE}"]
    other = s.get(f"{base}/Users", params={"filter": 'userName eq "imp00"'}).json()["Resources"][0]["id"]
    s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": other}]}]})
    s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]})
    g = slapd.search(slapd.GROUPS, "(cn=Tour Guides)")[0]
    assert [str(m) for m in g.member] == [f"uid=imp00,{slapd.PEOPLE}"]
    s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members"}]})
    assert s.get(f"{base}/Groups/{gid}").json().get("members", []) == []
    assert s.delete(f"{base}/Groups/{gid}").status_code == 204
    assert not slapd.search(slapd.GROUPS, "(cn=Tour Guides)")
    assert s.delete(f"{base}/Users/{uid}").status_code == 204
    assert not slapd.search(slapd.PEOPLE, "(uid=bjensen)")
    assert s.get(f"{base}/Users/{uid}").status_code == 404


def test_rename_keeps_id_and_group_membership(dir_agent, slapd):
    s, base = requests.Session(), dir_agent.base("dir")
    u = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "old.name", "name": {"familyName": "N"}}).json()
    g = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "Crew", "members": [{"value": u["id"]}]}).json()
    r = s.patch(f"{base}/Users/{u['id']}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": "new.name"}]})
    assert r.status_code == 200 and r.json()["id"] == u["id"] and r.json()["userName"] == "new.name"
    assert slapd.search(slapd.PEOPLE, "(uid=new.name)") and not slapd.search(slapd.PEOPLE, "(uid=old.name)")
    assert [str(m) for m in slapd.search(slapd.GROUPS, "(cn=Crew)")[0].member] == [f"uid=new.name,{slapd.PEOPLE}"]
    assert [m["value"] for m in s.get(f"{base}/Groups/{g['id']}").json()["members"]] == [u["id"]]


@pytest.mark.parametrize("value", ["*)(uid=*", "admin)(|(uid=*", "back\\slash", "nul\u0000byte"])
def test_filter_values_are_literal(dir_agent, value):
    s, base = requests.Session(), dir_agent.base("dir")
    for name in ["admin", "alice", "bob"]:
        s.post(f"{base}/Users", json={"schemas": [USER], "userName": name})
    quoted = json.dumps(value)
    for flt in (f"userName eq {quoted}", f"userName co {quoted}", f"userName sw {quoted}"):
        r = s.get(f"{base}/Users", params={"filter": flt})
        assert r.status_code == 200 and r.json()["totalResults"] == 0, (flt, r.text)


def test_check_names_a_missing_container(make_agent, slapd):
    a = make_agent({"dir": {"connector": "ldap", "settings": slapd.settings(usersDN="ou=nobody,dc=example,dc=org"), "auth": {"type": "none"}}},
                   plugins=("ldap.so",))
    r = a.cli("check", "--json", check=False)
    assert r.returncode == 1 and "usersDN ou=nobody,dc=example,dc=org does not exist" in r.stdout


def test_scim2_tester_against_ldap(dir_agent):
    scim2 = Path(sys.executable).parent / "scim2"
    r = subprocess.run([str(scim2), "--url", dir_agent.base("dir"), "test"], capture_output=True, text=True, timeout=600)
    failures = [l for l in r.stdout.splitlines() if l.startswith(("ERROR", "CRITICAL"))]
    assert r.returncode == 0 and not failures, "\n".join(failures) + r.stdout[-3000:]


def test_slapd_restart_in_the_middle_of_traffic(dir_agent, slapd):
    statuses = creates_across_a_restart(dir_agent.base("dir"), slapd)
    assert set(statuses) <= {201, 503}, set(statuses)
    assert 503 in statuses and statuses[-1] == 201
    # Every acknowledged create is there. One request may have been cut mid-way (written, but
    # the server went away before the reply): the client saw 503 and a retry would get 409.
    stored = len(slapd.search(slapd.PEOPLE, "(uid=restart*)"))
    assert statuses.count(201) <= stored <= statuses.count(201) + 1


def test_concurrent_deactivations_of_one_user(dir_agent, slapd):
    """Okta may send the same deactivation twice at once (a retry racing the original): both
    moves of the entry into ou=disabled must succeed, not turn into 404 or 409."""
    base = dir_agent.base("dir")
    ids = [requests.post(f"{base}/Users", json={"schemas": [USER], "userName": f"racer{i}", "active": True}).json()["id"] for i in range(5)]
    for active in (False, True, False):
        statuses = []

        def patch(uid):
            r = requests.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": active}}]})
            statuses.append((r.status_code, r.text[:200]))

        threads = [threading.Thread(target=patch, args=(uid,)) for uid in ids for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {s for s, _ in statuses} == {200}, [s for s in statuses if s[0] != 200]
        for uid in ids:
            assert requests.get(f"{base}/Users/{uid}").json()["active"] is active
    disabled = slapd.search(slapd.PEOPLE, "(uid=racer*)")
    assert sorted(e.entry_dn for e in disabled) == [f"uid=racer{i},ou=disabled,{slapd.PEOPLE}" for i in range(5)]


def test_pushed_down_filters_and_sorts_answer_as_the_agent_does(make_agent, slapd):
    """The same users in an ldap app (filters become RFC 4515 filters) and a memory app (the
    agent's own evaluator), as the directory can hold them (an account is active unless
    deactivated; no empty strings; no nickName; emails as values without types, the primary or
    else the work one first): every filter selects the same users
    from both, and every sort orders them alike."""
    clean(slapd)
    users = [{"active": True, **{k: v for k, v in u.items() if v != "" and k != "nickName"}} for u in filter_cases.USERS]
    for u in users:
        if "emails" in u:
            ordered = sorted(u["emails"], key=lambda e: 0 if e.get("primary") else 1 if e.get("type") == "work" else 2)
            u["emails"] = [{"value": e["value"]} for e in ordered]
    apps = {"dir": {"connector": "ldap", "settings": slapd.settings(), "auth": {"type": "none"}},
            "mem": {"connector": "memory", "auth": {"type": "none"}}}
    a = make_agent(apps, plugins=("ldap.so", "memory.so")).start()
    differing = filter_cases.differing(a.base("dir"), a.base("mem"), users)
    assert not differing, differing
    assert not filter_cases.sorts_differing(a.base("dir"), a.base("mem"))
    # externalId is caseExact; the directory's employeeNumber ignores case.
    assert filter_cases.selected(a.base("dir"), 'externalId eq "a1"') == ["bob@example.com"]
    # uid has no ordering rule: ordering comparisons are the agent's.
    assert filter_cases.selected(a.base("dir"), 'userName ge "bob@example.com"') == ["bob@example.com", "carol", "dave_x", "erin", "frank"]


def test_a_large_directory_answers_pages(make_agent):
    """60,000 people (about 23 MB as SCIM JSON): a page is a page, the directory's entries
    going through the connector as they arrive (the reply was the whole directory, a 502 over
    the 16 MiB limit); a sort the directory cannot do over that many is a 400 tooMany. A
    directory of its own: emptying one this size over LDAP would take minutes."""
    directory = Slapd()
    try:
        directory.bulk_add("".join(
            f"dn: uid=user{i:05},{directory.PEOPLE}\nobjectClass: inetOrgPerson\nuid: user{i:05}\ncn: User {i}\nsn: Number{i}\n"
            f"givenName: User\nmail: user{i}@work.example\ntitle: Engineer\n\n" for i in range(60000)))
        a = make_agent({"dir": {"connector": "ldap", "settings": directory.settings(), "auth": {"type": "none"}}}, plugins=("ldap.so",)).start()
        base, s = a.base("dir"), requests.Session()

        def search(**params):
            r = s.get(f"{base}/Users", params=params)
            assert r.status_code == 200, r.text[:300]
            return r.json()["totalResults"], [u["userName"] for u in r.json()["Resources"]]

        total, names = search(startIndex=59998, count=5)
        assert total == 60000 and len(names) == 3
        assert search(filter='userName eq "user04321"') == (1, ["user04321"])
        assert search(filter='name.familyName ew "r04321"') == (0, [])
        assert search(filter='title eq "engineer"', count=2)[0] == 60000
        r = s.get(f"{base}/Users", params={"sortBy": "title", "count": 10})
        assert r.status_code == 400 and r.json()["scimType"] == "tooMany", r.text[:300]
    finally:
        directory.destroy()


def test_a_size_limit_that_would_cut_a_list_short_is_an_error(make_agent):
    """Bound as a service account, not the rootdn, OpenLDAP returns at most 500 entries even
    with paged results: a list of 600 users is a 502 naming the limit and how to raise it
    (it answered 500 users as if they were all, and an import missed the rest). With the
    limit raised as the message says, all 600 come back."""
    directory = Slapd()
    try:
        directory.bulk_add("".join(f"dn: uid=u{i:03},{directory.PEOPLE}\nobjectClass: inetOrgPerson\nuid: u{i:03}\ncn: U\nsn: S\n\n" for i in range(600))
                           + f"dn: cn=svc,{directory.SUFFIX}\nobjectClass: person\ncn: svc\nsn: svc\nuserPassword: svc-pw\n\n")
        account = f"cn=svc,{directory.SUFFIX}"
        a = make_agent({"dir": {"connector": "ldap", "settings": {**directory.settings(), "bindDN": account, "bindPassword": "svc-pw"},
                                "auth": {"type": "none"}}}, plugins=("ldap.so",)).start()
        r = requests.get(a.base("dir") + "/Users", params={"count": 10})
        assert r.status_code == 502, r.text
        assert "after 500 entries" in r.json()["detail"] and f'limits dn.exact="{account}" size.prtotal=unlimited' in r.json()["detail"]
        assert requests.get(a.base("dir") + "/Users", params={"filter": 'userName eq "u599"'}).json()["totalResults"] == 1
        directory.stop()
        directory.conf.write_text(directory.conf.read_text() + f'limits dn.exact="{account}" size.prtotal=unlimited\n')
        directory.start()
        # The pooled connection died with the restart: the read runs again on a new one.
        r = requests.get(a.base("dir") + "/Users", params={"count": 10, "startIndex": 595})
        assert r.status_code == 200 and r.json()["totalResults"] == 600, r.text
        assert [u["userName"] for u in r.json()["Resources"]] == ["u594", "u595", "u596", "u597", "u598", "u599"]
    finally:
        directory.destroy()


def test_group_members_as_the_directory_spells_them(make_agent):
    """Members are looked up 100 to a search, by container: a member DN spelled with other
    case and spaces, a nested group, a member that no longer exists and an RDN with an
    escaped comma all read back as they should (the last two the slow way, one search each)."""
    directory = Slapd()
    try:
        people, groups = directory.PEOPLE, directory.GROUPS
        directory.bulk_add("".join(f"dn: uid=p{i},{people}\nobjectClass: inetOrgPerson\nuid: p{i}\ncn: P\nsn: S\n\n" for i in range(250))
                           + f"dn: cn=Doe\\, John,{people}\nobjectClass: inetOrgPerson\nuid: jdoe\ncn: Doe, John\nsn: Doe\n\n"
                           + f"dn: cn=inner,{groups}\nobjectClass: groupOfNames\ncn: inner\nmember: uid=p0,{people}\n\n"
                           + f"dn: cn=outer,{groups}\nobjectClass: groupOfNames\ncn: outer\n"
                           + "".join(f"member: uid=p{i},{people}\n" for i in range(1, 250))
                           + f"member: UID=P0 , OU=People, DC=example, DC=org\nmember: cn=Doe\\, John,{people}\n"
                           + f"member: cn=inner,{groups}\nmember: uid=gone,{people}\n\n")
        a = make_agent({"dir": {"connector": "ldap", "settings": directory.settings(), "auth": {"type": "none"}}}, plugins=("ldap.so",)).start()
        base = a.base("dir")
        ids = {e.uid.value or e.cn.value: e.entryUUID.value
               for e in directory.search(directory.SUFFIX, "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))", attributes=("uid", "cn", "entryUUID"))}
        outer = requests.get(base + "/Groups", params={"filter": 'displayName eq "outer"'}).json()["Resources"][0]
        got = sorted((m["value"], m["type"]) for m in outer["members"])
        want = sorted([(ids[f"p{i}"], "User") for i in range(250)] + [(ids["jdoe"], "User"), (ids["inner"], "Group")])
        assert got == want
    finally:
        directory.destroy()
