"""The status page in a real browser (headless Chromium), its access rules, /metrics on a
listener of its own, and the warning about a readable configuration holding secrets."""
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import requests

from conftest import AGENT, free_port, wait_for

CHROMIUM = shutil.which("chromium")


def browser(url, workdir, *args):
    """Chromium as a person would load the page, without JavaScript needed."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make deps`")
    profile = workdir / "chromium-profile"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=1280,900", *args, url],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Rows(HTMLParser):
    """The text of each table row by its id, and its class (the health colour)."""

    def __init__(self):
        super().__init__()
        self.rows, self.classes, self.current = {}, {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("id"):
            self.current = a["id"]
            self.rows[self.current], self.classes[self.current] = "", a.get("class", "")
        elif tag in ("td", "th") and self.current:
            self.rows[self.current] += " | "

    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.rows[self.current] += data


def read_page(agent, workdir):
    dom = browser(agent.url("/status"), workdir, "--dump-dom")
    rows = Rows()
    rows.feed(dom)
    return dom, rows


def test_status_page_in_chromium_shows_each_app_and_turns_mysql_red_when_mariadb_stops(make_agent, mariadb, tmp_path):
    apps = {
        "files": {"connector": "flatfile", "settings": {"directory": "data/files"}, "auth": {"type": "none"}},
        "db": {"connector": "mysql", "settings": mariadb.settings(createSchema=True), "auth": {"type": "none"}},
        "ghost": {"connector": "nosuchconnector", "auth": {"type": "none"}},
    }
    a = make_agent(apps, plugins=("flatfile.so", "mysql.so")).start()
    s = requests.Session()
    s.headers["Content-Type"] = "application/scim+json"
    for i in range(6):
        assert s.post(a.base("files") + "/Users", json={"userName": f"page{i}"}).status_code == 201
    assert s.post(a.base("db") + "/Users", json={"userName": "page-db"}).status_code == 201
    assert s.get(a.base("ghost") + "/Users").status_code == 503

    dom, rows = read_page(a, tmp_path)
    assert "<h1>provisioning-agent</h1>" in dom
    files, db, ghost = rows.rows["app-files"], rows.rows["app-db"], rows.rows["app-ghost"]
    assert rows.classes["app-files"] == "green" and "serving" in files
    assert re.search(r"flatfile 1\.0\.0 · generation \d+ · in-process", files), files
    assert rows.classes["app-db"] == "green" and "mysql 1.0.0" in db, db
    assert rows.classes["app-ghost"] == "red" and "failing" in ghost and "nosuchconnector" in ghost, ghost
    # The rates come from provisioning_requests_total: 6 requests to files within the window.
    requests_per_minute = float(files.split(" | ")[5])
    assert requests_per_minute > 0, files
    # The ghost app's 503 is among its recent failures, with its request.
    assert "GET /apps/ghost/scim/v2/Users" in dom
    # The plugins table names both files.
    assert "flatfile.so" in dom and "mysql.so" in dom

    shot = tmp_path / "status.png"
    browser(a.url("/status"), tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, a.workdir / "status-serving.png")

    mariadb.stop()
    try:
        # A failed call is answered and recorded; the page's test of the target fails too.
        assert s.get(a.base("db") + "/Users").status_code >= 500
        def db_red():
            _, rows = read_page(a, tmp_path)
            return rows if rows.classes.get("app-db") == "red" else None
        rows = wait_for(db_red, seconds=20)
        assert rows, "the mysql app did not turn red"
        db = rows.rows["app-db"]
        assert "failing" in db and "its test fails" in db, db
        assert re.search(r"connect|MariaDB|MySQL", db, re.I), db
        assert rows.classes["app-files"] == "green"
        browser(a.url("/status"), tmp_path, f"--screenshot={a.workdir / 'status-mariadb-stopped.png'}")
    finally:
        mariadb.start()
    rows = wait_for(lambda: (lambda r: r if r.classes.get("app-db") in ("green", "amber") else None)(read_page(a, tmp_path)[1]), seconds=30)
    assert rows, "the mysql app did not recover after MariaDB restarted"


def test_status_page_answers_loopback_or_its_credential(make_agent):
    apps = {"files": {"connector": "flatfile", "settings": {"directory": "data/files"}, "auth": {"type": "none"}}}
    open_page = make_agent(apps).start()
    r = requests.get(open_page.url("/status"), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "files" in r.text
    open_page.stop()

    guarded = make_agent(apps, server={"status": {"auth": {"type": "basic", "username": "admin", "password": "page-pw"}}}).start()
    r = requests.get(guarded.url("/status"), timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(guarded.url("/status"), auth=("admin", "wrong"), timeout=10).status_code == 401
    r = requests.get(guarded.url("/status"), auth=("admin", "page-pw"), timeout=10)
    assert r.status_code == 200 and 'id="app-files"' in r.text


def test_metrics_on_a_listener_of_their_own_behind_a_credential(make_agent):
    port = free_port()
    apps = {"files": {"connector": "flatfile", "settings": {"directory": "data/files"}, "auth": {"type": "none"}}}
    a = make_agent(apps, server={"metrics": {"listen": f"127.0.0.1:{port}", "auth": {"type": "header", "name": "Authorization", "value": "Bearer scrape"}}}).start()
    for i in range(3):
        assert requests.post(a.base("files") + "/Users", json={"userName": f"m{i}"}, timeout=10).status_code == 201
    # Not on the agent's own listener any more.
    assert requests.get(a.url("/metrics"), timeout=10).status_code == 404
    metrics = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: _answers(metrics), seconds=10)
    assert requests.get(metrics, timeout=10).status_code == 401
    r = requests.get(metrics, headers={"Authorization": "Bearer scrape"}, timeout=10)
    assert r.status_code == 200
    line = re.search(r'^provisioning_requests_total\{app="files",method="POST",status="201"\} (\d+)', r.text, re.M)
    assert line and int(line.group(1)) == 3, r.text[:2000]
    # Nothing else is served there.
    assert requests.get(f"http://127.0.0.1:{port}/apps/files/scim/v2/Users", timeout=10).status_code == 404


def _answers(url):
    try:
        requests.get(url, timeout=1)
        return True
    except requests.ConnectionError:
        return False


def test_a_readable_configuration_with_an_inline_secret_is_warned_about(make_agent, tmp_path):
    apps = {"files": {"connector": "flatfile", "settings": {"directory": "data/files"},
                      "auth": {"type": "basic", "username": "okta", "password": "inline-pw"}}}
    a = make_agent(apps)
    os.chmod(a.config, 0o644)
    out = a.cli("check").stdout
    assert "readable by other users (mode 0644)" in out and "apps.files.auth.password" in out, out
    assert "inline-pw" not in out
    a.start()
    assert wait_for(lambda: "readable by other users" in a.log.read_text())
    assert "inline-pw" not in a.log.read_text()
    a.stop()

    os.chmod(a.config, 0o640)
    assert "readable by other users" not in a.cli("check").stdout

    # A secret from the environment is not in the file: no warning at 0644.
    os.chmod(a.config, 0o644)
    a.config.write_text(a.config.read_text().replace('"inline-pw"', '"${FILES_PASSWORD}"'))
    result = subprocess.run([str(AGENT), "check", "--config", str(a.config)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "FILES_PASSWORD": "from-env"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "readable by other users" not in result.stdout


def test_a_guard_refusal_is_among_the_recent_failures(make_agent):
    apps = {"g": {"connector": "memory", "auth": {"type": "none"}, "guard": {"maxDeletesPerHour": 1}}}
    a = make_agent(apps).start()
    headers = {"Content-Type": "application/scim+json"}
    ids = [requests.post(a.base("g") + "/Users", json={"userName": f"guarded{i}"}, headers=headers, timeout=10).json()["id"] for i in range(2)]
    assert requests.delete(a.base("g") + "/Users/" + ids[0], timeout=10).status_code == 204
    refused = requests.delete(a.base("g") + "/Users/" + ids[1], timeout=10)
    assert refused.status_code == 429
    page = requests.get(a.url("/status"), timeout=10).text
    failures = page[page.index("<h2>Recent failures</h2>"):page.index("<h2>Plugins</h2>")]
    assert f"DELETE /apps/g/scim/v2/Users/{ids[1]}" in failures and "<td>429</td>" in failures, failures
    assert "guard release" in failures  # the refusal's own detail says how to release it
    # One refusal is not a failing target: the app stays green.
    assert 'id="app-g" class="green"' in page


def test_the_environment_file_beside_the_configuration(make_agent):
    """The package's secrets file: read by every command for ${NAME}, warned about when others may read it."""
    apps = {"files": {"connector": "flatfile", "settings": {"directory": "data/files"},
                      "auth": {"type": "basic", "username": "okta", "password": "${FILES_PASSWORD}"}}}
    a = make_agent(apps)
    os.chmod(a.config, 0o640)
    env_file = a.config.parent / "environment"
    env_file.write_text("# secrets\nFILES_PASSWORD=from-the-file\n")
    os.chmod(env_file, 0o644)
    result = a.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{env_file} is readable by other users (mode 0644)" in result.stdout and "from-the-file" not in result.stdout
    os.chmod(env_file, 0o640)
    assert "readable by other users" not in a.cli("check").stdout
    a.start()
    assert requests.get(a.base("files") + "/Users", auth=("okta", "from-the-file"), timeout=10).status_code == 200
    assert requests.get(a.base("files") + "/Users", auth=("okta", "other"), timeout=10).status_code == 401
