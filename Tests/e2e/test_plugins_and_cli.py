"""Loading plugins that are not connectors, the CLI, and configuration errors."""
import json
import subprocess

import requests

from conftest import AGENT, STANDARD_APPS

NO_ENTRY_C = b"int not_a_connector(void) { return 42; }\n"


def shared_object_without_entry(tmp_path):
    src = tmp_path / "noentry.c"
    src.write_bytes(NO_ENTRY_C)
    out = tmp_path / "noentry.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(out)], check=True)
    return out.read_bytes()


def test_bad_plugins_are_reported_and_the_agent_keeps_serving(make_agent, tmp_path):
    a = make_agent(STANDARD_APPS, extra_plugins={
        "x.so": b"this is not a shared object at all",
        "noentry.so": shared_object_without_entry(tmp_path),
    }).start()
    assert requests.get(a.base("mem") + "/Users", auth=("okta", "change-me")).status_code == 200
    out = json.loads(a.cli("plugins", "--json").stdout)
    assert out["source"] == "running agent"
    by_file = {p["file"].rsplit("/", 1)[1]: p for p in out["plugins"]}
    assert by_file["x.so"]["state"] == "failed" and "not a shared object" in by_file["x.so"]["lastError"]
    assert by_file["noentry.so"]["state"] == "failed" and "scimc_connector_entry" in by_file["noentry.so"]["lastError"]
    assert by_file["memory.so"]["state"] == "serving" and by_file["memory.so"]["connector"] == "memory"
    assert by_file["flatfile.so"]["state"] == "serving" and by_file["flatfile.so"]["generation"] >= 1
    # Without a running agent, `plugins` scans the directory itself.
    a.stop()
    out = json.loads(a.cli("plugins", "--json").stdout)
    assert "scan" in out["source"]
    assert {p["file"].rsplit("/", 1)[1]: p["state"] for p in out["plugins"]}["x.so"] == "failed"


def test_check_prints_capabilities_and_fails_for_a_broken_app(make_agent):
    a = make_agent(STANDARD_APPS)
    r = a.cli("check", "--json")
    report = json.loads(r.stdout)
    assert r.returncode == 0 and report["ok"] is True
    mem = next(x for x in report["apps"] if x["app"] == "mem")
    assert "GROUP_PUSH" in mem["capabilities"]["userManagementCapabilities"]
    text = a.cli("check", "--app", "files").stdout
    assert "files (flatfile)" in text and "Okta capabilities:" in text
    a.write_config({**STANDARD_APPS, "broken": {"connector": "flatfile", "settings": {}, "auth": {"type": "none"}}})
    r = a.cli("check", "--json", check=False)
    assert r.returncode != 0
    broken = next(x for x in json.loads(r.stdout)["apps"] if x["app"] == "broken")
    assert broken["ok"] is False and "settings.directory" in broken["error"]


def test_invalid_configuration_names_file_and_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  listen: nowhere\n  colour: blue\napps:\n  hr:\n    connector: flatfile\n    auth: { type: magic }\n")
    r = subprocess.run([str(AGENT), "serve", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{config}: server.listen" in r.stderr
    assert f"{config}: server.colour: unknown key" in r.stderr
    assert f"{config}: apps.hr.auth.type" in r.stderr


def test_secrets_from_the_environment(make_agent, monkeypatch):
    apps = {"mem": {"connector": "memory", "auth": {"type": "basic", "username": "okta", "password": "${AGENT_TEST_SECRET}"}}}
    a = make_agent(apps)
    r = a.cli("check", check=False)
    assert r.returncode == 2 and "AGENT_TEST_SECRET is not set" in r.stderr
    monkeypatch.setenv("AGENT_TEST_SECRET", "from-env")
    a.start()
    assert requests.get(a.base("mem") + "/Users", auth=("okta", "from-env")).status_code == 200


def test_version():
    r = subprocess.run([str(AGENT), "version"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("provisioning-agent ")
