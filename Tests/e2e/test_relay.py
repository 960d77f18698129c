"""Outbound only: a relay outside the firewall, agents that dial out to it and open no port.

Two agents serve one MariaDB app through one relay, one of them through an HTTP CONNECT proxy
(Debian's tinyproxy, with basic credentials). The IdP's flows pass through the relay; an agent
killed under load loses no request and duplicates no create (checked with SQL); the killed agent
and a restarted relay are rejoined; and the relay defends itself."""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import log_since, wait_for
from test_mysql import okta_flow_in_tables

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TOKENS = {"dc1-a": "token-of-agent-a-0123456789", "dc1-b": "token-of-agent-b-0123456789"}
IDP = ("okta", "relay-pass")
DB_AUTH = {"type": "basic", "username": IDP[0], "password": IDP[1]}


def client(relay):
    s = requests.Session()
    s.auth = IDP
    s.verify = str(relay.ca)
    s.trust_env = False
    s.headers["Content-Type"] = "application/scim+json"
    return s


def listening_ports(pid):
    """TCP ports the process listens on."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if f"pid={pid}," in l]


@pytest.fixture
def tinyproxy(tmp_path, request):
    from servers import Tinyproxy
    proxies = []

    def make(port):
        p = Tinyproxy(tmp_path / f"proxy{len(proxies)}", port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.stop()


@pytest.fixture
def pair(make_relay, make_agent, mariadb, tinyproxy):
    """A relay and two agents on one empty MariaDB app `db`; dc1-b goes through tinyproxy."""
    mariadb.empty_database()
    relay = make_relay({"db": DB_AUTH}, TOKENS).start()
    proxy = tinyproxy(relay.port)
    app = {"db": {"connector": "mysql", "settings": mariadb.settings(createSchema=True)}}
    a = make_agent(app, plugins=("mysql.so",), listen=False, uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    b = make_agent(app, plugins=("mysql.so",), listen=False, uplink=relay.uplink("dc1-b", TOKENS["dc1-b"], proxy=proxy.url)).start()
    relay.wait_serving("dc1-a", "db")
    relay.wait_serving("dc1-b", "db")
    return relay, a, b, proxy


def test_agents_open_no_port_and_the_okta_flow_passes_through_the_relay(pair, mariadb):
    relay, a, b, proxy = pair
    assert listening_ports(a.process.pid) == [] and listening_ports(b.process.pid) == []
    # dc1-b's connection went through the proxy (tinyproxy logs each CONNECT).
    assert wait_for(lambda: f"localhost:{relay.port}" in proxy.log.read_text(errors="replace")), proxy.log.read_text()[-2000:]
    okta_flow_in_tables(client(relay), relay.base("db"), mariadb)
    # Requests went to both agents (least in flight, then fewest served).
    served = {c["name"]: c["served"] for c in relay.agents()}
    assert served["dc1-a"] > 5 and served["dc1-b"] > 5, served
    # The agents' listing: apps, connected since, last heartbeat.
    for c in relay.agents():
        assert c["apps"] == ["db"] and c["state"] == "serving" and c["connectedSince"] and c["lastHeartbeat"]
    assert requests.get(relay.url("/healthz"), verify=str(relay.ca)).json()["apps"] == {"db": {"agents": 2}}
    # `check` asks the relay, through the proxy for dc1-b, whether it accepts the agent and serves its apps.
    out = b.cli("check").stdout
    assert f"✓ uplink wss://localhost:{relay.port}/uplink: accepted as dc1-b by relay" in out and "serves db" in out, out
    # Neither the proxy's password nor an agent's token is in a log.
    from servers import Tinyproxy
    logs = a.log.read_text() + b.log.read_text() + relay.log.read_text()
    assert Tinyproxy.PASSWORD not in logs and not any(t in logs for t in TOKENS.values())


def test_scim2_tester_passes_through_the_relay(pair):
    relay = pair[0]
    scim2 = Path(sys.executable).parent / "scim2"
    import base64
    header = "Authorization: Basic " + base64.b64encode(f"{IDP[0]}:{IDP[1]}".encode()).decode()
    env = {**os.environ, "SCIM_CLI_HEADERS": header, "SSL_CERT_FILE": str(relay.ca)}
    r = subprocess.run([str(scim2), "--url", relay.base("db"), "test"], capture_output=True, text=True, timeout=600, env=env)
    failures = [l for l in r.stdout.splitlines() if l.startswith(("ERROR", "CRITICAL"))]
    assert r.returncode == 0 and not failures, r.stdout[-4000:]
    assert r.stdout.count("SUCCESS") > 100


class Traffic:
    """Clients of every kind against the relay until stopped; what each got."""

    def __init__(self, relay, prefix, workers=6):
        self.relay, self.prefix, self.stop_event = relay, prefix, threading.Event()
        self.failures, self.created, self.counts = [], [], {}
        self.lock = threading.Lock()
        s = client(relay)
        base = relay.base("db")
        # Users to read, replace, patch and delete.
        self.targets = [s.post(f"{base}/Users", json={"schemas": [USER], "userName": f"{prefix}-t{i}"}).json()["id"] for i in range(workers * 20)]
        self.threads = [threading.Thread(target=self.work, args=(w, workers)) for w in range(workers)]

    def note(self, kind, r, ok):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if r is None or r.status_code not in ok:
                self.failures.append((kind, getattr(r, "status_code", r), getattr(r, "text", "")[:300]))

    def work(self, w, workers):
        s, base, i = client(self.relay), self.relay.base("db"), 0
        mine = self.targets[w::workers]
        deleted = set()
        while not self.stop_event.is_set():
            uid = mine[i % len(mine)]
            try:
                name = f"{self.prefix}-c{w}-{i}"
                r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": name}, timeout=30)
                self.note("POST", r, {201})
                if r.status_code == 201:
                    with self.lock:
                        self.created.append(name)
                if uid not in deleted:
                    self.note("GET", s.get(f"{base}/Users/{uid}", timeout=30), {200})
                    self.note("PUT", s.put(f"{base}/Users/{uid}", json={"schemas": [USER], "userName": f"{self.prefix}-t-{uid}", "title": f"v{i}"}, timeout=30), {200})
                    self.note("PATCH", s.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": f"p{i}"}]}, timeout=30), {200})
                    if i % 7 == 6:
                        self.note("DELETE", s.delete(f"{base}/Users/{uid}", timeout=30), {204})
                        deleted.add(uid)
                self.note("LIST", s.get(f"{base}/Users", params={"filter": f'userName sw "{self.prefix}-c{w}-"', "count": 5}, timeout=30), {200})
            except requests.RequestException as e:
                self.note("exception", None, set())
                self.failures.append(("exception", str(e), ""))
            i += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=60)


def test_an_agent_killed_under_load_loses_nothing_and_rejoins(pair, mariadb):
    relay, a, b, _ = pair
    with Traffic(relay, "kill") as traffic:
        time.sleep(2.5)
        # Held still, so that requests are surely in flight to it when it is killed.
        a.process.send_signal(signal.SIGSTOP)
        assert wait_for(lambda: any(c["name"] == "dc1-a" and c["inFlight"] > 0 for c in relay.agents()), seconds=5)
        a.stop(signal.SIGKILL)
        time.sleep(3)
        # Killed with requests in flight: the relay saw its connection drop and failed them over.
        assert "the agent's connection dropped with the request in flight" in log_since(relay.log, relay.offset)
        metrics = requests.get(relay.url("/metrics"), verify=str(relay.ca)).text
        assert metric(metrics, 'provisioning_relay_failovers_total{app="db",outcome="resent"}') + \
            metric(metrics, 'provisioning_relay_failovers_total{app="db",outcome="created"}') > 0, metrics
        a.start()
        relay.wait_serving("dc1-a", "db")
        served_before = next(c["served"] for c in relay.agents() if c["name"] == "dc1-a")
        time.sleep(2)
    assert not traffic.failures, traffic.failures[:10]
    assert all(traffic.counts.get(k, 0) > 20 for k in ("POST", "GET", "PUT", "PATCH", "LIST")), traffic.counts
    # Every acknowledged create is in the table exactly once, and nothing else was created.
    rows = mariadb.query("SELECT userName FROM users WHERE userName LIKE 'kill-c%%'")
    stored = [r[0] for r in rows]
    assert sorted(stored) == sorted(traffic.created) and len(set(stored)) == len(stored)
    # The restarted agent rejoined and serves again.
    rejoined = next(c for c in relay.agents() if c["name"] == "dc1-a")
    assert rejoined["served"] > served_before, relay.agents()


def test_an_agent_stopped_under_load_drains_and_its_relay_restart_is_rejoined(pair, mariadb):
    relay, a, b, _ = pair
    with Traffic(relay, "drain") as traffic:
        time.sleep(1.5)
        a.stop()  # SIGTERM: tells the relay it is draining, answers what it has, then closes
        time.sleep(1.5)
    assert not traffic.failures, traffic.failures[:10]
    assert "agent connection draining" in log_since(relay.log, relay.offset)
    a.start()
    relay.wait_serving("dc1-a", "db")
    # The relay restarted mid-traffic: clients see it gone for a moment; both agents come back.
    s = client(relay)
    statuses = []
    stop = threading.Event()

    def traffic_loop():
        while not stop.is_set():
            try:
                statuses.append(s.get(relay.base("db") + "/Users", params={"count": 1}, timeout=10).status_code)
            except requests.RequestException:
                statuses.append("down")
            time.sleep(0.02)

    t = threading.Thread(target=traffic_loop)
    t.start()
    time.sleep(0.5)
    relay.stop(signal.SIGKILL)
    time.sleep(1)
    relay.start()
    relay.wait_serving("dc1-a", "db", seconds=30)
    relay.wait_serving("dc1-b", "db", seconds=30)
    time.sleep(1)
    stop.set()
    t.join()
    assert "down" in statuses and statuses[-1] == 200, statuses[-20:]
    assert s.get(relay.base("db") + "/Users", params={"count": 1}).status_code == 200


def test_a_wrong_token_is_refused_and_logged_without_it(make_relay, make_agent):
    relay = make_relay({"mem": {"type": "none"}}, TOKENS).start()
    wrong = "not-the-token-of-agent-a-42"
    bad = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-a", wrong)).start()
    assert wait_for(lambda: "refused an agent connection" in relay.log.read_text())
    # The agent says why: the relay's own reason, asked for once the upgrade was refused.
    assert wait_for(lambda: "the relay refused this agent: 401 unknown agent or wrong token" in bad.log.read_text())
    r = bad.cli("check", check=False)
    assert r.returncode == 1 and "✗ uplink" in r.stdout and "401 unknown agent or wrong token" in r.stdout, r.stdout
    assert wrong not in relay.log.read_text() and wrong not in bad.log.read_text()
    assert relay.agents() == []
    # The same by hand: 401 with a SCIM error.
    r = requests.get(relay.url("/uplink"), headers={"Authorization": f"Bearer {wrong}", "X-Agent-Name": "dc1-a"}, verify=str(relay.ca))
    assert r.status_code == 401 and r.json()["detail"] == "unknown agent or wrong token"
    # Another agent's token under this agent's name is refused too.
    r = requests.get(relay.url("/uplink"), headers={"Authorization": f"Bearer {TOKENS['dc1-b']}", "X-Agent-Name": "dc1-a"}, verify=str(relay.ca))
    assert r.status_code == 401
    # Guessing an agent's token from one address locks that address and agent name out.
    guess = {"Authorization": "Bearer guess-guess-guess-guess", "X-Agent-Name": "dc1-b"}
    for _ in range(3):
        assert https_from(relay, "127.0.0.4", "GET", "/uplink", headers=guess)[0] == 401
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: https_from(relay, "127.0.0.4", "GET", "/uplink", headers=guess), range(8)))
    right = {"Authorization": f"Bearer {TOKENS['dc1-b']}", "X-Agent-Name": "dc1-b"}
    status, headers, _ = https_from(relay, "127.0.0.4", "GET", "/uplink", headers=right)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    status, _, body = https_from(relay, "127.0.0.1", "GET", "/uplink?apps=mem", headers=right)
    assert status == 200 and json.loads(body)["apps"] == ["mem"]
    # No agent for the app: 503 naming it.
    r = requests.get(relay.base("mem") + "/Users", verify=str(relay.ca))
    assert r.status_code == 503 and "app mem" in r.json()["detail"] and r.headers["Retry-After"]


def test_an_agent_announcing_an_app_the_relay_does_not_know_is_told(make_relay, make_agent):
    relay = make_relay({"mem": {"type": "none"}}, TOKENS).start()
    agent = make_agent({"mem": {"connector": "memory"}, "ghost": {"connector": "memory"}}, listen=False,
                       uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    relay.wait_serving("dc1-a", "mem")
    assert [c["apps"] for c in relay.agents()] == [["mem"]]
    assert wait_for(lambda: "does not know these apps" in agent.log.read_text() and "apps=ghost" in agent.log.read_text())
    assert "announced apps this relay has no configuration for" in relay.log.read_text()
    assert requests.get(relay.url("/apps/ghost/scim/v2/Users"), verify=str(relay.ca)).status_code == 404
    r = agent.cli("check", "--json", check=False)
    uplinks = json.loads(r.stdout)["uplinks"]
    assert r.returncode == 1 and not uplinks[0]["ok"] and "has no configuration for ghost" in uplinks[0]["detail"], r.stdout


def metric(text, series):
    """The value of one series in Prometheus text, or 0 when it is not there."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0


