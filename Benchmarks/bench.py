"""`make bench`: the agent side by side with scim2-server and a bare Hummingbird handler, the
connectors against their direct client libraries, hot-reload costs, and microbenchmarks.
Every server is on loopback, every load is bounded, and everything is stopped at the end."""
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from servers import MariaDB, Slapd, free_port, wait_port  # noqa: E402

# The agent refuses plugin files others may write: make the copies with the usual umask.
os.umask(0o022)

# BENCH_RELEASE: another revision's release build directory, measured the same way.
RELEASE = Path(os.environ.get("BENCH_RELEASE", ROOT / ".build" / "release"))
PLUGINS = ROOT / "plugins-release"
WRK = ROOT / "Benchmarks" / "wrk"
USERS = int(os.environ.get("BENCH_USERS", "10000"))
DURATION = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = [16, 64]
WORK = Path(tempfile.mkdtemp(prefix="bench-"))
processes = []


def log(*a):
    print(*a, flush=True)


def start(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(WORK / f"{Path(cmd[0]).name}-{len(processes)}.log", "w"), **kw)
    processes.append(p)
    return p


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Client:
    """Keep-alive HTTP for preloading and probing."""

    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port, self.prefix = u.hostname, u.port, u.path
        self.local = threading.local()

    def request(self, method, path, body=None):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, self.prefix + path, body=data, headers={"Content-Type": "application/scim+json"})
            r = conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            self.local.conn = None
            raise


def preload(base, count, tag):
    c = Client(base)

    def create(i):
        name = f"{tag}{i:06}@example.com"
        status, body = c.request("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                                                    "name": {"givenName": "Pre", "familyName": f"Loaded{i}"}, "active": True})
        if status != 201:
            raise RuntimeError(f"preload {base}: {status} {body[:200]}")
        return json.loads(body)["id"], name

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        created = list(ex.map(create, range(count)))
    ids, names = WORK / f"{tag}-ids.txt", WORK / f"{tag}-names.txt"
    ids.write_text("\n".join(i for i, _ in created) + "\n")
    names.write_text("\n".join(n for _, n in created) + "\n")
    return ids, names


def wrk(base, scenario, connections, listfile, seconds=DURATION, threads=2):
    script = WORK / f"{scenario}.lua"
    script.write_text((WRK / "prelude.lua").read_text() + (WRK / f"{scenario}.lua").read_text() + (WRK / "report.lua").read_text())
    cmd = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base, "--", str(listfile)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[7:])
    r["rps"] = r["requests"] / r["seconds"]
    return r


def micro():
    out = subprocess.run([str(RELEASE / "agent-micro"), str(PLUGINS)], capture_output=True, text=True, timeout=600).stdout
    log(out)
    return json.loads(Path("/tmp/agent-micro.json").read_text())


def agent_config(path, apps, port):
    lines = [f"server:\n  listen: 127.0.0.1:{port}\n  maxBodySize: 1048576\nplugins:\n  directory: {PLUGINS}\napps:"]
    for name, app in apps.items():
        lines.append(f"  {name}: {json.dumps(app)}")
    path.write_text("\n".join(lines) + "\n")


def start_agent(apps, name="agent"):
    port = free_port()
    config = WORK / f"{name}.yaml"
    agent_config(config, apps, port)
    env = dict(os.environ, LOG_LEVEL="warning")
    p = start([str(RELEASE / "provisioning-agent"), "serve", "--config", str(config)], env=env)
    wait_port(port, process=p)
    return p, port, config


