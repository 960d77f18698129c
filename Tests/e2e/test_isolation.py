"""isolation: process — a faulty connector fails only its own app's calls; plugin trust."""
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import ROOT, PLUGINS, all_user_names, wait_for
from test_hot_reload import Load  # create, read, PATCH and filter traffic that records every failure

FAULTY = ROOT / "plugins-test"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
NONE = {"type": "none"}


def faulty(fault):
    return (FAULTY / f"faulty-{fault}.so").read_bytes()


def publish(directory, name, data):
    """Replaces a plugin file the way a deployment should: written aside, renamed into place."""
    tmp = directory / f".{name}.partial"
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.rename(tmp, directory / name)


def children(pid):
    """The agent's connector-host child processes."""
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "connector-host"], capture_output=True, text=True).stdout
    return out.split()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def healthy_and_faulty_apps(fault, process=None):
    bad = {"connector": "faulty", "isolation": "process", "auth": NONE, "process": {"callTimeout": 2, **(process or {})}}
    return {
        "mem": {"connector": "memory", "auth": NONE},
        "memiso": {"connector": "memory", "isolation": "process", "auth": NONE},
        "files": {"connector": "flatfile", "isolation": "process", "settings": {"directory": "data/files"}, "auth": NONE},
        "bad": bad,
    }


@pytest.mark.parametrize("fault,reason,process", [
    ("segv", "was killed by SIGSEGV", None),
    ("abort", "was killed by SIGABRT", None),
    ("hang", "was killed after a call (get) exceeded 2 s", None),
    ("oom", "was killed by SIGABRT", {"memoryLimitMiB": 400}),
])
def test_a_faulty_isolated_connector_fails_only_its_own_calls(make_agent, fault, reason, process):
    agent = make_agent(healthy_and_faulty_apps(fault, process), extra_plugins={"faulty.so": faulty(fault)}).start()
    bad = agent.base("bad")
    created = requests.post(f"{bad}/Users", json={"schemas": [USER], "userName": "someone"}).json()
    with Load(agent, ["mem", "memiso", "files"]) as load:
        # Several calls in flight at once on the faulty child: each one gets its 502.
        results = []
        threads = [threading.Thread(target=lambda: results.append(requests.get(f"{bad}/Users/{created['id']}", timeout=30)))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        crashed = [r for r in results if r.status_code == 502]
        assert crashed, [(r.status_code, r.text) for r in results]
        for r in results:
            assert r.status_code in (502, 503), r.text  # 503: arrived while the child was restarting
            assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        detail = crashed[0].json()["detail"]
        assert "connector faulty for app bad" in detail and reason in detail, detail

        # Reported meanwhile, by /healthz and by `plugins`.
        deadline = time.time() + 10
        while time.time() < deadline:
            process_status = requests.get(agent.url("/healthz")).json()["apps"]["bad"]["process"]
            if process_status["crashes"] >= 1 and process_status.get("restarts", 0) >= 1:
                break
            time.sleep(0.1)
        assert process_status["crashes"] >= 1 and process_status["restarts"] >= 1, process_status
        assert reason in process_status["lastReason"]
        def listed_reason():  # `plugins` reads the status file the agent rewrites a few times a second
            listed = json.loads(agent.cli("plugins", "--json").stdout)["plugins"]
            entry = next(p for p in listed if p.get("connector") == "faulty" and p["state"] == "serving")
            return entry["processes"][0].get("lastReason", "")
        assert reason in wait_for(listed_reason, 5)

        # The fixed build, hot-reloaded: the app recovers by itself.
        publish(agent.plugins_dir, "faulty.so", faulty("none"))
        deadline = time.time() + 20
        while time.time() < deadline:
            r = requests.get(f"{bad}/Users/{created['id']}", timeout=30)
            if r.status_code == 200:
                break
            time.sleep(0.1)
        assert r.status_code == 200 and r.json()["userName"] == f"user-{created['id']}", r.text
        time.sleep(0.5)
    assert agent.process.poll() is None, "the agent died"
    assert load.failures == [], load.failures[:5]
    assert load.requests > 50
    for app, names in load.acknowledged.items():
        assert names <= all_user_names(requests.Session(), agent.base(app)), app
    assert requests.get(agent.url("/healthz")).json()["status"] == "ok"
    # One child per isolated app, none left over from the crashed or retired children.
    assert len(children(agent.process.pid)) == 3, children(agent.process.pid)
    agent.stop()
    assert children(agent.process.pid) == []


def test_an_isolated_flatfile_plugin_replaced_50_times_under_load(make_agent):
    agent = make_agent({"files": {"connector": "flatfile", "isolation": "process", "settings": {"directory": "data/files"}, "auth": NONE}},
                       plugins=("flatfile.so",)).start()
    base_build = (PLUGINS / "flatfile.so").read_bytes()
    with Load(agent, ["files"], workers=3) as load:
        time.sleep(1)
        rss0 = rss_kib(agent.process.pid)
        last = None
        for i in range(50):
            # The same code with a unique trailer: each is a new build, a new generation.
            publish(agent.plugins_dir, "flatfile.so", base_build + f"\0build-{i}".encode())
            deadline = time.time() + 20
            while time.time() < deadline:
                listed = json.loads(agent.cli("plugins", "--json").stdout)["plugins"]
                serving = [p for p in listed if p.get("connector") == "flatfile" and p["state"] == "serving"]
                if serving and serving[0]["contentHash"] != last:
                    last = serving[0]["contentHash"]
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"build {i} was not loaded")
        time.sleep(1.5)
        rss1 = rss_kib(agent.process.pid)
    assert load.failures == [], load.failures[:5]
    assert load.requests > 100
    assert load.acknowledged["files"] and load.acknowledged["files"] <= all_user_names(requests.Session(), agent.base("files"))
    growth = (rss1 - rss0) / 1024 / 50
    assert growth <= 0.5, f"{growth:.2f} MiB per reload"
    deadline = time.time() + 12  # retired children end once drained, killed after 10 s at most
    while len(children(agent.process.pid)) > 1 and time.time() < deadline:
        time.sleep(0.2)
    assert len(children(agent.process.pid)) == 1, children(agent.process.pid)


