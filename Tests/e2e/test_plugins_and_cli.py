"""Loading plugins that are not connectors, the CLI, and configuration errors."""
import json
import subprocess

import requests

from conftest import AGENT, ROOT, STANDARD_APPS

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


# A connector in C, built here against include/scim_connector.h. BATCH selects create_many
# (ABI 1.1) with scripted replies; without it, an ABI 1.0 plugin: its users table ends before
# create_many, and the word in memory right after it is not NULL (a reader that ignored
# struct_size would call it).
ABI_PLUGIN_C = r"""
#include <stddef.h>
#include <string.h>
#include "scim_connector.h"
static const scimc_host *host;
static int dummy;
static scimc_status open_(const scimc_host *h, scimc_call *call, const char *app, scimc_buf s, scimc_instance **out) {
    host = h; *out = (scimc_instance *)&dummy; return SCIMC_OK;
}
static void close_(scimc_instance *i) {}
static int has(scimc_buf b, const char *word) { return memmem(b.ptr, b.len, word, strlen(word)) != NULL; }
#ifdef BATCH
static scimc_status create_many(scimc_instance *i, scimc_call *call, scimc_buf resources) {
    const char *reply =
        has(resources, "wrongcount") ? "[]" :
        has(resources, "noresource") ? "[{\"neither\":1}]" :
        has(resources, "taken") ? "[{\"status\":409,\"scimType\":\"uniqueness\",\"detail\":\"userName taken is in use\"}]" :
        "[{\"resource\":{\"id\":\"b-1\",\"userName\":\"fine\"}}]";
    if (has(resources, "whole")) { host->fail(call, NULL, "the batch statement failed", 26); return 503; }
    host->emit(call, reply, strlen(reply));
    return SCIMC_OK;
}
static const scimc_resource_ops users = { .struct_size = sizeof(scimc_resource_ops), .create_many = create_many };
#define USERS (&users)
#define NAME "batchy"
#define MINOR 1
#else
static scimc_status create(scimc_instance *i, scimc_call *call, scimc_buf resource) {
    const char *r = "{\"id\":\"o-1\",\"userName\":\"old\"}";
    host->emit(call, r, strlen(r));
    return SCIMC_OK;
}
static const struct { scimc_resource_ops ops; void *after; } users_1_0 = {
    { .struct_size = offsetof(scimc_resource_ops, create_many), .create = create }, (void *)1 };
#define USERS (&users_1_0.ops)
#define NAME "oldabi"
#define MINOR 0
#endif
static const scimc_connector descriptor = {
    .struct_size = sizeof(scimc_connector), .abi_major = SCIMC_ABI_MAJOR, .abi_minor = MINOR,
    .name = NAME, .version = "1", .flags = SCIMC_FLAG_CONCURRENT | SCIMC_FLAG_UNLOADABLE,
    .open = open_, .close = close_, .users = USERS,
};
__attribute__((visibility("default"))) const scimc_connector *scimc_connector_entry(void) { return &descriptor; }
"""


def abi_plugin(tmp_path, name, *defines):
    src = tmp_path / f"{name}.c"
    src.write_text(ABI_PLUGIN_C)
    out = tmp_path / f"{name}.so"
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-shared", "-fPIC", f"-I{ROOT / 'include'}", *defines, str(src), "-o", str(out)], check=True)
    return out.read_bytes()


def test_abi_1_0_plugins_load_and_create_many_replies_are_checked(make_agent, tmp_path):
    a = make_agent({
        "old": {"connector": "oldabi", "auth": {"type": "none"}},
        "batch": {"connector": "batchy", "auth": {"type": "none"}},
    }, extra_plugins={"oldabi.so": abi_plugin(tmp_path, "oldabi"), "batchy.so": abi_plugin(tmp_path, "batchy", "-DBATCH")}).start()

    def create(app, user_name):
        return requests.post(a.base(app) + "/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name})

    # ABI 1.0: the fields past its struct_size are not read; its create is used.
    r = create("old", "old")
    assert r.status_code == 201 and r.json()["id"] == "o-1"
    # create_many alone makes the users creatable.
    r = create("batch", "fine")
    assert r.status_code == 201 and r.json()["id"] == "b-1"
    r = create("batch", "taken")
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness" and "in use" in r.json()["detail"]
    r = create("batch", "whole")
    assert r.status_code == 503 and r.json()["detail"] == "the batch statement failed"
    r = create("batch", "wrongcount")
    assert r.status_code == 502 and "0 outcomes for 1 resources" in r.json()["detail"]
    r = create("batch", "noresource")
    assert r.status_code == 502 and "neither a resource nor an error status" in r.json()["detail"]
    caps = json.loads(a.cli("check", "--json").stdout)
    batch = next(x for x in caps["apps"] if x["app"] == "batch")
    assert "PUSH_NEW_USERS" in batch["capabilities"]["userManagementCapabilities"]