def test_apps_added_or_removed_by_a_config_reload_are_announced_on_the_same_connection(make_relay, make_agent):
    relay = make_relay({"mem": {"type": "none"}, "crm": {"type": "none"}}, TOKENS).start()
    agent = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    connection = relay.wait_serving("dc1-a", "mem")[0]["connection"]
    s = client(relay)
    assert s.get(relay.base("crm") + "/Users").status_code == 503
    agent.write_config({"mem": {"connector": "memory"}, "crm": {"connector": "memory"}})
    agent.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: [c["apps"] for c in relay.agents()] == [["crm", "mem"]], 15), relay.agents()
    assert s.post(relay.base("crm") + "/Users", json={"schemas": [USER], "userName": "crm-user"}).status_code == 201
    # mem removed: the relay stops handing its requests to this agent.
    agent.write_config({"crm": {"connector": "memory"}})
    agent.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: [c["apps"] for c in relay.agents()] == [["crm"]], 15), relay.agents()
    r = s.get(relay.base("mem") + "/Users")
    assert r.status_code == 503 and "app mem" in r.json()["detail"]
    assert [c["connection"] for c in relay.agents()] == [connection]  # announced, not reconnected


def https_from(relay, source, method, path, auth=None, body=None, headers=None):
    """A request from another loopback address (another client machine)."""
    context = ssl.create_default_context(cafile=str(relay.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", relay.port, source_address=(source, 0), context=context, timeout=30)
    headers = {"Content-Type": "application/scim+json", **(headers or {})}
    if auth:
        import base64
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    conn.close()
    return out


def test_failed_client_authentication_is_throttled_per_address_and_credential(make_relay, make_agent):
    relay = make_relay({"mem": DB_AUTH}, TOKENS).start()
    make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    relay.wait_serving("dc1-a", "mem")
    path = "/apps/mem/scim/v2/Users"
    # An attacker at 127.0.0.2 guesses the IdP's password: three answers at once, then slower.
    started = time.time()
    for _ in range(3):
        assert https_from(relay, "127.0.0.2", "GET", path, ("okta", "guess"))[0] == 401
    assert time.time() - started < 2
    started = time.time()
    assert https_from(relay, "127.0.0.2", "GET", path, ("okta", "guess"))[0] == 401
    assert time.time() - started >= 0.25
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: https_from(relay, "127.0.0.2", "GET", path, ("okta", "guess"))[0], range(8)))
    assert statuses.count(401) >= 6
    # Locked: even the right password from that address is refused, with Retry-After.
    status, headers, body = https_from(relay, "127.0.0.2", "GET", path, IDP)
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60 and json.loads(body)["status"] == "429"
    metrics = requests.get(relay.url("/metrics"), verify=str(relay.ca)).text
    assert metric(metrics, 'provisioning_relay_authentication_failures_total{for="app mem",status="429"}') >= 1
    assert metric(metrics, 'provisioning_relay_authentication_failures_total{for="app mem",status="401"}') >= 10
    # The real IdP, elsewhere, is not locked out; nor is another credential at the attacker's address.
    assert https_from(relay, "127.0.0.1", "GET", path, IDP)[0] == 200
    assert https_from(relay, "127.0.0.2", "GET", path, ("someone-else", "x"))[0] == 401
    log = relay.log.read_text()
    assert "failed client authentication" in log and "guess" not in log and IDP[1] not in log


