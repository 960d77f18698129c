"""The audit log: one line per change, who and what, never a secret; rotation; `audit`."""
import concurrent.futures
import json

import requests

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SECRET = "S3cret-Passw0rd!"


def audited_agent(make_agent, **audit):
    agent = make_agent({"mem": {"connector": "memory", "auth": {"type": "basic", "username": "okta", "password": "change-me"}}})
    settings = {"file": "audit.log", **audit}
    agent.config.write_text(agent.config.read_text().replace("apps:", f"audit: {json.dumps(settings)}\napps:"))
    return agent.start()


def lines(agent, name="audit.log"):
    return [json.loads(l) for l in (agent.workdir / name).read_text().splitlines()]


def test_every_change_is_one_line_without_secrets(make_agent):
    agent = audited_agent(make_agent)
    s = requests.Session()
    s.auth = ("okta", "change-me")
    base = agent.base("mem")
    uid = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "ann", "password": SECRET, "name": {"givenName": "Ann"}}).json()["id"]
    assert s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "password", "value": SECRET + "2"}]}).status_code == 200
    assert s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"title": "CEO", "active": False}}]}).status_code == 200
    user = s.get(f"{base}/Users/{uid}").json()
    assert s.put(f"{base}/Users/{uid}", json={**user, "password": SECRET + "3"}).status_code == 200
    assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": "ann"}).status_code == 409  # a refused change is audited too
    gid = s.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "staff"}).json()["id"]
    assert s.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}).status_code == 204
    bulk = s.post(f"{base}/Bulk", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b1", "data": {"schemas": [USER], "userName": "bob", "password": SECRET}},
        {"method": "DELETE", "path": f"/Users/{uid}"}]}).json()
    assert [op["status"] for op in bulk["Operations"]] == ["201", "204"]
    assert s.get(f"{base}/Users").status_code == 200  # reads are not audited
    assert requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "x"}).status_code == 401  # nor unauthenticated requests

    text = (agent.workdir / "audit.log").read_text()
    assert SECRET not in text
    records = lines(agent)
    assert [(r["operation"], r["resourceType"], r["status"]) for r in records] == [
        ("create", "User", 201), ("patch", "User", 200), ("patch", "User", 200), ("replace", "User", 200), ("create", "User", 409),
        ("create", "Group", 201), ("addMembers", "Group", 204), ("create", "User", 201), ("delete", "User", 204)]
    for r in records:
        assert r["app"] == "mem" and r["requestId"] and r["durationMs"] >= 0 and r["time"].endswith("Z")
        assert r["client"] == {"credential": "basic okta", "remoteAddress": "127.0.0.1"}
    assert records[0]["id"] == uid and records[0]["userName"] == "ann"
    assert records[0]["attributes"] == ["name", "password", "userName"]
    assert records[1]["attributes"] == ["password"] and records[2]["attributes"] == ["active", "title"]
    assert records[4]["scimType"] == "uniqueness"
    assert records[5]["displayName"] == "staff" and records[6]["attributes"] == ["members"]
    assert records[7]["bulkOperation"] == 0 and records[8]["bulkOperation"] == 1 and records[7]["requestId"] == records[8]["requestId"]

    # Read back by the admin.
    out = agent.cli("audit", "--app", "mem", "--since", "1h", "--json").stdout.splitlines()
    assert [json.loads(l) for l in out] == records
    listing = agent.cli("audit", "--since", "10m").stdout
    assert "mem  create  User" in listing and "(ann)" in listing and "by basic okta from 127.0.0.1" in listing
    assert agent.cli("audit", "--app", "other").stdout == ""
    assert agent.cli("audit", "--since", "soon", check=False).returncode != 0


def test_the_log_rotates_by_size_keeping_n_files(make_agent):
    agent = audited_agent(make_agent, maxSizeMiB=1, keep=2)
    base = agent.base("mem")

    def create(i):
        return requests.post(f"{base}/Users", auth=("okta", "change-me"), json={"schemas": [USER], "userName": f"user{i:05d}", "title": "x" * 200}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(create, range(4000)))
    assert statuses == [201] * 4000
    assert (agent.workdir / "audit.log.1").exists() and not (agent.workdir / "audit.log.3").exists()
    assert (agent.workdir / "audit.log.1").stat().st_size >= 1 << 20
    names = [r["userName"] for f in ("audit.log.2", "audit.log.1", "audit.log") if (agent.workdir / f).exists() for r in lines(agent, f)]
    assert sorted(names) == [f"user{i:05d}" for i in range(4000)]  # nothing lost across rotations
    assert len(agent.cli("audit", "--json").stdout.splitlines()) == 4000
