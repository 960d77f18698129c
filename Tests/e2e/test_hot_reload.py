"""Hot reload: plugins replaced under load with no failed request, config reloaded live."""
import json
import os
import shutil
import signal
import threading
import time

import requests

from conftest import PLUGINS, ROOT, all_user_names, session_for

ALT = ROOT / "plugins-alt"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BUILDS = {
    "memory.so": [(PLUGINS / "memory.so", "1.0.0"), (ALT / "memory.so", "1.0.0+alternate")],
    "flatfile.so": [(PLUGINS / "flatfile.so", "1.0.0"), (ALT / "flatfile.so", "1.0.0+alternate")],
}
APPS = {
    "mem": {"connector": "memory", "auth": {"type": "basic", "username": "okta", "password": "change-me"}},
    "files": {"connector": "flatfile", "settings": {"directory": "data/files"},
              "auth": {"type": "header", "name": "Authorization", "value": "Bearer s3cret"}},
}


def publish(agent, name, source):
    """What the README tells publishers to do: copy under another name, then rename."""
    tmp = agent.plugins_dir / f".{name}.partial"
    shutil.copy(source, tmp)
    os.rename(tmp, agent.plugins_dir / name)


def serving(agent):
    out = json.loads(agent.cli("plugins", "--json").stdout)
    return {p["connector"]: p for p in out["plugins"] if p["state"].startswith("serving")}, out["plugins"]


def wait_for_version(agent, connector, version, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        current, _ = serving(agent)
        if current.get(connector, {}).get("version") == version:
            return current[connector]["generation"]
        time.sleep(0.05)
    raise AssertionError(f"{connector} {version} not serving after {timeout}s: {serving(agent)[0]}")


class Load:
    """Bounded concurrent SCIM traffic (create, read, PATCH, filter) that records every failure."""

    def __init__(self, agent, apps, workers=3):
        self.agent, self.apps, self.workers = agent, apps, workers
        self.stop = threading.Event()
        self.failures, self.acknowledged, self.requests = [], {app: set() for app in apps}, 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(app, w)) for app in apps for w in range(workers)]

    def check(self, r, what):
        with self.lock:
            self.requests += 1
            if r.status_code >= 300:
                self.failures.append(f"{what}: {r.status_code} {r.text[:200]}")
        return r.status_code < 300

    def run(self, app, worker):
        s, base, n = session_for(app), self.agent.base(app), 0
        deadline = time.time() + 180  # bounded whatever happens
        while not self.stop.is_set() and time.time() < deadline:
            name = f"{app}-{worker}-{n}@example.com"
            try:
                r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": name}, timeout=10)
                if self.check(r, f"create {name}"):
                    with self.lock:
                        self.acknowledged[app].add(name)
                    uid = r.json()["id"]
                    self.check(s.get(f"{base}/Users/{uid}", timeout=10), f"get {name}")
                    self.check(s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [
                        {"op": "replace", "path": "title", "value": f"t{n}"}]}, timeout=10), f"patch {name}")
                    self.check(s.get(f"{base}/Users", params={"filter": f'userName eq "{name}"'}, timeout=10), f"filter {name}")
            except requests.RequestException as e:
                with self.lock:
                    self.failures.append(f"{name}: {e}")
            n += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_replacing_plugins_under_load_fails_no_request(make_agent):
    agent = make_agent(APPS).start()
    generations = {"memory": set(), "flatfile": set()}
    with Load(agent, ["mem", "files"]) as load:
        for i in range(1, 21):
            for file, connector in (("memory.so", "memory"), ("flatfile.so", "flatfile")):
                source, version = BUILDS[file][i % 2]
                publish(agent, file, source)
                generations[connector].add(wait_for_version(agent, connector, version))
            time.sleep(0.05)
    assert load.requests > 200
    assert load.failures == [], load.failures[:10]
    assert len(generations["memory"]) == 20 and len(generations["flatfile"]) == 20
    _, listed = serving(agent)
    visible = {(p.get("connector"), p.get("generation")) for p in listed}
    for connector, numbers in generations.items():
        assert {(connector, n) for n in numbers} <= visible
    # Every acknowledged write survived every reload (memory hands its data to the next build).
    for app in ("mem", "files"):
        assert load.acknowledged[app] <= all_user_names(session_for(app), agent.base(app))
    log = agent.log.read_text()
    assert "unloaded=true" in log  # the C plugin is unmapped once drained