def test_the_agents_listing_is_behind_the_admin_credential_and_its_throttle(make_relay, make_agent):
    admin = ("admin", "relay-admin-pass-42")
    relay = make_relay({"mem": DB_AUTH}, TOKENS, admin={"type": "basic", "username": admin[0], "password": admin[1]}).start()
    make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    listing = lambda: requests.get(relay.url("/agents"), auth=admin, verify=str(relay.ca), timeout=5).json()["agents"]
    assert wait_for(lambda: [c["name"] for c in listing()] == ["dc1-a"])
    assert https_from(relay, "127.0.0.1", "GET", "/agents")[0] == 401
    assert https_from(relay, "127.0.0.1", "GET", "/metrics")[0] == 401
    status, _, text = https_from(relay, "127.0.0.1", "GET", "/metrics", admin)
    assert status == 200 and metric(text.decode(), 'provisioning_relay_agents_serving{app="mem"}') == 1
    # The IdP's credential is not the admin's.
    assert https_from(relay, "127.0.0.1", "GET", "/agents", IDP)[0] == 401
    # Guessing the admin password from one address locks that address out of it, not the admin elsewhere.
    for _ in range(3):
        assert https_from(relay, "127.0.0.3", "GET", "/agents", ("admin", "guess"))[0] == 401
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: https_from(relay, "127.0.0.3", "GET", "/agents", ("admin", "guess")), range(8)))
    status, headers, _ = https_from(relay, "127.0.0.3", "GET", "/agents", admin)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert https_from(relay, "127.0.0.1", "GET", "/agents", admin)[0] == 200
    log = relay.log.read_text()
    assert "for=/agents" in log and "guess" not in log and admin[1] not in log


