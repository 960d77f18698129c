"""Remote apps forward to a real SCIM server (scim2-server), mixed with a local app."""
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import remote_app
from servers import ScimPeer, free_port

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def mixed(peer):
    return {"remote": remote_app(peer.base),
            "files": {"connector": "flatfile", "settings": {"directory": "data/files"}, "auth": {"type": "none"}}}


@pytest.mark.parametrize("app", ["remote", "files"])
def test_scim2_tester_through_the_agent(make_agent, peer, app):
    a = make_agent(mixed(peer), plugins=("flatfile.so",)).start()
    r = subprocess.run([str(Path(sys.executable).parent / "scim2"), "--url", a.base(app), "test"], capture_output=True, text=True, timeout=600)
    failures = [l for l in r.stdout.splitlines() if l.startswith(("ERROR", "CRITICAL"))]
    assert r.returncode == 0 and not failures, "\n".join(failures) + r.stdout[-3000:]


def test_created_through_the_agent_is_on_the_remote(make_agent, peer):
    a = make_agent(mixed(peer), plugins=("flatfile.so",)).start()
    r = requests.post(a.base("remote") + "/Users", json={"schemas": [USER], "userName": "bjensen@example.com", "active": True})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert r.headers["Location"] == f"{a.base('remote')}/Users/{uid}" == r.json()["meta"]["location"]  # rewritten to the agent
    direct = peer.get(f"/Users/{uid}")
    assert direct.status_code == 200 and direct.json()["userName"] == "bjensen@example.com"
    # The remote's errors pass through with their status.
    r = requests.post(a.base("remote") + "/Users", json={"schemas": [USER], "userName": "bjensen@example.com"})
    assert r.status_code == 409 and r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert requests.get(a.base("remote") + "/Users/nope").status_code == 404
    # check reports the remote.
    out = json.loads(a.cli("check", "--app", "remote", "--json").stdout)
    assert out["ok"] and "reachable" in out["apps"][0]["message"]