def plugin_state(agent, file_name):
    listed = json.loads(agent.cli("plugins", "--json").stdout)["plugins"]
    return [p for p in listed if p["file"].endswith("/" + file_name)]


def test_world_writable_and_foreign_plugins_are_refused(make_agent):
    agent = make_agent({"mem": {"connector": "memory", "auth": NONE}, "files": {"connector": "flatfile", "settings": {"directory": "d"}, "auth": NONE}})
    os.chmod(agent.plugins_dir / "memory.so", 0o666)
    os.chown(agent.plugins_dir / "flatfile.so", 65534, 65534)  # nobody
    agent.start()
    r = requests.get(f"{agent.base('mem')}/Users")
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]
    assert requests.get(f"{agent.base('files')}/Users").status_code == 503
    mem = plugin_state(agent, "memory.so")[0]
    assert mem["state"] == "failed" and "writable by others (mode 0666)" in mem["lastError"], mem
    files = plugin_state(agent, "flatfile.so")[0]
    assert files["state"] == "failed" and "owned by uid 65534" in files["lastError"], files
    assert "writable by others" in agent.log.read_text()

    # Fixed by the admin: picked up without a restart.
    os.chmod(agent.plugins_dir / "memory.so", 0o644)
    os.chown(agent.plugins_dir / "flatfile.so", 0, 0)
    assert wait_for(lambda: requests.get(f"{agent.base('mem')}/Users").status_code == 200)
    assert wait_for(lambda: requests.get(f"{agent.base('files')}/Users").status_code == 200)

    # A plugins directory others may write is refused as a whole, for any new build.
    os.chmod(agent.plugins_dir, 0o777)
    publish(agent.plugins_dir, "memory.so", (ROOT / "plugins-alt" / "memory.so").read_bytes())
    assert wait_for(lambda: "plugins directory" in (plugin_state(agent, "memory.so")[0].get("lastError") or ""))
    assert "writable by others" in plugin_state(agent, "memory.so")[0]["lastError"]
    health = requests.get(agent.url("/healthz")).json()["apps"]["mem"]
    assert health["status"] == "serving" and health["version"] == "1.0.0"  # the old build keeps serving
    os.chmod(agent.plugins_dir, 0o755)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def sign(key, plugin):
    openssl("pkeyutl", "-sign", "-inkey", str(key), "-rawin", "-in", str(plugin), "-out", str(plugin) + ".sig")


def test_signed_plugins_only_with_trust_public_keys(make_agent, tmp_path):
    for name in ("trusted", "other"):
        openssl("genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / f"{name}.pem"))
        openssl("pkey", "-in", str(tmp_path / f"{name}.pem"), "-pubout", "-out", str(tmp_path / f"{name}.pub"))
    agent = make_agent({"mem": {"connector": "memory", "auth": NONE}, "files": {"connector": "flatfile", "settings": {"directory": "d"}, "auth": NONE}})
    agent.config.write_text(agent.config.read_text().replace(
        "  directory: plugins\n", f"  directory: plugins\n  trust:\n    publicKeys: [{tmp_path / 'trusted.pub'}]\n"))
    sign(tmp_path / "trusted.pem", agent.plugins_dir / "memory.so")   # correctly signed
    sign(tmp_path / "other.pem", agent.plugins_dir / "flatfile.so")   # by a key the agent does not trust
    agent.start()
    assert requests.get(f"{agent.base('mem')}/Users").status_code == 200
    assert requests.get(f"{agent.base('files')}/Users").status_code == 503
    assert "is not by any key" in plugin_state(agent, "flatfile.so")[0]["lastError"]

    # An unsigned replacement is refused; the signed build keeps serving.
    alt = (ROOT / "plugins-alt" / "memory.so").read_bytes()
    (agent.plugins_dir / "memory.so.sig").unlink()
    publish(agent.plugins_dir, "memory.so", alt)
    assert wait_for(lambda: "no signature" in (plugin_state(agent, "memory.so")[0].get("lastError") or ""))
    assert requests.get(agent.url("/healthz")).json()["apps"]["mem"]["version"] == "1.0.0"
    # Its signature arrives: loaded.
    sign(tmp_path / "trusted.pem", agent.plugins_dir / "memory.so")
    assert wait_for(lambda: requests.get(agent.url("/healthz")).json()["apps"]["mem"]["version"] == "1.0.0+alternate")
    # A signature of other bytes (the file changed after signing) is refused.
    publish(agent.plugins_dir, "memory.so", (PLUGINS / "memory.so").read_bytes())
    assert wait_for(lambda: "is not by any key" in (plugin_state(agent, "memory.so")[0].get("lastError") or ""))
    assert requests.get(agent.url("/healthz")).json()["apps"]["mem"]["version"] == "1.0.0+alternate"

    # A key file that is not an Ed25519 public key is a configuration error naming the key.
    (tmp_path / "bad.pub").write_text("not a key\n")
    agent.config.write_text(agent.config.read_text().replace(str(tmp_path / "trusted.pub"), str(tmp_path / "bad.pub")))
    out = agent.cli("check", check=False)
    assert out.returncode == 2 and "plugins.trust.publicKeys[0]" in out.stderr and "no PEM public key" in out.stderr, out.stderr