def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled_audited_and_not_loopback(make_relay, make_agent):
    """A reverse proxy on the relay's host (127.0.0.1, in relay.trustedProxies) forwards every
    client: the throttle, the loopback-only endpoints and the audit lines use the address in
    X-Forwarded-For, so an attacker behind the same proxy cannot lock the IdP out."""
    relay = make_relay({"mem": DB_AUTH}, TOKENS, trusted_proxies=["127.0.0.1"]).start()
    agent = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-a", TOKENS["dc1-a"]))
    agent.config.write_text(agent.config.read_text().replace("apps:", 'audit: {"file": "audit.log"}\napps:'))
    agent.start()
    relay.wait_serving("dc1-a", "mem")
    path = "/apps/mem/scim/v2/Users"
    attacker, idp = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.1"}
    for _ in range(3):
        assert https_from(relay, "127.0.0.1", "GET", path, ("okta", "guess"), headers=attacker)[0] == 401
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: https_from(relay, "127.0.0.1", "GET", path, ("okta", "guess"), headers=attacker), range(8)))
    assert https_from(relay, "127.0.0.1", "GET", path, IDP, headers=attacker)[0] == 429
    # The IdP, through the same proxy, is not locked out; its change is audited with its address.
    body = json.dumps({"schemas": [USER], "userName": "behind-proxy"})
    status, _, created = https_from(relay, "127.0.0.1", "POST", path, IDP, body=body, headers=idp)
    assert status == 201, created
    line = json.loads((agent.workdir / "audit.log").read_text().splitlines()[0])
    assert line["userName"] == "behind-proxy" and line["client"]["remoteAddress"] == "198.51.100.1"
    assert "address=203.0.113.7" in relay.log.read_text()
    # A forwarded client is not a loopback client, though the proxy is.
    assert https_from(relay, "127.0.0.1", "GET", "/agents", headers=attacker)[0] == 403
    assert "apps" not in json.loads(https_from(relay, "127.0.0.1", "GET", "/healthz", headers=attacker)[2])
    assert "apps" in json.loads(https_from(relay, "127.0.0.1", "GET", "/healthz")[2])
    # From a peer that is not a trusted proxy, X-Forwarded-For is ignored: counted per that peer.
    with concurrent.futures.ThreadPoolExecutor(11) as pool:
        list(pool.map(lambda _: https_from(relay, "127.0.0.2", "GET", path, ("okta", "guess"), headers=idp), range(11)))
    assert https_from(relay, "127.0.0.2", "GET", path, IDP, headers=idp)[0] == 429
    assert https_from(relay, "127.0.0.1", "GET", path, IDP, headers=idp)[0] == 200