def main():
    only = os.environ.get("BENCH_ONLY")  # BENCH_ONLY=isolation, observability or relay: that section alone
    sections = {"isolation": lambda: isolation_bench(), "observability": lambda: observability_bench(), "relay": lambda: relay_bench(),
                "import": lambda: import_bench(), "groups": lambda: large_group_bench(),
                "native": lambda: native_bench()}
    if only in sections:
        log(sections[only]())
        return
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.node()} · {os.cpu_count()} cores · {platform.platform()}"
    report = [f"# Benchmarks\n\nRun {date} on {machine}, `make bench` (release build). "
              f"{USERS} users preloaded per target; wrk, 2 threads, {DURATION} s per cell. Ratios are within this run.\n"]

    mariadb = MariaDB() if shutil.which("mariadbd") else None
    slapd = Slapd() if Path("/usr/sbin/slapd").exists() else None
    apps = {
        "mem": {"connector": "memory", "auth": {"type": "none"}},
        "files": {"connector": "flatfile", "settings": {"directory": str(WORK / "files")}, "auth": {"type": "none"}},
    }
    if mariadb:
        apps["mysql"] = {"connector": "mysql", "settings": mariadb.settings(createSchema=True, poolSize=8), "auth": {"type": "none"}}
    if slapd:
        apps["ldap"] = {"connector": "ldap", "settings": slapd.settings(poolSize=8), "auth": {"type": "none"}}

    # Idle resident memory with three apps, before any load.
    idle_agent, _, _ = start_agent({k: apps[k] for k in list(apps)[:3]}, "idle")
    time.sleep(2)
    idle_rss = rss_kib(idle_agent.pid)
    idle_agent.send_signal(signal.SIGTERM)
    idle_agent.wait(timeout=30)

    peer_port = free_port()
    apps["remote"] = {"remote": {"url": f"http://127.0.0.1:{peer_port}/v2"}, "auth": {"type": "none"}}
    agent, agent_port, _ = start_agent(apps)
    peer = start([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "Benchmarks" / "scim2_server_asgi.py"), str(peer_port)])
    wait_port(peer_port, process=peer)
    bare_port = free_port()
    bare = start([str(RELEASE / "bare-hummingbird"), str(bare_port)])
    wait_port(bare_port, process=bare)

    targets = {
        "agent · memory": (f"http://127.0.0.1:{agent_port}/apps/mem/scim/v2", agent),
        "agent · flatfile": (f"http://127.0.0.1:{agent_port}/apps/files/scim/v2", agent),
        "scim2-server": (f"http://127.0.0.1:{peer_port}/v2", peer),
    }
    if mariadb:
        targets["agent · mysql"] = (f"http://127.0.0.1:{agent_port}/apps/mysql/scim/v2", agent)
    if slapd:
        targets["agent · ldap"] = (f"http://127.0.0.1:{agent_port}/apps/ldap/scim/v2", agent)

    lists = {}
    for name, (base, _) in targets.items():
        t0 = time.time()
        lists[name] = preload(base, USERS, name.split()[-1].replace("-", ""))
        log(f"preloaded {USERS} users into {name} in {time.time() - t0:.1f}s")

    # The direct libmariadb baseline for creates runs right before the agent's create cell at
    # the same concurrency, so that both write into a table of about the same size.
    direct_inserts = {}
    if mariadb:
        direct_binary = WORK / "mysql_insert"
        subprocess.run(["cc", "-O2", "-o", str(direct_binary), str(ROOT / "Benchmarks/direct/mysql_insert.c")] +
                       subprocess.run(["pkg-config", "--cflags", "--libs", "libmariadb"], capture_output=True, text=True).stdout.split() + ["-lpthread"], check=True)

    def direct_insert(c, mode="connector"):
        """Direct INSERTs/s at concurrency c, and MariaDB's CPU per INSERT. Mode `connector`: the
        connector's own statement for one user (client ids and times, RETURNING); `server-ids`:
        the lighter statement this benchmark used before (UUID(), NOW(3), nothing read back)."""
        db0 = cpu_seconds(mariadb.process.pid)
        d = float(subprocess.run([str(direct_binary), "127.0.0.1", str(mariadb.port), mariadb.USER, mariadb.PASSWORD, mariadb.DATABASE, str(c), str(DURATION), mode],
                                 capture_output=True, text=True, check=True).stdout)
        return d, (cpu_seconds(mariadb.process.pid) - db0) / (d * DURATION) * 1e6

    def cell(base, proc, database, scenario, c, listfile):
        """One wrk run, with the CPU the server (and its database) used per request."""
        cpu0, db0 = cpu_seconds(proc.pid), database and cpu_seconds(database)
        r = wrk(base, scenario, c, listfile)
        r["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / max(1, r["requests"]) * 1e6
        r["db_cpu_us"] = database and (cpu_seconds(database) - db0) / max(1, r["requests"]) * 1e6
        return r

    results = {}
    for name, (base, proc) in targets.items():
        ids, names = lists[name]
        for scenario, listfile in (("get_by_id", ids), ("filter", names), ("patch", ids), ("create", "run")):
            for c in CONNECTIONS:
                if name == "agent · mysql" and scenario == "create":
                    direct_inserts[c] = direct_insert(c)
                database = mariadb.process.pid if name == "agent · mysql" else slapd.process.pid if name == "agent · ldap" else None
                r = cell(base, proc, database, scenario, c, listfile if listfile != "run" else f"{name.split()[-1]}{c}")
                r["peak_rss_mib"] = rss_kib(proc.pid, "VmHWM") / 1024
                results[(name, scenario, c)] = r
                log(f"{name:18} {scenario:10} c={c:<3} {r['rps']:9.0f} req/s  p50 {r['p50_us']/1000:7.2f} ms  p99 {r['p99_us']/1000:7.2f} ms  errors {r['errors']}")
    for c in CONNECTIONS:
        cpu0 = cpu_seconds(bare.pid)
        r = wrk(f"http://127.0.0.1:{bare_port}", "get_by_id", c, lists["agent · memory"][0])
        r["cpu_us"] = (cpu_seconds(bare.pid) - cpu0) / max(1, r["requests"]) * 1e6
        r["peak_rss_mib"] = rss_kib(bare.pid, "VmHWM") / 1024
        results[("bare Hummingbird", "get_by_id", c)] = r
        log(f"bare Hummingbird   get_by_id  c={c:<3} {r['rps']:9.0f} req/s")

    # The GET-by-id targets side by side: the memory app, the bare handler and scim2-server in
    # turn, three rounds, the median of each round's ratios (this machine's speed drifts by a
    # quarter within minutes, which the cells above, minutes apart, do not cancel).
    side_by_side = {c: [] for c in CONNECTIONS}
    for rep in range(3):
        for c in CONNECTIONS:
            a = wrk(targets["agent · memory"][0], "get_by_id", c, lists["agent · memory"][0], seconds=max(2, DURATION // 2))
            b = wrk(f"http://127.0.0.1:{bare_port}", "get_by_id", c, lists["agent · memory"][0], seconds=max(2, DURATION // 2))
            s2 = wrk(targets["scim2-server"][0], "get_by_id", c, lists["scim2-server"][0], seconds=max(2, DURATION // 2))
            side_by_side[c].append((a["rps"] / s2["rps"], a["rps"] / b["rps"]))
            log(f"side by side c={c}: agent {a['rps']:.0f}, bare {b['rps']:.0f}, scim2-server {s2['rps']:.0f} req/s")

    def side_ratio(c, which):
        values = sorted(r[which] for r in side_by_side[c])
        return values[len(values) // 2]

    # The agent's added latency in front of a remote SCIM server, unloaded (one connection):
    # five alternating pairs of runs, medians of each side (one outlier run moves nothing).
    peer_ids = lists["scim2-server"][0]
    runs = {"direct": [], "via": []}
    for i in range(5):
        for side in (["direct", "via"] if i % 2 == 0 else ["via", "direct"]):
            url = f"http://127.0.0.1:{peer_port}/v2" if side == "direct" else f"http://127.0.0.1:{agent_port}/apps/remote/scim/v2"
            runs[side].append(wrk(url, "get_by_id", 1, peer_ids, seconds=max(2, DURATION // 2), threads=1))

    def median_of(side, key):
        values = sorted(r[key] for r in runs[side])
        return values[len(values) // 2]

    lat = {side: {k: median_of(side, k) for k in ("p50_us", "p99_us", "rps")} for side in runs}
    errors = {side: sum(r["errors"] for r in runs[side]) for side in runs}
    log(f"remote GET by id, medians of 5: direct p50 {lat['direct']['p50_us']} us p99 {lat['direct']['p99_us']} us; "
        f"through the agent p50 {lat['via']['p50_us']} us p99 {lat['via']['p99_us']} us")

    def added(key):
        d = (lat["via"][key] - lat["direct"][key]) / 1000
        return f"{d:.2f}" if d > 0 else "0 (within noise)"

    remote_report = (f"\n## Remote SCIM target: the agent's added latency\n\nGET /Users/{{id}}, one connection, five alternating pairs of "
                     f"{max(2, DURATION // 2)} s runs, scim2-server directly vs. through a `remote` app of the agent; medians of the five.\n\n"
                     f"| | p50 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|\n"
                     f"| scim2-server directly | {lat['direct']['p50_us']/1000:.2f} | {lat['direct']['p99_us']/1000:.2f} | {lat['direct']['rps']:.0f} | {errors['direct']} |\n"
                     f"| through the agent | {lat['via']['p50_us']/1000:.2f} | {lat['via']['p99_us']/1000:.2f} | {lat['via']['rps']:.0f} | {errors['via']} |\n"
                     f"| added by the agent | {added('p50_us')} | {added('p99_us')} | | |")

    report.append("## Throughput and latency\n\nCPU µs/req: CPU time the server process (and, for mysql/ldap, the database server) used per request during the cell.\n\n"
                  "| target | scenario | conns | req/s | p50 ms | p99 ms | errors | CPU µs/req | database CPU µs/req | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|")
    for (name, scenario, c), r in results.items():
        db = f"{r['db_cpu_us']:.0f}" if r.get("db_cpu_us") else ""
        report.append(f"| {name} | {scenario} | {c} | {r['rps']:.0f} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {r['errors']} | {r['cpu_us']:.0f} | {db} | {r['peak_rss_mib']:.0f} |")

    def ratio(a, b, scenario, c):
        return results[(a, scenario, c)]["rps"] / results[(b, scenario, c)]["rps"]

    report.append("\n## Targets (ratios in this run)\n\n| measure | target | c=16 | c=64 |\n|---|---|---|---|")
    report.append(f"| GET by id, memory app vs scim2-server (side by side, median of 3 rounds) | ≥ 15× | {side_ratio(16, 0):.2f}× | {side_ratio(64, 0):.2f}× |")
    report.append(f"| GET by id, memory app vs bare Hummingbird (side by side, median of 3 rounds) | ≥ 0.7× | {side_ratio(16, 1):.2f}× | {side_ratio(64, 1):.2f}× |")
    for label, a, b, scenario, target in [
        ("GET by id, memory app vs scim2-server (cells above)", "agent · memory", "scim2-server", "get_by_id", "≥ 15×"),
        ("GET by id, memory app vs bare Hummingbird (cells above)", "agent · memory", "bare Hummingbird", "get_by_id", "≥ 0.7×"),
        ("filter by userName, flatfile app vs scim2-server", "agent · flatfile", "scim2-server", "filter", "≥ 10×"),
        ("POST create, flatfile (durable) vs scim2-server (memory)", "agent · flatfile", "scim2-server", "create", "≥ 3×"),
    ]:
        report.append(f"| {label} | {target} | {ratio(a, b, scenario, 16):.2f}× | {ratio(a, b, scenario, 64):.2f}× |")

    m = micro()
    report.append(f"| ABI no-op round trip (host → C plugin → host emit) | ≤ 2 µs median | {m['abi_roundtrip']/1000:.2f} µs | |")
    report.append(f"| agent idle RSS, three apps | ≤ 40 MiB | {idle_rss/1024:.1f} MiB | |")
    report.append("\n## Microbenchmarks (median per operation)\n\n| operation | target | median |\n|---|---|---|")
    report.append(f"| parse `userName eq \"john.doe@example.com\"` | ≤ 2 µs | {m['filter_parse']/1000:.2f} µs |")
    report.append(f"| evaluate it against a user | ≤ 1 µs | {m['filter_eval']/1000:.2f} µs |")
    report.append(f"| Okta deactivate PATCH (parse + apply) | ≤ 10 µs | {m['patch_apply']/1000:.2f} µs |")
    report.append(f"| User JSON decode + encode | — | {m['json_roundtrip']/1000:.2f} µs |")
    report.append(f"| ABI round trip (memory `test`) | ≤ 2 µs | {m['abi_roundtrip']/1000:.2f} µs |")

    # Connectors against their direct client libraries, at the same concurrency.
    if mariadb:
        # The agent above has served every target by now: its heap holds the memory app's
        # hundreds of thousands of users, and a create costs it more agent CPU than it costs an
        # agent serving the mysql app alone (a tenth to a fifth, on this machine). So the
        # comparison with direct INSERTs runs on an agent of its own (same build, same MariaDB
        # and table); the shared agent's pair is reported beside it, with both CPU figures.
        # This machine's speed drifts by a quarter within minutes, so one pair decides nothing
        # near the target: three pairs (direct, then the agent) at each concurrency, and the
        # median of their ratios.
        base, proc = targets["agent · mysql"]
        solo, solo_port, _ = start_agent({"mysql": apps["mysql"]}, "mysql-only")
        solo_base = f"http://127.0.0.1:{solo_port}/apps/mysql/scim/v2"
        preload(solo_base, 100, "solo")
        pairs = {c: [] for c in CONNECTIONS}
        lighter = {}
        for repeat in range(3):
            for c in CONNECTIONS:
                if repeat == 0:
                    lighter[c] = direct_insert(c, "server-ids")[0]
                d = direct_insert(c)
                pairs[c].append((d, cell(solo_base, solo, mariadb.process.pid, "create", c, f"mysql{c}solo{repeat}")))
        solo.send_signal(signal.SIGTERM)
        solo.wait(timeout=30)
        rows, medians = [], []
        for c in CONNECTIONS:
            m = results[("agent · memory", "create", c)]
            for i, ((d, db_us), a) in enumerate(pairs[c]):
                log(f"mysql create c={c} pair {i + 1}: agent {a['rps']:.0f}/s, direct {d:.0f}/s ({100 * a['rps'] / d:.1f} %)")
                rows.append(f"| {c} | {i + 1} | {a['rps']:.0f} | {d:.0f} | {100 * a['rps'] / d:.1f} % | {a['cpu_us']:.0f} / {a['db_cpu_us']:.0f} | {db_us:.0f} |")
            (d, db_us), a = direct_inserts[c], results[("agent · mysql", "create", c)]
            log(f"mysql create c={c} shared agent: agent {a['rps']:.0f}/s, direct {d:.0f}/s ({100 * a['rps'] / d:.1f} %)")
            rows.append(f"| {c} | shared agent | {a['rps']:.0f} | {d:.0f} | {100 * a['rps'] / d:.1f} % | {a['cpu_us']:.0f} / {a['db_cpu_us']:.0f} | {db_us:.0f} |")
            ratio_median = sorted(a["rps"] / d for (d, _), a in pairs[c])[len(pairs[c]) // 2]
            agent_median = sorted(a["rps"] for _, a in pairs[c])[len(pairs[c]) // 2]
            log(f"mysql create c={c}: earlier baseline {lighter[c]:.0f}/s, median agent {agent_median:.0f}/s ({100 * agent_median / lighter[c]:.1f} %)")
            medians.append(f"| {c} | **{100 * ratio_median:.1f} %** | {lighter[c]:.0f} | {100 * agent_median / lighter[c]:.1f} % | {m['rps']:.0f} |")
        # A paged import of exactly 100,000 users: the table is emptied of what the load wrote
        # (TRUNCATE: no half a million deleted rows for InnoDB to purge during the import).
        mariadb.query("TRUNCATE TABLE users")
        mariadb.query("INSERT INTO users (id, userName, givenName, familyName, email, active, created, lastModified) "
                      "SELECT UUID(), CONCAT('bulk', seq, '@example.com'), 'Bulk', CONCAT('User', seq), CONCAT('bulk', seq, '@example.com'), 1, NOW(3), NOW(3) "
                      "FROM seq_1_to_100000")
        total = mariadb.query("SELECT COUNT(*) FROM users")[0][0]
        c = Client(targets["agent · mysql"][0])
        t0, index, seen = time.time(), 1, 0
        while True:
            status, body = c.request("GET", f"/Users?startIndex={index}&count=1000")
            page = json.loads(body)
            seen += len(page["Resources"])
            index += 1000
            if index > page["totalResults"]:
                break
        imp = time.time() - t0
        # Creates with a password: the connector hashes each one (yescrypt, tens of ms of CPU
        # on purpose), all cores at once for a batch. After the import: creates still in
        # flight when wrk stops would land in its table.
        pw = cell(base, proc, mariadb.process.pid, "create_password", 16, "mysqlpw")
        pw_cores = pw["cpu_us"] * pw["rps"] / 1e6
        report.append("\n## mysql connector\n\nUsers created per second through the agent over HTTP (wrk) vs. the same parameterised INSERT "
                      "issued directly over libmariadb (`Benchmarks/direct/mysql_insert.c`, one connection per thread, autocommit), at the same "
                      "concurrency, against the same MariaDB: the connector's statement for one user, with what it binds (a time-ordered UUID, the creation "
                      "time, NULL for the unset columns) and the row it reads back (RETURNING). Three pairs per concurrency, each the direct run right "
                      "before the agent's, on an agent serving the mysql app alone. The *earlier baseline* is the lighter statement this benchmark "
                      "used before (id and times from the server, UUID() and NOW(3), nothing read back), run once per concurrency, against the median "
                      "of the agent's three runs. The row *shared agent* is the create cell of the table above (the direct run right before it): "
                      f"the agent that served every target first, its heap grown by their loads (peak RSS {results[('agent · mysql', 'create', 64)]['peak_rss_mib']:.0f} MiB). "
                      "The memory app's creates (no database at all) show the agent's own ceiling on this machine: wrk, the agent and MariaDB share its cores.\n\n"
                      "| conns | median ratio of the pairs (target ≥ 50 %) | earlier baseline INSERTs/s | median agent against it | agent · memory creates/s |\n"
                      "|---|---|---|---|---|\n" + "\n".join(medians) +
                      "\n\n| conns | pair | agent · mysql creates/s | direct INSERTs/s | ratio | CPU µs per create: agent / MariaDB | "
                      "MariaDB CPU µs per direct INSERT |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) +
                      f"\n\nCreates with a password (yescrypt hash in the connector), 16 connections: {pw['rps']:.0f}/s, "
                      f"the agent busy on {pw_cores:.2f} of the machine's {os.cpu_count()} cores, p50 {pw['p50_us']/1000:.0f} ms, errors {pw['errors']}."
                      f"\n\nPaged import of {total} users (count=1000) through the agent: {imp:.1f} s ({seen} read).")
    if slapd:
        direct = WORK / "ldap_add"
        subprocess.run(["cc", "-O2", "-o", str(direct), str(ROOT / "Benchmarks/direct/ldap_add.c"), "-lldap", "-llber", "-lpthread"], check=True)
        d = float(subprocess.run([str(direct), f"ldap://127.0.0.1:{slapd.port}", slapd.ADMIN, slapd.PASSWORD, slapd.PEOPLE, "16", str(DURATION)],
                                 capture_output=True, text=True, check=True).stdout)
        a = results[("agent · ldap", "create", 16)]["rps"]
        c = Client(targets["agent · ldap"][0])
        status, body = c.request("GET", "/Users?count=0")
        have = json.loads(body)["totalResults"]
        if have < 20000:
            preload(targets["agent · ldap"][0], 20000 - have, "ldapfill")
        t0, index, seen = time.time(), 1, 0
        while seen < 20000:
            status, body = c.request("GET", f"/Users?startIndex={index}&count=1000")
            page = json.loads(body)
            seen += len(page["Resources"])
            index += 1000
            if not page["Resources"]:
                break
        imp = time.time() - t0
        report.append(f"\n## ldap connector\n\n| measure | result |\n|---|---|\n"
                      f"| users created/s through the agent over HTTP (16 connections) | {a:.0f} |\n"
                      f"| same adds directly over libldap (16 threads) | {d:.0f} |\n"
                      f"| ratio (target ≥ 50 %) | {100 * a / d:.0f} % |\n"
                      f"| paged import of the first 20,000 users (count=1000) through the agent | {imp:.1f} s |")

    for p in (peer, bare, agent):
        p.send_signal(signal.SIGTERM)
    for p in (peer, bare, agent):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()

    report.append(remote_report)
    report.append(reload_bench())
    report.append(isolation_bench())
    report.append(observability_bench())
    report.append(relay_bench())
    report.append(import_bench())
    report.append(large_group_bench())
    report.append(native_bench())
    if mariadb:
        mariadb.destroy()
    if slapd:
        slapd.destroy()
    text = "\n".join(report) + "\n"
    (ROOT / "BENCHMARKS.md").write_text(text)
    log(text)


def reload_bench():
    """Reload latency (file renamed into place → new version answering), RSS per Swift reload,
    and failed requests while reloading."""
    apps = {"mem": {"connector": "memory", "auth": {"type": "none"}},
            "files": {"connector": "flatfile", "settings": {"directory": str(WORK / "reload")}, "auth": {"type": "none"}}}
    pdir = WORK / "reload-plugins"
    pdir.mkdir()
    for f in ("memory.so", "flatfile.so"):
        shutil.copy(PLUGINS / f, pdir / f)
    port = free_port()
    config = WORK / "reload.yaml"
    agent_config(config, apps, port)
    config.write_text(config.read_text().replace(str(PLUGINS), str(pdir)))
    agent = start([str(RELEASE / "provisioning-agent"), "serve", "--config", str(config)], env=dict(os.environ, LOG_LEVEL="warning"))
    wait_port(port, process=agent)
    health = Client(f"http://127.0.0.1:{port}")
    failures, requests_done, stop = [], [0], threading.Event()

    def load(app, worker):
        c = Client(f"http://127.0.0.1:{port}/apps/{app}/scim/v2")
        i = 0
        while not stop.is_set():
            try:
                status, body = c.request("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"r{app}-{worker}-{i}"})
                if status != 201:
                    failures.append(status)
            except Exception as e:  # noqa: BLE001
                failures.append(str(e))
            requests_done[0] += 1
            i += 1

    threads = [threading.Thread(target=load, args=(a, w)) for a in ("mem", "files") for w in range(2)]
    for t in threads:
        t.start()

    def version(app):
        return json.loads(health.request("GET", "/healthz")[1])["apps"][app].get("version")

    def publish(name, data):
        tmp = pdir / f".{name}.partial"
        tmp.write_bytes(data)
        os.rename(tmp, pdir / name)

    latencies = []
    builds = {"memory.so": [(PLUGINS / "memory.so").read_bytes(), (ROOT / "plugins-alt" / "memory.so").read_bytes()],
              "flatfile.so": [(PLUGINS / "flatfile.so").read_bytes(), (ROOT / "plugins-alt-release" / "flatfile.so").read_bytes()]}
    for i in range(1, 11):
        for name, app in (("memory.so", "mem"), ("flatfile.so", "files")):
            before = version(app)
            t0 = time.time()
            publish(name, builds[name][i % 2])
            while version(app) == before and time.time() - t0 < 10:
                time.sleep(0.002)
            latencies.append(time.time() - t0)
    # 50 distinct Swift builds (the same code with a unique trailer, so each is a new file to map).
    time.sleep(1)
    rss0 = rss_kib(agent.pid)
    base = builds["flatfile.so"][0]
    for i in range(50):
        before = json.loads(health.request("GET", "/healthz")[1])
        publish("flatfile.so", base + f"\0build-{i}".encode())
        t0 = time.time()
        while time.time() - t0 < 10:
            out = subprocess.run([str(RELEASE / "provisioning-agent"), "plugins", "--json", "--config", str(config)], capture_output=True, text=True).stdout
            serving = [p for p in json.loads(out)["plugins"] if p.get("connector") == "flatfile" and p["state"].startswith("serving")]
            if serving and serving[0]["contentHash"] != getattr(reload_bench, "last", None):
                reload_bench.last = serving[0]["contentHash"]
                break
            time.sleep(0.05)
    time.sleep(1.5)
    rss1 = rss_kib(agent.pid)
    stop.set()
    for t in threads:
        t.join()
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    latencies.sort()
    return (f"\n## Hot reload\n\n| measure | target | result |\n|---|---|---|\n"
            f"| reload latency, file renamed → new version answering (median / max of {len(latencies)}) | ≤ 500 ms | "
            f"{1000 * latencies[len(latencies) // 2]:.0f} ms / {1000 * latencies[-1]:.0f} ms |\n"
            f"| resident memory growth per Swift-plugin reload, 50 distinct builds | ≤ 2 MiB | {(rss1 - rss0) / 1024 / 50:.2f} MiB |\n"
            f"| requests failed during reloads | 0 | {len(failures)} of {requests_done[0]} |")


def isolation_bench():
    """What `isolation: process` costs: the memory connector in-process and in a child process,
    side by side in one agent (GET by id and POST create, three alternating rounds, medians of
    the ratios), and the agent's RSS growth per reload of an isolated Swift plugin."""
    apps = {"mem": {"connector": "memory", "auth": {"type": "none"}},
            "memiso": {"connector": "memory", "isolation": "process", "auth": {"type": "none"}}}
    agent, port, _ = start_agent(apps, "isolation")
    lists = {app: preload(f"http://127.0.0.1:{port}/apps/{app}/scim/v2", USERS // 4, f"iso{app}") for app in apps}
    ratios = {(scenario, c): [] for scenario in ("get_by_id", "create") for c in CONNECTIONS}
    figures = {}
    for rep in range(3):
        for scenario in ("get_by_id", "create"):
            for c in CONNECTIONS:
                rps = {}
                for app in (["mem", "memiso"] if rep % 2 == 0 else ["memiso", "mem"]):
                    listfile = lists[app][0] if scenario == "get_by_id" else f"iso{app}{c}r{rep}"
                    r = wrk(f"http://127.0.0.1:{port}/apps/{app}/scim/v2", scenario, c, listfile, seconds=max(2, DURATION // 2))
                    rps[app] = r["rps"]
                    figures.setdefault((scenario, c, app), []).append(r["rps"])
                ratios[(scenario, c)].append(rps["memiso"] / rps["mem"])
                log(f"isolation {scenario} c={c}: in-process {rps['mem']:.0f}, isolated {rps['memiso']:.0f} req/s")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    # The agent's RSS over 50 distinct builds of an isolated flatfile plugin.
    pdir = WORK / "isolated-reload-plugins"
    pdir.mkdir()
    shutil.copy(PLUGINS / "flatfile.so", pdir / "flatfile.so")
    config = WORK / "isolated-reload.yaml"
    rport = free_port()
    agent_config(config, {"files": {"connector": "flatfile", "isolation": "process", "settings": {"directory": str(WORK / "isolated-reload")},
                                    "auth": {"type": "none"}}}, rport)
    config.write_text(config.read_text().replace(str(PLUGINS), str(pdir)))
    reloading = start([str(RELEASE / "provisioning-agent"), "serve", "--config", str(config)], env=dict(os.environ, LOG_LEVEL="warning"))
    wait_port(rport, process=reloading)
    time.sleep(1)
    rss0 = rss_kib(reloading.pid)
    build = (PLUGINS / "flatfile.so").read_bytes()
    last = None
    for i in range(50):
        tmp = pdir / ".flatfile.so.partial"
        tmp.write_bytes(build + f"\0isolated-{i}".encode())
        os.rename(tmp, pdir / "flatfile.so")
        t0 = time.time()
        while time.time() - t0 < 10:
            out = subprocess.run([str(RELEASE / "provisioning-agent"), "plugins", "--json", "--config", str(config)], capture_output=True, text=True).stdout
            serving = [p for p in json.loads(out)["plugins"] if p.get("connector") == "flatfile" and p["state"] == "serving"]
            if serving and serving[0]["contentHash"] != last:
                last = serving[0]["contentHash"]
                break
            time.sleep(0.05)
    time.sleep(1.5)
    rss1 = rss_kib(reloading.pid)
    reloading.send_signal(signal.SIGTERM)
    reloading.wait(timeout=30)

    lines = ["\n## Process isolation\n",
             "The memory connector in-process (`mem`) and in a child process (`memiso`) in one agent, "
             "alternating, three rounds; the ratio is the median of the rounds' ratios.\n",
             "| measure | target | c=16 | c=64 |", "|---|---|---|---|"]
    for scenario, label in (("get_by_id", "GET by id"), ("create", "POST create")):
        cells = []
        for c in (16, 64):
            cells.append(f"{median(ratios[(scenario, c)]):.2f}× ({median(figures[(scenario, c, 'memiso')]):.0f} vs {median(figures[(scenario, c, 'mem')]):.0f} req/s)")
        lines.append(f"| {label}, isolated / in-process | ≥ 0.6× | {cells[0]} | {cells[1]} |")
    lines.append(f"| agent RSS growth per reload of an isolated Swift plugin, 50 distinct builds | ≤ 0.5 MiB | {(rss1 - rss0) / 1024 / 50:.2f} MiB | |")
    return "\n".join(lines)


def import_all(base, by):
    """Every user of an app page by page, 1,000 at a time, by startIndex or by cursor, as an IdP
    imports; (users read, distinct ids, seconds)."""
    c = Client(base)
    ids, start, cursor, began = set(), 1, "", time.perf_counter()
    read = 0
    while True:
        position = f"startIndex={start}" if by == "startIndex" else f"cursor={cursor}"
        status, body = c.request("GET", f"/Users?{position}&count=1000&attributes=userName")
        if status != 200:
            raise RuntimeError(f"import {base}: {status} {body[:200]}")
        page = json.loads(body)
        resources = page.get("Resources", [])
        read += len(resources)
        ids.update(u["id"] for u in resources)
        start += len(resources)
        if by == "cursor":
            if "nextCursor" not in page:
                break
            cursor = page["nextCursor"]
        elif not resources or start > page["totalResults"]:
            break
    return read, len(ids), time.perf_counter() - began


def timed_imports(target, agent, port, prefix, sizes):
    """Each app `{prefix}{n}` imported by startIndex and by cursor; the rows of the table. Stops the agent."""
    rows, rss_before = [], rss_kib(agent.pid)
    for by in ("startIndex", "cursor"):
        times = {}
        for n in sizes:
            read, distinct, seconds = import_all(f"http://127.0.0.1:{port}/apps/{prefix}{n}/scim/v2", by)
            assert read == distinct == n, (by, n, read, distinct)
            times[n] = seconds
            log(f"import {target} {n} by {by}: {seconds:.1f} s")
        rows.append([target, by, sizes, times])
    peak = rss_kib(agent.pid, "VmHWM")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    return [row + [rss_before, peak] for row in rows]


def import_bench():
    """Imports at full size: a mysql table of 250,000 and 1,000,000 users and a directory of
    50,000 and 200,000, each read through the agent by startIndex and by cursor, 1,000 a page;
    the durations, their ratio (4× the users), and the agent's peak resident memory."""
    rows = []
    mariadb = MariaDB() if shutil.which("mariadbd") else None
    if mariadb:
        sizes = [250_000, 1_000_000]
        apps = {}
        for n in sizes:
            database = f"import_{n}"
            mariadb.root_sql(f"DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
                             f"GRANT ALL ON {database}.* TO '{mariadb.USER}'@'%';")
            apps[f"m{n}"] = {"connector": "mysql", "settings": mariadb.settings(database=database, createSchema=True), "auth": {"type": "none"}}
        agent, port, _ = start_agent(apps, "import-mysql")
        for n in sizes:
            Client(f"http://127.0.0.1:{port}/apps/m{n}/scim/v2").request("GET", "/Users?count=0")  # the connector makes the table
            mariadb.root_sql(f"INSERT INTO import_{n}.users (id, userName, active, created, lastModified) "
                             f"SELECT CONCAT('u-', LPAD(seq, 12, '0')), CONCAT('scale.', seq), 1, NOW(3), NOW(3) FROM import_{n}.seq_1_to_{n}")
        rows += timed_imports("mysql", agent, port, "m", sizes)
        mariadb.destroy()
    if Path("/usr/sbin/slapd").exists():
        slapd = Slapd(maxsize=4 << 30)
        sizes = [50_000, 200_000]
        ldif = []
        for n in sizes:
            ou = f"ou=p{n},{slapd.SUFFIX}"
            ldif.append(f"dn: {ou}\nobjectClass: organizationalUnit\nou: p{n}\n\n")
            ldif += [f"dn: uid=u{n}-{i},{ou}\nobjectClass: inetOrgPerson\nuid: u{n}-{i}\ncn: U\nsn: S{i}\nmail: u{i}@example.com\n\n" for i in range(n)]
        slapd.bulk_add("".join(ldif))
        apps = {f"l{n}": {"connector": "ldap", "settings": slapd.settings(usersDN=f"ou=p{n},{slapd.SUFFIX}"), "auth": {"type": "none"}} for n in sizes}
        agent, port, _ = start_agent(apps, "import-ldap")
        rows += timed_imports("ldap", agent, port, "l", sizes)
        slapd.destroy()
    lines = ["\n## Imports at scale\n",
             "Every user read through the agent, 1,000 a page, by `startIndex` and by RFC 9865 cursor (release build); "
             "the agent's resident memory before the imports and its peak (VmHWM) after all of them.\n",
             "| target | paged by | smaller | larger (4×) | larger / smaller | agent RSS before → peak |", "|---|---|---|---|---|---|"]
    for target, by, sizes, times, before, peak in rows:
        lines.append(f"| {target} | {by} | {sizes[0]:,} users: {times[sizes[0]]:.1f} s | {sizes[1]:,} users: {times[sizes[1]]:.1f} s | "
                     f"{times[sizes[1]] / times[sizes[0]]:.2f}× | {before / 1024:.0f} → {peak / 1024:.0f} MiB |")
    return "\n".join(lines)


def large_group_bench():
    """A group of 100,000 members beside one of 10, on the memory, mysql and ldap connectors:
    GET with and without members, one member added and removed by PATCH, a list of groups
    without members; medians of 5, and the agent's peak resident memory."""
    members_n = 100_000
    patch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    mariadb = MariaDB() if shutil.which("mariadbd") else None
    slapd = Slapd(maxsize=4 << 30) if Path("/usr/sbin/slapd").exists() else None
    apps = {"mem": {"connector": "memory", "auth": {"type": "none"}}}
    if mariadb:
        apps["mysql"] = {"connector": "mysql", "settings": mariadb.settings(createSchema=True), "auth": {"type": "none"}}
    if slapd:
        ldif = [f"dn: uid=m{i},{slapd.PEOPLE}\nobjectClass: inetOrgPerson\nuid: m{i}\ncn: M\nsn: S\n\n" for i in range(members_n)]
        ldif.append(f"dn: cn=large,{slapd.GROUPS}\nobjectClass: groupOfNames\ncn: large\n" + "".join(f"member: uid=m{i},{slapd.PEOPLE}\n" for i in range(members_n)) + "\n")
        ldif.append(f"dn: cn=small,{slapd.GROUPS}\nobjectClass: groupOfNames\ncn: small\n" + "".join(f"member: uid=m{i},{slapd.PEOPLE}\n" for i in range(10)) + "\n")
        slapd.bulk_add("".join(ldif))
        apps["ldap"] = {"connector": "ldap", "settings": slapd.settings(), "auth": {"type": "none"}}
    agent, port, config = start_agent(apps, "groups")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    config.write_text(config.read_text().replace("maxBodySize: 1048576", "maxBodySize: 67108864"))
    agent = start([str(RELEASE / "provisioning-agent"), "serve", "--config", str(config)], env=dict(os.environ, LOG_LEVEL="warning"))
    wait_port(port, process=agent)
    rows = []

    def timed(c, method, path, body=None, repeat=5):
        times, size = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            status, out = c.request(method, path, body)
            times.append(time.perf_counter() - t0)
            if status not in (200, 204):
                raise RuntimeError(f"{method} {path}: {status} {out[:200]}")
            size = len(out)
        return sorted(times)[len(times) // 2], size

    for app in apps:
        c = Client(f"http://127.0.0.1:{port}/apps/{app}/scim/v2")
        if app == "mysql":
            Client(f"http://127.0.0.1:{port}/apps/mysql/scim/v2").request("GET", "/Users?count=0")
            mariadb.query("INSERT INTO users (id, userName, active, created, lastModified) "
                          f"SELECT CONCAT('m-', LPAD(seq, 9, '0')), CONCAT('m', seq), 1, NOW(3), NOW(3) FROM seq_1_to_{members_n}")
            ids = [f"m-{i:09d}" for i in range(1, members_n + 1)]
        elif app == "ldap":
            ids = []  # the directory's groups were loaded with slapadd
        else:
            ids = preload_ids(c, members_n)
        if app == "ldap":
            _, body = c.request("GET", "/Groups?excludedAttributes=members")
            groups = {g["displayName"]: g["id"] for g in json.loads(body)["Resources"]}
        else:
            groups = {}
            for name, n in (("large", members_n), ("small", 10)):
                status, body = c.request("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
                                                             "members": [{"value": i} for i in ids[:n]]})
                if status != 201:
                    raise RuntimeError(f"{app} group {name}: {status} {body[:200]}")
                groups[name] = json.loads(body)["id"]
        # A user in neither group, added to each and removed again.
        status, body = c.request("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "outsider"})
        outsider = json.loads(body)["id"]
        for name in ("large", "small"):
            gid = groups[name]
            get_all, size = timed(c, "GET", f"/Groups/{gid}")
            get_bare, _ = timed(c, "GET", f"/Groups/{gid}?excludedAttributes=members")
            add, _ = timed(c, "PATCH", f"/Groups/{gid}", {"schemas": [patch], "Operations": [{"op": "add", "path": "members", "value": [{"value": outsider}]}]}, repeat=1)
            remove, _ = timed(c, "PATCH", f"/Groups/{gid}", {"schemas": [patch], "Operations": [{"op": "remove", "path": f'members[value eq "{outsider}"]'}]}, repeat=1)
            rows.append((app, name, get_all, size, get_bare, add, remove))
            log(f"groups {app} {name}: GET {get_all * 1000:.1f} ms ({size} B), without members {get_bare * 1000:.1f} ms, add {add * 1000:.1f} ms, remove {remove * 1000:.1f} ms")
        lst, _ = timed(c, "GET", "/Groups?excludedAttributes=members")
        rows.append((app, "list", lst, 0, 0, 0, 0))
    peak = rss_kib(agent.pid, "VmHWM")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    if mariadb:
        mariadb.destroy()
    if slapd:
        slapd.destroy()
    lines = ["\n## Large groups\n",
             f"A group of {members_n:,} members beside one of 10 (release build), medians of 5 (PATCH: one of each); "
             "`PATCH` adds one member then removes it (answered 204, the group not read). The agent's peak resident memory over all of it: "
             f"{peak / 1024:.0f} MiB.\n",
             "| connector | group | GET | its size | GET excludedAttributes=members | PATCH add one | PATCH remove one |", "|---|---|---|---|---|---|---|"]
    for app, name, get_all, size, get_bare, add, remove in rows:
        if name == "list":
            lines.append(f"| {app} | list of both, members excluded | {get_all * 1000:.1f} ms | | | | |")
        else:
            lines.append(f"| {app} | {name} | {get_all * 1000:.1f} ms | {size / 1e6:.2f} MB | {get_bare * 1000:.1f} ms | {add * 1000:.1f} ms | {remove * 1000:.1f} ms |")
    return "\n".join(lines)


def native_bench():
    """The native connector against the library it binds: the legacy HR example's add and get
    called directly from C (Benchmarks/native_direct.c) and as SCIM creates and GETs through
    the agent over HTTP, on one connection, the same number of employees in a fresh data
    directory each time; three alternating rounds, medians."""
    n, example = 300, ROOT / "Examples" / "legacy-hr"
    driver = WORK / "native_direct"
    subprocess.run(["cc", "-O2", "-std=c11", f"-I{example}", str(ROOT / "Benchmarks" / "native_direct.c"), "-o", str(driver),
                    f"-L{example}", "-lhrapi", f"-Wl,-rpath,{example}"], check=True)
    apps = {f"hr{r}": {"connector": "native", "settings": {"manifest": str(example / "hrapi.yaml"), "directory": str(WORK / f"native-agent-{r}")},
                       "auth": {"type": "none"}} for r in range(3)}
    agent, port, _ = start_agent(apps, "native")
    direct, through = {"add": [], "get": []}, {"add": [], "get": []}
    for r in range(3):
        def via_c():
            out = json.loads(subprocess.run([str(driver), str(WORK / f"native-direct-{r}"), str(n)], check=True, capture_output=True, text=True).stdout)
            direct["add"].append(out["add"])
            direct["get"].append(out["get"])

        def via_agent():
            c = Client(f"http://127.0.0.1:{port}/apps/hr{r}/scim/v2")
            adds, gets, ids = [], [], []
            for i in range(n):
                t0 = time.perf_counter()
                status, body = c.request("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"agent{i}",
                                                             "name": {"givenName": "Given", "familyName": "Family"}, "emails": [{"value": "x@example.com"}]})
                adds.append((time.perf_counter() - t0) * 1e6)
                if status != 201:
                    raise RuntimeError(f"native create: {status} {body[:200]}")
                ids.append(json.loads(body)["id"])
            for i in ids:
                t0 = time.perf_counter()
                status, _ = c.request("GET", f"/Users/{i}")
                gets.append((time.perf_counter() - t0) * 1e6)
            through["add"].append(sorted(adds)[n // 2])
            through["get"].append(sorted(gets)[n // 2])
        for step in ((via_c, via_agent) if r % 2 == 0 else (via_agent, via_c)):
            step()
        log(f"native round {r}: direct add {direct['add'][-1]:.0f} µs get {direct['get'][-1]:.0f} µs; "
            f"through the agent create {through['add'][-1]:.0f} µs get {through['get'][-1]:.0f} µs")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)

    def median(values):
        return sorted(values)[len(values) // 2]
    lines = ["\n## Native connector (a C library bound by manifest)\n",
             f"The legacy HR example (`Examples/legacy-hr`): {n} employees added then read back, called directly from C and as SCIM "
             "creates and GETs through the agent over HTTP (one connection, release build); medians of each run, median of 3 alternating runs. "
             "The library rewrites and fsyncs its file on every add and reads it on every call, so its own cost is in both columns.\n",
             "| operation | C, direct | through the agent | agent / direct |", "|---|---|---|---|"]
    for op, label in (("add", "create (direct: hr_add_employee; the agent also calls hr_get_employee for the reply)"), ("get", "get (hr_get_employee)")):
        d, t = median(direct[op]), median(through[op])
        lines.append(f"| {label} | {d:.0f} µs | {t:.0f} µs | {t / d:.2f}× |")
    return "\n".join(lines)


def preload_ids(c, n):
    """n users created through the agent; their ids."""
    def create(i):
        status, body = c.request("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"member{i}"})
        if status != 201:
            raise RuntimeError(f"preload: {status} {body[:200]}")
        return json.loads(body)["id"]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        return list(ex.map(create, range(n)))


def relay_bench():
    """What the relay adds: one agent serving a memory app on its own listener and over an uplink
    to a relay on the same machine (plain HTTP on loopback both ways, so TLS is not in the
    difference), the same requests sent directly and through the relay, alternating, five rounds.
    Latency at one connection (p50, p99: the medians of the rounds), throughput at 16 and 64."""
    relay_port, token = free_port(), "bench-token-0123456789abcdef"
    relay_config = WORK / "relay.yaml"
    relay_config.write_text(json.dumps({
        "relay": {"listen": f"127.0.0.1:{relay_port}", "agents": [{"name": "bench", "token": token}]},
        "apps": {"mem": {"auth": {"type": "none"}}}}))
    env = dict(os.environ, LOG_LEVEL="warning")
    relay = start([str(RELEASE / "provisioning-agent"), "relay", "--config", str(relay_config)], env=env)
    wait_port(relay_port, process=relay)
    agent, port, config = start_agent({"mem": {"connector": "memory", "auth": {"type": "none"}}}, "relayed")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    config.write_text(config.read_text().replace("plugins:", f"uplink: {json.dumps({'url': f'http://localhost:{relay_port}', 'name': 'bench', 'token': token})}\nplugins:", 1))
    agent = start([str(RELEASE / "provisioning-agent"), "serve", "--config", str(config)], env=env)
    wait_port(port, process=agent)
    deadline = time.time() + 20
    while time.time() < deadline:
        listing = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{relay_port}/agents").read())["agents"]
        if any(c["state"] == "serving" for c in listing):
            break
        time.sleep(0.1)
    bases = {"direct": f"http://127.0.0.1:{port}/apps/mem/scim/v2", "relay": f"http://127.0.0.1:{relay_port}/apps/mem/scim/v2"}
    ids, _ = preload(bases["direct"], USERS // 4, "relayed")
    figures = {}
    for rep in range(5):
        for side in (["direct", "relay"] if rep % 2 == 0 else ["relay", "direct"]):
            for c in (1, 16, 64):
                r = wrk(bases[side], "get_by_id", c, ids, seconds=max(2, DURATION // 4))
                figures.setdefault((side, c), []).append(r)
            r = wrk(bases[side], "create", 16, f"relayed{side}{rep}", seconds=max(2, DURATION // 4))
            figures.setdefault((side, "create"), []).append(r)
        log(f"relay round {rep}: GET c=16 direct {figures[('direct', 16)][-1]['rps']:.0f}, relay {figures[('relay', 16)][-1]['rps']:.0f} req/s")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    relay.send_signal(signal.SIGTERM)
    relay.wait(timeout=30)

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    def med(side, c, key):
        return median([r[key] for r in figures[(side, c)]])

    lines = ["\n## Relay\n",
             "One agent with a memory app, reached on its own listener and through a relay on the same machine "
             "over its uplink (plain HTTP on loopback both ways), alternating, five rounds of "
             f"{max(2, DURATION // 4)} s cells; medians of the rounds.\n",
             "| measure | direct | through the relay | relay / direct |", "|---|---|---|---|"]
    for key, label in (("p50_us", "GET by id latency p50, 1 connection"), ("p99_us", "GET by id latency p99, 1 connection")):
        d, r = med("direct", 1, key), med("relay", 1, key)
        lines.append(f"| {label} | {d} µs | {r} µs (+{r - d} µs) | {r / max(d, 1):.2f}× |")
    for c in (16, 64):
        d, r = med("direct", c, "rps"), med("relay", c, "rps")
        lines.append(f"| GET by id throughput, {c} connections | {d:.0f} req/s | {r:.0f} req/s | {r / d:.2f}× |")
    d, r = med("direct", "create", "rps"), med("relay", "create", "rps")
    lines.append(f"| POST create throughput, 16 connections | {d:.0f} req/s | {r:.0f} req/s | {r / d:.2f}× |")
    return "\n".join(lines)


def observability_bench():
    """What metrics and the audit log cost: a memory app on three agents (neither; metrics;
    an audit log and no metrics), side by side at 16 connections (GET by id, POST create),
    nine rounds of 2 s cells in alternating order; the median of each round's ratio to the plain agent."""
    apps = {"mem": {"connector": "memory", "auth": {"type": "none"}}}
    sides = ["plain", "metrics", "audit"]
    agents, ports = {}, {}
    for side in sides:
        port = free_port()
        config = WORK / f"obs-{side}.yaml"
        agent_config(config, apps, port)
        text = config.read_text()
        if side != "metrics":
            text = text.replace("server:\n", "server:\n  metrics: false\n", 1)
        if side == "audit":
            text = f"audit: {{ file: {WORK / 'audit.log'}, maxSizeMiB: 100, keep: 2 }}\n" + text
        config.write_text(text)
        agents[side] = start([str(RELEASE / "provisioning-agent"), "serve", "--config", str(config)], env=dict(os.environ, LOG_LEVEL="warning"))
        wait_port(port, process=agents[side])
        ports[side] = port
    lists = {side: preload(f"http://127.0.0.1:{port}/apps/mem/scim/v2", USERS // 4, f"obs{side}") for side, port in ports.items()}
    ratios = {(side, scenario): [] for side in ("metrics", "audit") for scenario in ("get_by_id", "create")}
    costs = {key: [] for key in ratios}  # the agent's CPU time per request, over the plain agent's
    for rep in range(9):
        for scenario in ("get_by_id", "create"):
            order = sides if rep % 2 == 0 else list(reversed(sides))
            rps, cpu = {}, {}
            for side in order:
                listfile = lists[side][0] if scenario == "get_by_id" else f"obs{side}r{rep}"
                before = cpu_seconds(agents[side].pid)
                r = wrk(f"http://127.0.0.1:{ports[side]}/apps/mem/scim/v2", scenario, 16, listfile, seconds=2)
                rps[side], cpu[side] = r["rps"], (cpu_seconds(agents[side].pid) - before) / r["requests"]
            for side in ("metrics", "audit"):
                ratios[(side, scenario)].append(rps[side] / rps["plain"])
                costs[(side, scenario)].append(cpu[side] / cpu["plain"])
            log(f"observability {scenario} c=16: " + ", ".join(f"{k} {v:.0f}" for k, v in rps.items()) + " req/s")
    for p in agents.values():
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    lines = (WORK / "audit.log").read_text().count("\n")

    def median(values):
        return sorted(values)[len(values) // 2]

    return ("\n## Metrics and audit log\n\nA memory app on three agents: neither (`server.metrics: false`), metrics (the default), "
            f"an audit log without metrics; side by side at 16 connections, nine rounds of 2 s cells in alternating order, the median of each "
            f"round's ratio to the plain agent. The audit log got {lines} lines. Throughput is what a client sees; the agent's "
            "CPU time per request (from /proc, user and system) is the cost itself, less shaken by the machine.\n\n"
            "| measure | target | GET by id | POST create | CPU per request, GET | CPU per request, POST |\n|---|---|---|---|---|---|\n"
            f"| with metrics / without | ≥ 0.95× | {median(ratios[('metrics', 'get_by_id')]):.2f}× | {median(ratios[('metrics', 'create')]):.2f}× "
            f"| {median(costs[('metrics', 'get_by_id')]):.2f}× | {median(costs[('metrics', 'create')]):.2f}× |\n"
            f"| with an audit log / without (writes are audited, reads are not) | ≥ 0.90× on writes | {median(ratios[('audit', 'get_by_id')]):.2f}× "
            f"| {median(ratios[('audit', 'create')]):.2f}× | {median(costs[('audit', 'get_by_id')]):.2f}× | {median(costs[('audit', 'create')]):.2f}× |")

if __name__ == "__main__":
    try:
        main()
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(WORK, ignore_errors=True)
