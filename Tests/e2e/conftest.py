"""Harness for end-to-end tests: runs the real agent binary on loopback with real plugins."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

# The agent refuses plugin files and directories others may write: the test agents' copies
# are made with the usual umask whatever the caller's.
os.umask(0o022)

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / ".build" / "debug" / "provisioning-agent"
PLUGINS = ROOT / "plugins"


def wait_for(predicate, seconds=10):
    """The predicate's first truthy value within `seconds`, else its last value."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """One agent process with its own configuration, plugins and data under a temp dir."""

    def __init__(self, workdir: Path, apps: dict, plugins=("memory.so", "flatfile.so"), extra_plugins=None, server=None):
        self.workdir = workdir
        self.server = server or {}
        self.port = free_port()
        self.plugins_dir = workdir / "plugins"
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        for p in plugins:
            shutil.copy(PLUGINS / p, self.plugins_dir / p)
        for name, content in (extra_plugins or {}).items():
            (self.plugins_dir / name).write_bytes(content)
        self.config = workdir / "agent.yaml"
        self.write_config(apps)
        self.process = None
        self.log = workdir / "agent.log"

    def write_config(self, apps):
        lines = [f"server:\n  listen: 127.0.0.1:{self.port}"]
        lines += [f"  {key}: {json.dumps(value)}" for key, value in self.server.items()]
        lines.append("plugins:\n  directory: plugins\napps:")
        for name, app in apps.items():
            lines.append(f"  {name}: {json.dumps(app)}")
        self.config.write_text("\n".join(lines) + "\n")

    def cli(self, *args, check=True):
        return subprocess.run([str(AGENT), *args, "--config", str(self.config)], capture_output=True, text=True, timeout=120, check=check)

    def start(self):
        self.process = subprocess.Popen(
            [str(AGENT), "serve", "--config", str(self.config)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log.read_text()}")
            try:
                requests.get(self.url("/healthz"), timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("agent did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def base(self, app):
        return self.url(f"/apps/{app}/scim/v2")


@pytest.fixture
def make_agent(tmp_path):
    agents = []

    def make(apps, **kwargs):
        a = Agent(tmp_path / f"agent{len(agents)}", apps, **kwargs)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.stop()


BASIC = ("okta", "change-me")
TOKEN = {"Authorization": "Bearer s3cret"}
STANDARD_APPS = {
    "mem": {"connector": "memory", "auth": {"type": "basic", "username": "okta", "password": "change-me"}},
    "files": {"connector": "flatfile", "settings": {"directory": "data/files"},
              "auth": {"type": "header", "name": "Authorization", "value": "Bearer s3cret"}},
}


@pytest.fixture
def agent(make_agent):
    return make_agent(STANDARD_APPS).start()


def session_for(app):
    s = requests.Session()
    if app == "mem":
        s.auth = BASIC
    else:
        s.headers.update(TOKEN)
    s.headers["Content-Type"] = "application/scim+json"
    return s


@pytest.fixture(scope="session")
def mariadb():
    from servers import MariaDB
    if not shutil.which("mariadbd"):
        pytest.fail("mariadbd is not installed: run `make deps`")
    server = MariaDB()
    yield server
    server.destroy()


@pytest.fixture
def peer():
    """A real remote SCIM server (scim2-server) of the test's own."""
    from servers import ScimPeer
    p = ScimPeer()
    yield p
    p.stop()


def remote_app(url, **extra):
    """An app forwarding to the ScimPeer at `url`; `extra` goes into its remote settings."""
    from servers import ScimPeer
    return {"remote": {"url": url, "auth": {"type": "header", "name": "Authorization", "value": f"Bearer {ScimPeer.TOKEN}"}, **extra},
            "auth": {"type": "none"}}


@pytest.fixture(scope="session")
def slapd():
    from servers import Slapd
    if not shutil.which("slapd") and not os.path.exists("/usr/sbin/slapd"):
        pytest.fail("slapd is not installed: run `make deps`")
    server = Slapd()
    yield server
    server.destroy()


def all_user_names(session, base):
    """Every userName of an app, read page by page as an importing IdP would."""
    names, start = set(), 1
    while True:
        page = session.get(f"{base}/Users", params={"startIndex": start, "count": 1000, "attributes": "userName"}).json()
        names |= {u["userName"] for u in page["Resources"]}
        start += len(page["Resources"])
        if not page["Resources"] or start > page["totalResults"]:
            return names


def creates_across_a_restart(base, server, suffix=""):
    """POSTs users while `server` is stopped and started again; returns the statuses seen."""
    import threading
    s, statuses, stop = requests.Session(), [], threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            try:
                r = s.post(f"{base}/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                                  "userName": f"restart{i}{suffix}"}, timeout=15)
                statuses.append(r.status_code)
            except requests.RequestException as e:
                statuses.append(str(e))
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=traffic)
    t.start()
    time.sleep(0.5)
    server.stop()
    time.sleep(1.0)
    server.start()
    time.sleep(1.5)
    stop.set()
    t.join()
    return statuses