def test_relay_limits(make_relay, make_agent):
    relay = make_relay({"mem": {"type": "none"}, "other": {"type": "none"}}, TOKENS,
                       limits={"maxBodySize": 2048, "maxInFlightPerApp": 2, "maxClientConnections": 40, "maxAgentConnections": 1}).start()
    agent = make_agent({"mem": {"connector": "memory"}, "other": {"connector": "memory"}}, listen=False,
                       uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    relay.wait_serving("dc1-a", "mem")
    s = client(relay)
    # A body over maxBodySize: 413 as a SCIM error; bad JSON gets the agent's own 400.
    r = s.post(relay.base("mem") + "/Users", data=json.dumps({"schemas": [USER], "userName": "x" * 3000}))
    assert r.status_code == 413 and r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    r = s.post(relay.base("mem") + "/Users", data="{not json")
    assert r.status_code == 400 and r.json()["scimType"] == "invalidSyntax"
    # A flood on one app is refused beyond its in-flight limit, and the other app still answers.
    local = threading.local()

    def get(_):
        if not hasattr(local, "session"):
            local.session = client(relay)  # one connection per thread
        return local.session.get(relay.base("mem") + "/Users").status_code
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        flood = list(pool.map(get, range(480)))
    assert 429 in flood and set(flood) <= {200, 429}, set(flood)
    assert s.get(relay.base("other") + "/Users").status_code == 200
    # /metrics (loopback only, as relay.admin is not set) counts what clients got, and the agents.
    metrics = requests.get(relay.url("/metrics"), verify=str(relay.ca)).text
    refused = metric(metrics, 'provisioning_requests_total{app="mem",method="GET",status="429"}')
    assert refused == flood.count(429), (refused, flood.count(429))
    assert metric(metrics, 'provisioning_requests_total{app="mem",method="POST",status="413"}') == 1
    assert metric(metrics, 'provisioning_relay_agents_serving{app="other"}') == 1
    # A second agent connection beyond maxAgentConnections is refused.
    second = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-b", TOKENS["dc1-b"])).start()
    assert wait_for(lambda: "maxAgentConnections reached" in relay.log.read_text())
    assert [c["name"] for c in relay.agents()] == ["dc1-a"]
    second.stop()
    # Client connections beyond maxClientConnections are closed as they are accepted.
    idle = [socket.create_connection(("127.0.0.1", relay.port)) for _ in range(50)]

    def closed_by_relay(c):
        c.settimeout(1)
        try:
            return c.recv(1) == b""
        except socket.timeout:
            return False
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        closed = sum(pool.map(closed_by_relay, idle))
    assert closed >= 10, closed  # 50 beyond the agent's and the clients' own
    for c in idle:
        c.close()
    assert wait_for(lambda: s.get(relay.base("mem") + "/Users").status_code == 200)
    assert "maxClientConnections (40) reached" in relay.log.read_text()


def test_an_agent_holds_a_connection_to_each_of_several_relays(make_relay, make_agent):
    one = make_relay({"mem": DB_AUTH}, TOKENS).start()
    two = make_relay({"mem": DB_AUTH}, TOKENS).start()
    uplink = one.uplink("dc1-a", TOKENS["dc1-a"])
    del uplink["url"]
    # The two throwaway CAs differ: the agent trusts a bundle of both.
    bundle = one.workdir / "both-ca.pem"
    bundle.write_text(Path(one.ca).read_text() + Path(two.ca).read_text())
    uplink.update(urls=[f"https://localhost:{one.port}", f"https://localhost:{two.port}"], caFile=str(bundle))
    agent = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=uplink)
    agent.config.write_text(agent.config.read_text().replace("apps:", 'audit: {"file": "audit.log"}\napps:'))
    agent.start()
    one.wait_serving("dc1-a", "mem")
    two.wait_serving("dc1-a", "mem")
    r = client(one).post(one.base("mem") + "/Users", json={"schemas": [USER], "userName": "via-one"})
    assert r.status_code == 201
    # Written through one relay, read through the other: the same agent behind both.
    assert client(two).get(two.base("mem") + f"/Users/{r.json()['id']}").json()["userName"] == "via-one"
    # The audit line names the credential the relay checked and the client's address as it saw it.
    line = json.loads((agent.workdir / "audit.log").read_text().splitlines()[0])
    assert line["userName"] == "via-one" and line["status"] == 201
    assert line["client"]["credential"] == "basic okta" and line["client"]["remoteAddress"] == "127.0.0.1"
    assert IDP[1] not in (agent.workdir / "audit.log").read_text()