def test_what_the_remote_cannot_do_the_agent_does(make_agent, peer):
    spc = peer.get("/ServiceProviderConfig").json()
    spc["patch"]["supported"] = False
    spc["filter"]["supported"] = False
    types = [t for t in peer.get("/ResourceTypes").json()["Resources"] if t["id"] == "User"]
    limited = ScimPeer(spc=spc, resource_types=types)
    try:
        a = make_agent({"lim": remote_app(limited.base)}).start()
        base = a.base("lim")
        assert [t["id"] for t in requests.get(base + "/ResourceTypes").json()["Resources"]] == ["User"]
        assert requests.get(base + "/Groups").status_code == 501
        uid = requests.post(base + "/Users", json={"schemas": [USER], "userName": "p@example.com", "active": True}).json()["id"]
        r = requests.patch(f"{base}/Users/{uid}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]})
        assert r.status_code == 200 and r.json()["active"] is False  # the agent's GET + PUT
        assert limited.get(f"/Users/{uid}").json()["active"] is False
        requests.post(base + "/Users", json={"schemas": [USER], "userName": "q@example.com"})
        r = requests.get(base + "/Users", params={"filter": 'userName eq "q@example.com"'})
        assert [u["userName"] for u in r.json()["Resources"]] == ["q@example.com"]  # the agent filters
    finally:
        limited.stop()


def test_a_remote_that_cannot_filter_is_read_page_by_page(make_agent, peer):
    """The remote answers at most 50 resources a page and can neither filter nor sort: the
    agent reads every page, filters and sorts them all (it used the first page only, and
    missed the rest)."""
    spc = peer.get("/ServiceProviderConfig").json()
    spc["filter"] = {"supported": False, "maxResults": 50}
    spc["sort"] = {"supported": False}
    limited = ScimPeer(spc=spc)
    try:
        a = make_agent({"lim": remote_app(limited.base)}).start()
        base, s = a.base("lim"), requests.Session()
        for i in range(120):
            s.post(base + "/Users", json={"schemas": [USER], "userName": f"user{i:03}"}).raise_for_status()
        assert len(limited.get("/Users").json()["Resources"]) == 50  # one page of the remote
        r = s.get(base + "/Users", params={"filter": 'userName sw "user1"', "sortBy": "userName", "count": 100})
        assert r.json()["totalResults"] == 20 and [u["userName"] for u in r.json()["Resources"]] == [f"user{i}" for i in range(100, 120)]
        for name in ("user000", "user061", "user119"):
            assert [u["userName"] for u in s.get(base + "/Users", params={"filter": f'userName eq "{name}"'}).json()["Resources"]] == [name]
        r = s.get(base + "/Users", params={"sortBy": "userName", "sortOrder": "descending", "startIndex": 3, "count": 2})
        assert r.json()["totalResults"] == 120 and [u["userName"] for u in r.json()["Resources"]] == ["user117", "user116"]
    finally:
        limited.stop()


def test_remote_down_is_502_and_the_breaker_opens_then_closes(make_agent):
    port = free_port()
    a = make_agent({"down": remote_app(f"http://127.0.0.1:{port}/v2", retries=0, circuitBreaker={"failures": 3, "cooldown": 2})}).start()
    base = a.base("down")
    for _ in range(3):
        r = requests.get(base + "/Users/x")
        assert r.status_code == 502 and "down" in r.json()["detail"] and r.json()["status"] == "502"
    r = requests.get(base + "/Users/x")
    assert r.status_code == 503 and "not trying again" in r.json()["detail"]
    assert requests.get(a.url("/healthz")).json()["apps"]["down"]["circuitBreaker"] == "open"
    p = ScimPeer(port=port)
    try:
        time.sleep(2.2)
        assert requests.get(base + "/Users").status_code == 200  # the probe succeeds
        assert requests.get(a.url("/healthz")).json()["apps"]["down"]["circuitBreaker"] == "closed"
    finally:
        p.stop()


def test_a_stalled_remote_is_504(make_agent):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    try:
        a = make_agent({"slow": remote_app(f"http://127.0.0.1:{port}/v2", timeouts={"request": 1})}).start()
        t0 = time.time()
        r = requests.get(a.base("slow") + "/Users/x")
        assert r.status_code == 504 and time.time() - t0 < 5
    finally:
        server.close()


def test_connect_timeout_is_per_app(make_agent):
    """A remote whose accept queue is full drops new connections' SYNs, so a connect hangs
    until the app's own timeouts.connect (the old code used 3 s for every app)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(OSError):
            probe.connect(("127.0.0.1", port))  # the setup works: a new connect does hang
        probe.close()
        url = f"http://127.0.0.1:{port}/v2"
        t0 = time.time()
        a = make_agent({"fast": remote_app(url, retries=0, timeouts={"connect": 0.4, "request": 20}),
                        "patient": remote_app(url, retries=0, timeouts={"connect": 4.5, "request": 20})}).start()
        assert time.time() - t0 < 3  # the start does not wait for the remotes' discovery
        # A request waits for its remote's first discovery (5 s at most): let both fail first,
        # so that what is timed below is one connect each.
        deadline = time.time() + 10
        while a.log.read_text().count("remote discovery failed") < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert a.log.read_text().count("remote discovery failed") == 2
        body = {"schemas": [USER], "userName": "t@example.com"}
        t0 = time.time()
        r = requests.post(a.base("fast") + "/Users", json=body)
        fast = time.time() - t0
        assert r.status_code == 502, r.text
        t0 = time.time()
        r = requests.post(a.base("patient") + "/Users", json=body)
        patient = time.time() - t0
        assert r.status_code == 502, r.text
        # One connection attempt each: with no connection nothing was sent, so the agent does
        # not look up a create that might have landed (it does when a connection was lost).
        assert "connectTimeout" in r.text
        assert fast < 1.5 and 4.3 < patient < 7, (fast, patient)
    finally:
        for c in fillers:
            c.close()
        server.close()


class DropFirstCreateResponse:
    """A proxy that forwards everything, but for the first POST /Users closes the client's
    connection after the server has answered: the create happened, its reply was lost."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.dropped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    def handle(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        try:
            while data := client.recv(65536):
                if data.startswith(b"POST /v2/Users ") and not self.dropped:
                    self.dropped = True
                    # The whole request goes through (headers and body may come in separate
                    # reads), so the server creates the user...
                    while b"\r\n\r\n" not in data:
                        data += client.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                    while len(body) < length:
                        body += client.recv(65536)
                    upstream.sendall(head + b"\r\n\r\n" + body)
                    time.sleep(0.5)
                    return  # ...and its answer never reaches the agent
                upstream.sendall(data)
                if not back.is_alive() and back.ident is None:
                    back.start()
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()


def test_no_duplicate_after_a_lost_create_response(make_agent, peer):
    proxy = DropFirstCreateResponse(peer.port)
    a = make_agent({"flaky": remote_app(f"http://127.0.0.1:{proxy.port}/v2")}).start()
    r = requests.post(a.base("flaky") + "/Users", json={"schemas": [USER], "userName": "once@example.com"})
    assert proxy.dropped
    assert r.status_code == 201, r.text
    found = peer.get("/Users", params={"filter": 'userName eq "once@example.com"'}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == r.json()["id"]
