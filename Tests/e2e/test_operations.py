"""Running it: the deletion guard (apps.<app>.guard) and the liveness/readiness probes."""
import concurrent.futures
import json
import time

import requests

from conftest import remote_app, wait_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
NONE = {"type": "none"}


def create_users(base, n, tag):
    s = requests.Session()
    return [s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"{tag}{i}"}).json()["id"] for i in range(n)]


def deactivate(base, uid):
    return requests.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]})


def test_the_deletion_guard_stops_mass_deletes_until_released(make_agent):
    agent = make_agent({
        "mem": {"connector": "memory", "auth": NONE, "guard": {"maxDeletesPerHour": 3, "maxDeactivationsPerHour": 2}},
        "free": {"connector": "memory", "auth": NONE},
    }).start()
    base = agent.base("mem")
    ids = create_users(base, 12, "g")

    # Ten deletes at once against a limit of three: exactly three go through.
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda uid: requests.delete(f"{base}/Users/{uid}").status_code, ids[:10]))
    assert sorted(statuses) == [204] * 3 + [429] * 7, statuses
    deleted = [uid for uid, st in zip(ids[:10], statuses) if st == 204]
    kept = [uid for uid, st in zip(ids[:10], statuses) if st == 429]
    for uid in deleted:
        assert requests.get(f"{base}/Users/{uid}").status_code == 404
    for uid in kept:  # refused: still there
        assert requests.get(f"{base}/Users/{uid}").status_code == 200

    r = requests.delete(f"{base}/Users/{kept[0]}")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3600"
    body = r.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "deletion guard: app mem reached 3 deletes" in body["detail"] and "guard release --app mem" in body["detail"]
    # The SCIM 1.1 dialect and Bulk are held by the same guard.
    assert requests.delete(agent.url(f"/apps/mem/scim/v1/Users/{kept[0]}")).status_code == 429
    bulk = requests.post(f"{base}/Bulk", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "DELETE", "path": f"/Users/{kept[1]}"}]}).json()
    assert bulk["Operations"][0]["status"] == "429"
    assert requests.get(f"{base}/Users/{kept[1]}").status_code == 200

    # Nothing else is affected: creates, updates, and the other app's deletes.
    assert requests.post(f"{base}/Users", json={"schemas": [USER], "userName": "new"}).status_code == 201
    assert requests.patch(f"{base}/Users/{kept[2]}", json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "title", "value": "t"}]}).status_code == 200
    other = create_users(agent.base("free"), 5, "f")
    assert all(requests.delete(f"{agent.base('free')}/Users/{u}").status_code == 204 for u in other)

    # Deactivations have their own threshold, by PATCH or PUT.
    assert deactivate(base, kept[3]).status_code == 200
    user = requests.get(f"{base}/Users/{kept[4]}").json()
    assert requests.put(f"{base}/Users/{kept[4]}", json={**user, "active": False}).status_code == 200
    r = deactivate(base, kept[5])
    assert r.status_code == 429 and "deactivations" in r.json()["detail"]
    assert requests.get(f"{base}/Users/{kept[5]}").json().get("active") is not False

    m = metrics(agent)
    assert m['provisioning_deletion_guard_refusals_total{app="mem",change="delete"}'] == 10  # 7 + 1 + the 1.1 one + the Bulk one
    assert m['provisioning_deletion_guard_refusals_total{app="mem",change="deactivation"}'] == 1
    assert m['provisioning_deletion_guard_stopped{app="mem",change="delete"}'] == 1

    # Shown by /healthz and `guard status`, released by `guard release`.
    health = requests.get(agent.url("/healthz")).json()["apps"]["mem"]["guard"]
    assert health["delete"]["tripped"] is True and health["delete"]["refused"] >= 9
    assert wait_for(lambda: json.loads(agent.cli("guard", "status").stdout).get("mem", {}).get("delete", {}).get("tripped"))
    out = agent.cli("guard", "release", "--app", "mem")
    assert "released" in out.stdout
    assert requests.delete(f"{base}/Users/{kept[0]}").status_code == 204
    assert deactivate(base, kept[5]).status_code == 200

    # A configuration reload releases it too.
    for uid in kept[1:3]:
        assert requests.delete(f"{base}/Users/{uid}").status_code == 204
    assert requests.delete(f"{base}/Users/{kept[3]}").status_code == 429
    agent.config.write_text(agent.config.read_text() + "\n")
    assert wait_for(lambda: requests.delete(f"{base}/Users/{kept[3]}").status_code == 204)
    assert "deletion guard released" in agent.log.read_text()


def test_a_guard_config_error_names_the_key(make_agent):
    agent = make_agent({"mem": {"connector": "memory", "auth": NONE, "guard": {"maxDeletesPerHour": -1, "deletes": 3}}})
    out = agent.cli("check", check=False)
    assert out.returncode == 2
    assert "apps.mem.guard.maxDeletesPerHour: must be a whole number" in out.stderr
    assert "apps.mem.guard.deletes: unknown key" in out.stderr


def metrics(agent):
    """`/metrics` as {'name{labels}': value}."""
    out = {}
    for line in requests.get(agent.url("/metrics")).text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_count_what_was_asked(make_agent):
    agent = make_agent({"mem": {"connector": "memory", "auth": NONE},
                        "files": {"connector": "flatfile", "settings": {"directory": "d"}, "isolation": "process", "auth": NONE}}).start()
    assert requests.get(agent.url("/metrics")).headers["Content-Type"].startswith("text/plain; version=0.0.4")
    base = agent.base("mem")
    ids = create_users(base, 5, "m")
    for uid in ids[:3]:
        assert requests.get(f"{base}/Users/{uid}").status_code == 200
    for _ in range(2):
        assert requests.get(f"{base}/Users/nobody").status_code == 404
    assert requests.delete(f"{base}/Users/{ids[0]}").status_code == 204
    create_users(agent.base("files"), 4, "f")
    m = metrics(agent)
    assert m['provisioning_requests_total{app="mem",method="POST",status="201"}'] == 5
    assert m['provisioning_requests_total{app="mem",method="GET",status="200"}'] == 3
    assert m['provisioning_requests_total{app="mem",method="GET",status="404"}'] == 2
    assert m['provisioning_requests_total{app="mem",method="DELETE",status="204"}'] == 1
    assert m['provisioning_request_duration_seconds_count{app="mem",operation="create"}'] == 5
    assert m['provisioning_request_duration_seconds_count{app="mem",operation="get"}'] == 5
    assert m['provisioning_requests_total{app="files",method="POST",status="201"}'] == 4
    assert m['provisioning_connector_call_duration_seconds_count{app="files",connector="flatfile",isolation="process"}'] == 4
    assert m['provisioning_connector_call_errors_total{app="mem",connector="memory",status="404"}'] == 2
    assert m['provisioning_plugin_generations{connector="memory",state="serving"}'] == 1
    assert m['provisioning_connector_calls_in_flight{connector="memory"}'] == 0
    assert m['provisioning_deletion_guard_stopped{app="mem",change="delete"}'] == 0


def test_liveness_and_readiness(make_agent):
    agent = make_agent({"mem": {"connector": "memory", "auth": NONE},
                        "away": remote_app("http://127.0.0.1:9/v2")}).start()  # nothing listens: a definite failure
    assert requests.get(agent.url("/livez")).json() == {"status": "ok"}
    assert wait_for(lambda: requests.get(agent.url("/readyz")).status_code == 200)
    assert requests.get(agent.url("/readyz")).json() == {"status": "ready"}