def test_a_relay_that_falls_silent_is_replaced_by_a_new_connection(make_relay, make_agent):
    """The relay stops answering (SIGSTOP): after two silent heartbeats the agent dials a new
    connection while the old one stays, after three it drops the old one; once the relay runs
    again the new connection is welcomed and requests pass."""
    relay = make_relay({"mem": {"type": "none"}}, TOKENS).start()
    agent = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=relay.uplink("dc1-a", TOKENS["dc1-a"])).start()
    relay.wait_serving("dc1-a", "mem")
    offset = agent.log.stat().st_size
    relay.process.send_signal(signal.SIGSTOP)
    try:
        assert wait_for(lambda: "opening a new connection before dropping this one" in log_since(agent.log, offset), 10)
        assert wait_for(lambda: "silent for three heartbeats" in log_since(agent.log, offset), 10)
    finally:
        relay.process.send_signal(signal.SIGCONT)
    s = client(relay)
    assert wait_for(lambda: s.get(relay.base("mem") + "/Users", timeout=10).status_code == 200, 20)
    assert wait_for(lambda: [c["state"] for c in relay.agents()] == ["serving"], 20), relay.agents()


class FakeRelay:
    """A TLS listener on loopback that records how each handshake with it ended."""

    def __init__(self, cert, key, max_version=None):
        import warnings
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        if max_version:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.context.minimum_version = ssl.TLSVersion.TLSv1
                self.context.maximum_version = getattr(ssl.TLSVersion, max_version)
            self.context.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.outcomes = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as t:
                    t.settimeout(5)
                    head = b""
                    while b"\r\n\r\n" not in head and len(head) < 8192:
                        chunk = t.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    self.outcomes.append(("handshake completed", t.version(), head))
            except (ssl.SSLError, OSError) as e:
                self.outcomes.append(("refused", str(e)))

    def close(self):
        self.sock.close()


