"""The native connector: the legacy HR library of Examples/legacy-hr bound by its manifest
through libffi, with no glue code. The stored result is read from the library's own storage
(employees.tsv)."""
import concurrent.futures
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "Examples" / "legacy-hr"
SCIM2 = Path(sys.executable).parent / "scim2"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
NONE = {"type": "none"}


def hr_app(directory, manifest=EXAMPLE / "hrapi.yaml", **extra):
    return {"connector": "native", "settings": {"manifest": str(manifest), "directory": str(directory)}, "auth": NONE, **extra}


def employees(directory):
    """The library's own storage, as it wrote it: number -> (login, first, last, email, reference, active)."""
    path = Path(directory) / "employees.tsv"
    rows = [l.split("\t") for l in path.read_text().splitlines() if not l.startswith("#")] if path.exists() else []
    return {r[0]: (r[1], r[2], r[3], r[4], r[5], r[6] == "1") for r in rows}


def test_the_okta_flow_through_the_legacy_library(make_agent, tmp_path):
    data = tmp_path / "hr"
    a = make_agent({"hr": hr_app(data)}, plugins=("native.so",)).start()
    base, s = a.base("hr"), requests.Session()
    # What the manifest maps is what is advertised: users, no groups, these attributes.
    caps = s.get(f"{base}/ResourceTypes").json()
    assert [t["name"] for t in caps["Resources"]] == ["User"]
    schema = s.get(f"{base}/Schemas/{USER}").json()
    assert sorted(a["name"] for a in schema["attributes"]) == ["active", "emails", "name", "userName"]
    assert [sub["name"] for a in schema["attributes"] if a["name"] == "emails" for sub in a["subAttributes"]] == ["value"]

    r = s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen@example.com"'})
    assert r.status_code == 200 and r.json()["totalResults"] == 0
    r = s.post(f"{base}/Users", json={
        "schemas": [USER], "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}], "active": True, "externalId": "00u1abcd"})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert uid == "E000001" and r.json()["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert employees(data) == {"E000001": ("bjensen@example.com", "Barbara", "Jensen", "bjensen@example.com", "00u1abcd", True)}
    assert r.json()["externalId"] == "00u1abcd" and r.json()["emails"] == [{"value": "bjensen@example.com"}]
    # The same login again: the library's -3, mapped to 409.
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "BJENSEN@example.com"})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness" and "login BJENSEN@example.com is taken" in r.json()["detail"], r.text

    r = s.get(f"{base}/Users", params={"filter": 'userName eq "bjensen@example.com"'})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]
    # Okta's deactivation: PATCH active false (get, then the library's update).
    r = s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert employees(data)["E000001"][5] is False
    user = s.get(f"{base}/Users/{uid}").json()
    user["name"]["givenName"] = "Babs"
    user["active"] = True
    r = s.put(f"{base}/Users/{uid}", json=user)
    assert r.status_code == 200 and r.json()["name"]["givenName"] == "Babs"
    assert employees(data)["E000001"] == ("bjensen@example.com", "Babs", "Jensen", "bjensen@example.com", "00u1abcd", True)

    # A list by the library's iteration; the agent filters and pages.
    for i in range(5):
        assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"user{i}", "active": i % 2 == 0}).status_code == 201
    r = s.get(f"{base}/Users", params={"filter": "active eq true", "startIndex": 2, "count": 2}).json()
    assert r["totalResults"] == 4 and [u["userName"] for u in r["Resources"]] == ["user0", "user2"]
    assert len(employees(data)) == 6

    assert s.delete(f"{base}/Users/{uid}").status_code == 204
    r = s.get(f"{base}/Users/{uid}")
    assert r.status_code == 404 and "E000001" in r.json()["detail"]
    assert "E000001" not in employees(data)
    assert s.delete(f"{base}/Users/{uid}").status_code == 404
    # Not mapped: groups.
    assert s.get(f"{base}/Groups").status_code in (404, 501)


def test_scim2_tester_passes_for_what_the_manifest_maps(make_agent, tmp_path):
    a = make_agent({"hr": hr_app(tmp_path / "hr")}, plugins=("native.so",)).start()
    r = subprocess.run([str(SCIM2), "--url", a.base("hr"), "test"], capture_output=True, text=True, timeout=600)
    failures = [l for l in r.stdout.splitlines() if l.startswith(("ERROR", "CRITICAL"))]
    assert r.returncode == 0 and not failures, r.stdout[-4000:]
    assert r.stdout.count("SUCCESS") > 20


