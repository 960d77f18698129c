"""flatfile writes survive SIGKILL at any moment, and admins' edits are picked up."""
import csv
import io
import random
import signal
import threading
import time

import requests

from conftest import all_user_names, session_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
APPS = {"files": {"connector": "flatfile", "settings": {"directory": "data/files"},
                  "auth": {"type": "header", "name": "Authorization", "value": "Bearer s3cret"}}}


def test_sigkill_mid_write_loses_no_acknowledged_write(make_agent):
    a = make_agent(APPS)
    data = a.workdir / "data" / "files"
    acknowledged = set()
    rng = random.Random(7)
    for round_ in range(12):
        a.start()
        s, base = session_for("files"), a.base("files")
        # Everything acknowledged so far is there after the restart.
        listed = all_user_names(s, base)
        assert acknowledged <= listed, sorted(acknowledged - listed)[:5]
        stop = threading.Event()

        def writer(worker):
            n = 0
            while not stop.is_set():
                name = f"r{round_}-w{worker}-{n}@example.com"
                try:
                    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": name, "title": "x" * rng.randint(0, 300)}, timeout=5)
                except requests.RequestException:
                    return
                if r.status_code == 201:
                    acknowledged.add(name)
                n += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 1.5))
        a.process.send_signal(signal.SIGKILL)
        a.process.wait()
        stop.set()
        for t in threads:
            t.join()
        # The CSV always parses: it is the old one or the new one, never torn.
        rows = list(csv.DictReader(io.StringIO((data / "users.csv").read_text())))
        assert all(r["id"] and r["userName"] for r in rows)
    a.start()
    s, base = session_for("files"), a.base("files")
    listed = all_user_names(s, base)
    assert len(acknowledged) > 50
    assert acknowledged <= listed


def test_admin_edits_are_picked_up_and_not_overwritten(make_agent):
    a = make_agent(APPS).start()
    s, base = session_for("files"), a.base("files")
    uid = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "edit@example.com", "title": "Before"}).json()["id"]
    users_csv = a.workdir / "data" / "files" / "users.csv"
    deadline = time.time() + 10
    while "edit@example.com" not in users_csv.read_text() and time.time() < deadline:
        time.sleep(0.2)  # idle compaction folds the journal into the CSV
    assert "edit@example.com" in users_csv.read_text()
    text = users_csv.read_text().replace("edit@example.com", "edited@example.com")
    tmp = users_csv.with_suffix(".new")
    tmp.write_text(text)
    tmp.rename(users_csv)  # what a spreadsheet's save does
    assert s.get(f"{base}/Users/{uid}").json()["userName"] == "edited@example.com"
    # A later write keeps the admin's change.
    s.post(f"{base}/Users", json={"schemas": [USER], "userName": "second@example.com"})
    names = {u["userName"] for u in s.get(f"{base}/Users").json()["Resources"]}
    assert names == {"edited@example.com", "second@example.com"}


def test_a_second_agent_cannot_write_the_same_directory(make_agent):
    a = make_agent(APPS).start()
    session_for("files").post(a.base("files") + "/Users", json={"schemas": [USER], "userName": "one@example.com"})
    b = make_agent(APPS)
    b.workdir.joinpath("data").symlink_to(a.workdir / "data")
    b.start()
    r = session_for("files").post(b.base("files") + "/Users", json={"schemas": [USER], "userName": "two@example.com"})
    assert r.status_code == 503 and "in use by another agent" in r.json()["detail"]


def test_two_instances_on_one_directory_lose_no_acknowledged_write(make_agent):
    """Two flatfile instances in one process share a directory, as two plugin generations do
    during a hot reload: one appends while the other reads. A reader must never take a line
    being appended for a crash's torn line (and cut it off), nor miss it."""
    apps = {name: {"connector": "flatfile", "settings": {"directory": "data/shared"}, "auth": {"type": "none"}} for name in ("a", "b")}
    agent = make_agent(apps).start()
    stop, lock = threading.Event(), threading.Lock()
    acknowledged, failures = set(), []
    title = "x" * 1500  # long journal lines: an append often spans two pages

    def write(worker):
        s, n = requests.Session(), 0
        deadline = time.time() + 8
        while time.time() < deadline and not stop.is_set():
            name = f"w{worker}-{n}@example.com"
            r = s.post(agent.base("a") + "/Users", json={"schemas": [USER], "userName": name, "title": title}, timeout=10)
            if r.status_code == 201:
                uid = r.json()["id"]
                with lock:
                    acknowledged.add(name)
                seen = s.get(agent.base("b") + f"/Users/{uid}", timeout=10)  # the other instance, at once
                if seen.status_code != 200:
                    with lock:
                        failures.append(f"{name}: created by a, {seen.status_code} from b")
            else:
                with lock:
                    failures.append(f"{name}: {r.status_code} {r.text[:200]}")
            n += 1

    def read():
        s = requests.Session()
        while not stop.is_set():
            s.get(agent.base("b") + "/Users", params={"filter": 'userName sw "w"', "count": "1"}, timeout=10)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)] + [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads[:4]:
        t.join()
    stop.set()
    for t in threads[4:]:
        t.join()
    assert len(acknowledged) > 200
    assert failures == [], failures[:5]
    for app in ("a", "b"):
        assert acknowledged <= all_user_names(requests.Session(), agent.base(app))


def test_a_quote_after_a_prepend_mark_survives_the_spreadsheet(make_agent):
    """Found by fuzzing the CSV reader: U+06DD joins the next character into one grapheme, and a
    quote after it was not doubled, so the compacted users.csv no longer parsed."""
    a = make_agent(APPS).start()
    s, base = session_for("files"), a.base("files")
    name = 'Ayah \u06dd"quoted" , and more'
    r = s.post(f"{base}/Users", json={"schemas": [USER], "userName": "ayah", "displayName": name})
    assert r.status_code == 201, r.text
    a.stop()  # compacts the journal into users.csv
    rows = list(csv.DictReader(io.StringIO((a.workdir / "data" / "files" / "users.csv").read_text(encoding="utf-8-sig"))))
    assert [row["displayName"] for row in rows] == [name]
    a.start()
    assert s.get(f"{base}/Users/{r.json()['id']}").json()["displayName"] == name


def test_check_beside_a_running_agent_only_reads_its_directory(make_agent):
    """`check` opens the app too: it reads the files and leaves them as they are (it once
    folded the serving agent's journal into the CSV when it closed)."""
    a = make_agent(APPS).start()
    s, base = session_for("files"), a.base("files")
    assert s.post(base + "/Users", json={"schemas": [USER], "userName": "before.check"}).status_code == 201
    data = a.workdir / "data" / "files"
    before = {f: ((data / f).stat().st_ino, (data / f).stat().st_mtime_ns, (data / f).read_bytes()) for f in ("users.csv", "users.journal")}
    assert b"before.check" in before["users.journal"][2]
    result = a.cli("check")
    assert "✓ files (flatfile)" in result.stdout and "1 users" in result.stdout, result.stdout
    after = {f: ((data / f).stat().st_ino, (data / f).stat().st_mtime_ns, (data / f).read_bytes()) for f in ("users.csv", "users.journal")}
    assert after == before
    # The agent goes on writing as before.
    assert s.post(base + "/Users", json={"schemas": [USER], "userName": "after.check"}).status_code == 201
    assert {"before.check", "after.check"} <= all_user_names(s, base)