def test_the_uplink_verifies_the_relay_and_refuses_tls_below_1_2(make_agent, tmp_path):
    """An agent dials only a relay whose certificate chains to its caFile (or the system's CAs)
    and names the relay's host, over TLS 1.2 or later; otherwise it connects to nothing."""
    from servers import make_ca_and_server_cert
    trusted_ca, cert, key = make_ca_and_server_cert(tmp_path, "trusted")
    other = tmp_path / "other"
    other.mkdir()
    _, other_cert, other_key = make_ca_and_server_cert(other, "other")
    # A certificate from the trusted CA for another host name.
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    elsewhere_key, elsewhere_csr, elsewhere = tmp_path / "elsewhere.key", tmp_path / "elsewhere.csr", tmp_path / "elsewhere.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(elsewhere_key), "-out", str(elsewhere_csr), "-subj", "/CN=relay.example.com")
    (tmp_path / "elsewhere.ext").write_text("subjectAltName=DNS:relay.example.com\n")
    openssl("x509", "-req", "-in", str(elsewhere_csr), "-CA", str(trusted_ca), "-CAkey", str(tmp_path / "trusted-ca.key"),
            "-CAcreateserial", "-out", str(elsewhere), "-days", "2", "-extfile", str(tmp_path / "elsewhere.ext"))
    cases = {
        "another CA": FakeRelay(other_cert, other_key),
        "another host name": FakeRelay(elsewhere, elsewhere_key),
        "TLS 1.1 at most": FakeRelay(cert, key, max_version="TLSv1_1"),
    }
    agents = {}
    for what, fake in cases.items():
        uplink = {"url": f"https://localhost:{fake.port}", "name": "dc1-a", "token": TOKENS["dc1-a"], "caFile": str(trusted_ca)}
        agents[what] = make_agent({"mem": {"connector": "memory"}}, listen=False, uplink=uplink).start()
    # The system's CAs do not include the throwaway one either.
    system = FakeRelay(cert, key)
    agents["no caFile"] = make_agent({"mem": {"connector": "memory"}}, listen=False,
                                     uplink={"url": f"https://localhost:{system.port}", "name": "dc1-a", "token": TOKENS["dc1-a"]}).start()
    cases["no caFile"] = system
    try:
        for what, fake in cases.items():
            # Refused at least twice (it redials with backoff), and never past the handshake.
            assert wait_for(lambda: len(fake.outcomes) >= 2, 15), (what, fake.outcomes)
            assert all(o[0] == "refused" for o in fake.outcomes), (what, fake.outcomes)
            assert "cannot connect to the relay" in agents[what].log.read_text(), what
        old = cases["TLS 1.1 at most"]
        assert all("unsupported protocol" in o[1].lower() for o in old.outcomes), old.outcomes
        # That listener does speak TLS 1.1 to a client that offers it: the agent did not.
        import warnings
        client_context = ssl.create_default_context(cafile=str(trusted_ca))
        client_context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client_context.minimum_version = client_context.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(("127.0.0.1", old.port), timeout=5) as s, client_context.wrap_socket(s, server_hostname="localhost") as t:
            assert t.version() == "TLSv1.1"
        # The positive control: the same certificate and caFile with TLS 1.2 completes the handshake.
        good = FakeRelay(cert, key)
        make_agent({"mem": {"connector": "memory"}}, listen=False,
                   uplink={"url": f"https://localhost:{good.port}", "name": "dc1-a", "token": TOKENS["dc1-a"], "caFile": str(trusted_ca)}).start()
        assert wait_for(lambda: good.outcomes, 15) and good.outcomes[0][0] == "handshake completed", good.outcomes
        _, version, head = good.outcomes[0]
        assert version in ("TLSv1.2", "TLSv1.3") and head.startswith(b"GET /uplink ") and b"Upgrade: websocket" in head, good.outcomes
    finally:
        for fake in cases.values():
            fake.close()
