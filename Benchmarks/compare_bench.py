"""Throughput of every target and scenario: this code against the agent and plugins of
BENCH_BASE (built by `make bench-compare` under .build-base), side by side in one run on the
same servers. Writes its section of BENCHMARKS.md.

Each cell is a 10 s wrk run at 16 connections: GET by id, filter by userName, PATCH replace
`title` with a new value (so every request writes), POST create; the before and after agents
take turns (the order alternating), BENCH_COMPARE_PAIRS pairs per cell (PATCH: three), and the
median of the pairs' ratios is reported."""
import os
import re
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
from bench import (DURATION, PLUGINS, RELEASE, ROOT, WORK, Slapd, MariaDB, agent_config, free_port, log, preload, start,  # noqa: E402
                   wait_port, wrk)

BASE = ROOT / ".build-base"
BASE_REV = os.environ.get("BENCH_BASE", "base")
USERS = int(os.environ.get("BENCH_COMPARE_USERS", "2000"))
PAIRS = int(os.environ.get("BENCH_COMPARE_PAIRS", "1"))
PATCH_PAIRS = max(PAIRS, 3)
# BENCH_COMPARE_TARGETS=mysql,remote and BENCH_COMPARE_SCENARIOS=patch_title: only those
# (BENCHMARKS.md is then left alone).
TARGETS = [t for t in os.environ.get("BENCH_COMPARE_TARGETS", "").split(",") if t]
SCENARIOS = [s for s in os.environ.get("BENCH_COMPARE_SCENARIOS", "").split(",") if s] or ["get_by_id", "filter", "patch_title", "create"]
CONNECTIONS = 16


def start_agent(binary, plugins, apps, name):
    port = free_port()
    config = WORK / f"{name}.yaml"
    agent_config(config, apps, port)
    text = config.read_text().replace(f"directory: {PLUGINS}", f"directory: {plugins}")
    config.write_text(text)
    p = start([str(binary), "serve", "--config", str(config)], env=dict(os.environ, LOG_LEVEL="warning"))
    wait_port(port, process=p)
    return p, port


def main():
    mariadb, slapd = MariaDB(), Slapd()
    mariadb.empty_database()
    peer_port = free_port()
    peer = start([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "Benchmarks" / "scim2_server_asgi.py"), str(peer_port)])
    wait_port(peer_port, process=peer)

    def apps(tag):
        return {
            "mem": {"connector": "memory", "auth": {"type": "none"}},
            "files": {"connector": "flatfile", "settings": {"directory": str(WORK / f"files-{tag}")}, "auth": {"type": "none"}},
            "mysql": {"connector": "mysql", "settings": mariadb.settings(createSchema=True, poolSize=8), "auth": {"type": "none"}},
            "ldap": {"connector": "ldap", "settings": slapd.settings(poolSize=8), "auth": {"type": "none"}},
            "remote": {"remote": {"url": f"http://127.0.0.1:{peer_port}/v2"}, "auth": {"type": "none"}},
        }

    agents = {
        "before": start_agent(BASE / "release" / "provisioning-agent", BASE / "plugins", apps("before"), "before"),
        "after": start_agent(RELEASE / "provisioning-agent", PLUGINS, apps("after"), "after"),
    }
    # memory and flatfile data live in each agent; the database, directory and remote server
    # are shared, so both agents patch the same users there.
    lists = {}
    for app in ["mem", "files", "mysql", "ldap", "remote"]:
        if TARGETS and app not in TARGETS:
            continue
        for which, (_, port) in agents.items():
            if app in ("mysql", "ldap", "remote") and which == "after":
                lists[(app, which)] = lists[(app, "before")]
                continue
            lists[(app, which)] = preload(f"http://127.0.0.1:{port}/apps/{app}/scim/v2", USERS, f"{app}{which}")
        log(f"preloaded {USERS} users for {app}")

    rows = []
    for app, label in [("mem", "memory"), ("files", "flatfile"), ("mysql", "mysql"), ("ldap", "ldap"), ("remote", "remote (scim2-server)")]:
        if TARGETS and app not in TARGETS:
            continue
        for scenario in SCENARIOS:
            pairs = []
            for i in range(PATCH_PAIRS if scenario == "patch_title" else PAIRS):
                order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
                r = {}
                for which in order:
                    base = f"http://127.0.0.1:{agents[which][1]}/apps/{app}/scim/v2"
                    ids, names = lists[(app, which)]
                    listfile = {"get_by_id": ids, "filter": names, "patch_title": ids}.get(scenario, f"cmp-{app}-{which}-{i}")
                    r[which] = wrk(base, scenario, CONNECTIONS, listfile)
                    log(f"{label:12} {scenario:11} {which:6} pair {i + 1}: {r[which]['rps']:8.0f} req/s  p99 {r[which]['p99_us'] / 1000:7.2f} ms  errors {r[which]['errors']}")
                pairs.append(r)
            ratios = sorted(p["after"]["rps"] / p["before"]["rps"] for p in pairs)
            median = ratios[len(ratios) // 2]
            cells = " · ".join(f"{p['before']['rps']:.0f} → {p['after']['rps']:.0f}" for p in pairs)
            errors = sum(p["after"]["errors"] + p["before"]["errors"] for p in pairs)
            rows.append(f"| {label} | {scenario} | {cells} | **{100 * median:.1f} %** ({', '.join(f'{100 * x:.1f}' for x in ratios)}) | {errors} |")

    for p, _ in agents.values():
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    peer.terminate()
    mariadb.destroy()
    slapd.destroy()

    section = (f"## Against {BASE_REV}: every target and scenario\n\n"
               f"`make bench-compare`: the agent and plugins of {BASE_REV} and this code take turns on {USERS} users per target, "
               f"{CONNECTIONS} connections, {DURATION} s per cell, on the same MariaDB, slapd and scim2-server: GET by id, filter by "
               "userName, PATCH replace `title` (every request writes; three pairs) and POST create. "
               "Target: no cell below the earlier rate beyond noise.\n\n"
               "| target | scenario | req/s before → after, per pair | after / before, median (pairs) | errors |\n|---|---|---|---|---|\n"
               + "\n".join(rows) + "\n")
    print(section)
    if TARGETS or os.environ.get("BENCH_COMPARE_SCENARIOS"):
        return
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    text = re.sub(r"\n## (PATCH: atomic updates|Against) .*?(?=\n## |\Z)", "", text, flags=re.S)
    path.write_text(text.rstrip() + "\n\n" + section)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in bench.processes:
            if p.poll() is None:
                p.kill()