def test_a_swift_plugin_replaced_50_times_keeps_serving(make_agent):
    agent = make_agent({"files": APPS["files"]}).start()
    s, base = session_for("files"), agent.base("files")
    for i in range(1, 51):
        source, version = BUILDS["flatfile.so"][i % 2]
        publish(agent, "flatfile.so", source)
        wait_for_version(agent, "flatfile", version)
        r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"swift{i}@example.com"})
        assert r.status_code == 201, r.text
        assert [u["userName"] for u in s.get(f"{base}/Users", params={"filter": 'userName sw "swift"'}).json()["Resources"]][-1] == f"swift{i}@example.com"
    assert agent.process.poll() is None


def test_bad_replacements_and_removal_keep_the_old_generation_serving(make_agent, tmp_path):
    agent = make_agent(APPS).start()
    s, base = session_for("mem"), agent.base("mem")
    assert s.post(f"{base}/Users", json={"schemas": [USER], "userName": "stay@example.com"}).status_code == 201
    before, _ = serving(agent)
    # Not a shared object.
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF but not really")
    publish(agent, "memory.so", garbage)
    time.sleep(0.6)
    current, _ = serving(agent)
    assert current["memory"]["generation"] == before["memory"]["generation"]
    assert "memory" in current and current["memory"].get("lastError")
    assert s.get(f"{base}/Users").json()["totalResults"] == 1
    # Deleted by mistake: still serving, shown as such.
    os.remove(agent.plugins_dir / "memory.so")
    time.sleep(0.6)
    current, _ = serving(agent)
    assert current["memory"]["state"] == "serving (file removed)"
    assert s.get(f"{base}/Users").json()["totalResults"] == 1
    # A good build comes back.
    publish(agent, "memory.so", ALT / "memory.so")
    wait_for_version(agent, "memory", "1.0.0+alternate")
    assert s.get(f"{base}/Users").json()["totalResults"] == 1


def test_a_new_plugin_brings_its_apps_up(make_agent):
    agent = make_agent(APPS, plugins=("flatfile.so",)).start()
    s, base = session_for("mem"), agent.base("mem")
    assert s.get(f"{base}/Users").status_code == 503
    publish(agent, "memory.so", PLUGINS / "memory.so")
    wait_for_version(agent, "memory", "1.0.0")
    assert s.get(f"{base}/Users").status_code == 200


def test_configuration_reload(make_agent):
    agent = make_agent(APPS).start()
    assert requests.get(agent.base("lab") + "/Users").status_code == 404
    # Add an app, change another's credentials: SIGHUP applies both.
    agent.write_config({**APPS, "lab": {"connector": "memory", "auth": {"type": "none"}},
                        "mem": {**APPS["mem"], "auth": {"type": "basic", "username": "okta", "password": "rotated"}}})
    agent.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while requests.get(agent.base("lab") + "/Users").status_code != 200 and time.time() < deadline:
        time.sleep(0.1)
    assert requests.get(agent.base("lab") + "/Users").status_code == 200
    assert requests.get(agent.base("mem") + "/Users", auth=("okta", "rotated")).status_code == 200
    assert requests.get(agent.base("mem") + "/Users", auth=("okta", "change-me")).status_code == 401
    # An invalid configuration is rejected whole; the running one stays.
    agent.config.write_text(agent.config.read_text() + "bogus: [\n")
    time.sleep(1.0)  # the file watcher sees the change
    assert requests.get(agent.base("lab") + "/Users").status_code == 200
    assert "configuration not reloaded" in agent.log.read_text()
    # Removing an app takes it away.
    agent.write_config(APPS)
    deadline = time.time() + 10
    while requests.get(agent.base("lab") + "/Users").status_code != 404 and time.time() < deadline:
        time.sleep(0.1)
    assert requests.get(agent.base("lab") + "/Users").status_code == 404
