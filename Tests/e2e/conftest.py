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


def stop_process(process, sig=signal.SIGTERM):
    """Signals a process and waits for it; killed if it has not stopped in 20 s."""
    if process and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_since(path: Path, offset: int) -> str:
    return path.read_bytes()[offset:].decode(errors="replace")


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

    def __init__(self, workdir: Path, apps: dict, plugins=("memory.so", "flatfile.so"), extra_plugins=None, server=None,
                 uplink=None, listen=True):
        """`uplink` is the configuration's `uplink:`; with `listen=False` the agent opens no port."""
        self.workdir = workdir
        self.server = server or {}
        self.uplink = uplink
        self.listen = listen
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
        lines = ["server:" + (f"\n  listen: 127.0.0.1:{self.port}" if self.listen else "")]
        lines += [f"  {key}: {json.dumps(value)}" for key, value in self.server.items()]
        if not self.listen and not self.server:
            lines = []
        if self.uplink:
            lines.append(f"uplink: {json.dumps(self.uplink)}")
        lines.append("plugins:\n  directory: plugins\napps:")
        for name, app in apps.items():
            lines.append(f"  {name}: {json.dumps(app)}")
        self.config.write_text("\n".join(lines) + "\n")

    def cli(self, *args, check=True):
        return subprocess.run([str(AGENT), *args, "--config", str(self.config)], capture_output=True, text=True, timeout=120, check=check)

    def start(self):
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(
            [str(AGENT), "serve", "--config", str(self.config)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log.read_text()}")
            if not self.listen:
                # No port: started once its configuration is loaded; its relay says when it is connected.
                if "serving through the uplink" in log_since(self.log, offset):
                    return self
                time.sleep(0.05)
                continue
            try:
                requests.get(self.url("/healthz"), timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("agent did not start")

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.process, sig)

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


class Relay:
    """`provisioning-agent relay` on 127.0.0.1 with TLS from a throwaway CA: `apps` maps app names
    to their client auth, `agents` names to tokens."""

    def __init__(self, workdir: Path, apps: dict, agents: dict, limits=None, admin=None, heartbeat=0.5, port=None, trusted_proxies=None):
        from servers import make_ca_and_server_cert
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.ca, cert, key = make_ca_and_server_cert(workdir, "relay")
        relay = {"listen": f"127.0.0.1:{self.port}", "tls": {"certificate": str(cert), "privateKey": str(key)},
                 "agents": [{"name": n, "token": t} for n, t in agents.items()], "heartbeatSeconds": heartbeat}
        if limits:
            relay["limits"] = limits
        if admin:
            relay["admin"] = admin
        if trusted_proxies:
            relay["trustedProxies"] = trusted_proxies
        self.config = workdir / "relay.yaml"
        self.config.write_text(json.dumps({"relay": relay, "apps": {n: {"auth": a} for n, a in apps.items()}}))
        self.log = workdir / "relay.log"
        self.process = None

    def start(self):
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen([str(AGENT), "relay", "--config", str(self.config)], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log.read_text()}")
            try:
                requests.get(self.url("/healthz"), verify=str(self.ca), timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("relay did not start")

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.process, sig)

    def url(self, path=""):
        return f"https://127.0.0.1:{self.port}{path}"

    def base(self, app):
        return self.url(f"/apps/{app}/scim/v2")

    def uplink(self, name, token, **extra):
        """An agent's `uplink:` for this relay."""
        return {"url": f"https://localhost:{self.port}", "name": name, "token": token, "caFile": str(self.ca), "heartbeatSeconds": 0.5, **extra}

    def agents(self):
        return requests.get(self.url("/agents"), verify=str(self.ca), timeout=5).json()["agents"]

    def wait_serving(self, name, app, seconds=20):
        def serving():
            return [c for c in self.agents() if c["name"] == name and c["state"] == "serving" and app in c["apps"]]
        assert wait_for(serving, seconds), (self.agents(), self.log.read_text()[-3000:])
        return serving()


@pytest.fixture
def make_relay(tmp_path):
    relays = []

    def make(apps, agents, **kwargs):
        r = Relay(tmp_path / f"relay{len(relays)}", apps, agents, **kwargs)
        relays.append(r)
        return r

    yield make
    for r in relays:
        r.stop()
