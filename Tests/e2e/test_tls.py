"""TLS on the agent's listener: served with the configured certificate, TLS 1.2 the minimum,
https locations, no plain HTTP on the TLS port, and a clear error for a missing key file."""
import socket
import ssl
import subprocess
import time
import warnings

import pytest
import requests

from conftest import AGENT

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def tls_agent(make_agent, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(certs / "agent.key"),
                    "-out", str(certs / "agent.pem"), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2"],
                   check=True, capture_output=True)
    agent = make_agent({"mem": {"connector": "memory", "auth": {"type": "basic", "username": "okta", "password": "change-me"}}})
    text = agent.config.read_text()
    agent.config.write_text(text.replace("\nplugins:", f"\n  tls:\n    certificate: {certs / 'agent.pem'}\n    privateKey: {certs / 'agent.key'}\nplugins:", 1))
    agent.url = lambda path="": f"https://127.0.0.1:{agent.port}{path}"
    # start() polls /healthz over plain HTTP, which a TLS port never answers: wait for the port instead.
    agent.process = subprocess.Popen([str(AGENT), "serve", "--config", str(agent.config)], stdout=open(agent.log, "ab"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", agent.port), timeout=0.1).close()
            break
        except OSError:
            assert agent.process.poll() is None, agent.log.read_text()
            time.sleep(0.05)
    return agent, certs / "agent.pem"


def handshake(port, cafile, version):
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions: the server must refuse them
    ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
        return t.version()


def test_tls_listener(tls_agent):
    agent, cert = tls_agent
    s = requests.Session()
    s.auth, s.verify = ("okta", "change-me"), str(cert)
    s.trust_env = False  # REQUESTS_CA_BUNDLE would replace verify
    r = s.post(agent.url("/apps/mem/scim/v2/Users"), json={"schemas": [USER], "userName": "tls@example.com"})
    assert r.status_code == 201, r.text
    assert r.headers["Location"].startswith(f"https://127.0.0.1:{agent.port}/apps/mem/scim/v2/Users/")
    assert r.json()["meta"]["location"] == r.headers["Location"]
    assert s.get(r.headers["Location"]).json()["userName"] == "tls@example.com"
    # Without the CA the certificate is not trusted (the client checks; nothing is served unverified by accident).
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(agent.url("/healthz"))
    # TLS 1.2 and 1.3 are served; TLS 1.1 is refused by the server with a protocol_version alert.
    assert handshake(agent.port, cert, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(agent.port, cert, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|protocol version"):
        handshake(agent.port, cert, old)
    # Plain HTTP on the TLS port gets no HTTP answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{agent.port}/healthz", timeout=5)


def test_missing_key_file_is_named(make_agent, tmp_path):
    agent = make_agent({"mem": {"connector": "memory", "auth": {"type": "none"}}})
    text = agent.config.read_text()
    agent.config.write_text(text.replace("\nplugins:", "\n  tls:\n    certificate: certs/none.pem\n    privateKey: certs/none.key\nplugins:", 1))
    r = subprocess.run([str(AGENT), "serve", "--config", str(agent.config)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{agent.config}: server.tls.certificate: cannot read {agent.config.parent / 'certs/none.pem'}" in r.stderr + r.stdout