@pytest.mark.parametrize("edit,expected", [
    (("function: hr_remove_employee", "function: hr_remove_employe"), "hrapi.yaml: users.delete.function: no symbol hr_remove_employe in libhrapi.so"),
    (("{ type: int32, from: active, default: 1 }\n      - { type: buffer", "{ type: int33, from: active, default: 1 }\n      - { type: buffer"),
     "hrapi.yaml: users.create.arguments[6].type: unknown type int33"),
    (("  otherwise: 500\n", ""), "hrapi.yaml: results: not total: add otherwise:"),
    (("from: name.familyName }", "from: name.surname }"), "hrapi.yaml: users.create.arguments[3].from: name.surname is not an attribute of User"),
])
def test_a_bad_manifest_is_reported_by_check_naming_the_file_and_the_key(make_agent, tmp_path, edit, expected):
    manifest_dir = tmp_path / "manifest"
    manifest_dir.mkdir()
    shutil.copy(EXAMPLE / "libhrapi.so", manifest_dir / "libhrapi.so")
    text = (EXAMPLE / "hrapi.yaml").read_text()
    assert edit[0] in text
    (manifest_dir / "hrapi.yaml").write_text(text.replace(edit[0], edit[1], 1))
    a = make_agent({"hr": hr_app(tmp_path / "hr", manifest=manifest_dir / "hrapi.yaml"),
                    "mem": {"connector": "memory", "auth": NONE}}, plugins=("native.so", "memory.so")).start()
    r = a.cli("check", "--app", "hr", check=False)
    assert r.returncode != 0 and expected in r.stdout + r.stderr, r.stdout + r.stderr
    listed = a.cli("plugins", check=False)
    assert expected in listed.stdout + listed.stderr, listed.stdout + listed.stderr
    # The app fails alone: the other one serves.
    assert requests.get(a.base("hr") + "/Users").status_code == 503
    assert requests.get(a.base("mem") + "/Users").status_code == 200


def test_the_library_crashing_under_process_isolation_does_not_take_the_agent_down(make_agent, tmp_path):
    data = tmp_path / "hr"
    data.mkdir()
    (data / "crash-on-add").write_text("crash.me")  # the library's test hook (hrapi.h)
    a = make_agent({"hr": hr_app(data, isolation="process"), "mem": {"connector": "memory", "auth": NONE}},
                   plugins=("native.so", "memory.so")).start()
    base = a.base("hr")
    assert requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "before"}).status_code == 201
    r = requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "crash.me"})
    assert r.status_code in (502, 503), r.text
    assert a.process.poll() is None
    assert requests.get(a.base("mem") + "/Users").status_code == 200
    assert "killed by SIGSEGV" in r.json()["detail"] or "SIGSEGV" in a.log.read_text()
    # A new child serves the app again, and what was stored before is there.
    assert wait_for(lambda: requests.get(f"{base}/Users", params={"filter": 'userName eq "before"'}).status_code == 200)
    r = requests.get(f"{base}/Users", params={"filter": 'userName eq "before"'})
    assert r.json()["totalResults"] == 1, r.text
    assert [e[0] for e in employees(data).values()] == ["before"]


def test_concurrent_patches_of_one_employee_all_land(make_agent, tmp_path):
    """Through the library, which has no conditional write: the agent's updates of one
    resource queue, so each of these PATCHes (one attribute each, all at once) lands."""
    data = tmp_path / "hr"
    a = make_agent({"hr": hr_app(data)}, plugins=("native.so",)).start()
    base = a.base("hr")
    uid = requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "conc", "active": True}).json()["id"]
    changes = [("name.givenName", "Ada"), ("name.familyName", "Lovelace"), ("externalId", "ext-1"), ("active", False)]
    bodies = [{"schemas": [PATCH], "Operations": [{"op": "replace", "path": p, "value": v}]} for p, v in changes]
    bodies.append({"schemas": [PATCH], "Operations": [{"op": "add", "path": "emails", "value": [{"value": "ada@example.com"}]}]})
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        statuses = list(pool.map(lambda b: requests.patch(f"{base}/Users/{uid}", json=b, timeout=30).status_code, bodies))
    assert statuses == [200] * len(bodies), statuses
    assert employees(data)[uid] == ("conc", "Ada", "Lovelace", "ada@example.com", "ext-1", False)
