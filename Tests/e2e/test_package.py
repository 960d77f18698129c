"""The Debian package, end to end on this machine: built by scripts/make-deb.sh from the debug
build (`make deb` packages the release build the same way), installed with dpkg -i, run the
way its systemd unit runs it (its user, environment file, runtime directory, command line;
under systemd itself where one runs), provisioned through, reloaded with SIGHUP, upgraded
keeping an edited configuration, removed (data kept) and purged (data gone)."""
import configparser
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import AGENT, PLUGINS, ROOT, free_port, wait_for

PKG = "provisioning-agent"
UNIT = Path("/lib/systemd/system/provisioning-agent.service")
CONF = Path("/etc/provisioning-agent/agent.yaml")
ENVFILE = Path("/etc/provisioning-agent/environment")
STATE = Path("/var/lib/provisioning-agent")
LOGS = Path("/var/log/provisioning-agent")


def dpkg(*args):
    return subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def installed_version():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", PKG], capture_output=True, text=True)
    return r.stdout.split()[-1] if r.returncode == 0 and "install ok installed" in r.stdout else None


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if installed_version() is not None:
        pytest.fail(f"{PKG} is already installed on this machine: the test installs and purges it; remove it first")
    out = tmp_path_factory.mktemp("deb")
    made = []
    for version in ("0.1.0~test1", "0.1.0~test2"):
        r = subprocess.run(["bash", "scripts/make-deb.sh", str(AGENT.parent), str(PLUGINS)], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, env={**os.environ, "DEB_VERSION": version, "DEB_DIR": str(out), "DEB_COMPRESSION": "none"})
        assert r.returncode == 0, r.stderr
        made.append(Path(r.stdout.strip()))
    yield made
    if installed_version() is not None or Path("/etc/provisioning-agent").exists():
        dpkg("--purge", PKG)


class UnitRun:
    """The installed unit's service, started as systemd would start it: its User and Group,
    its EnvironmentFile, its RuntimeDirectory, its ExecStart; SIGHUP for ExecReload."""

    def __init__(self):
        unit = configparser.ConfigParser(interpolation=None, strict=False)
        unit.optionxform = str
        unit.read(UNIT)
        self.service = unit["Service"]
        self.process = None

    def environment(self):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        path = self.service["EnvironmentFile"].lstrip("-")
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    k, _, v = line.partition("=")
                    env[k.strip()] = v.strip()
        return env

    def start(self, port):
        user, group = self.service["User"], self.service["Group"]
        runtime = Path("/run") / self.service["RuntimeDirectory"]
        runtime.mkdir(exist_ok=True)
        shutil.chown(runtime, user, group)
        os.chmod(runtime, int(self.service["RuntimeDirectoryMode"], 8))
        self.log = open("/tmp/provisioning-agent-package-test.log", "ab")
        self.process = subprocess.Popen(
            ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", "--no-new-privs", *self.service["ExecStart"].split()],
            cwd="/", env=self.environment(), stdout=self.log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/readyz"

        def ready():
            assert self.process.poll() is None, Path("/tmp/provisioning-agent-package-test.log").read_text()[-3000:]
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.ConnectionError:
                return False
        assert wait_for(ready, seconds=30)

    def reload(self):
        assert self.service["ExecReload"] == "/bin/kill -HUP $MAINPID"
        self.process.send_signal(signal.SIGHUP)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        assert self.process.returncode == 0, Path("/tmp/provisioning-agent-package-test.log").read_text()[-3000:]


def stored():
    """The flat-file app's users as stored: its CSV and the journal not yet folded into it."""
    return "".join((STATE / "demo" / f).read_text() for f in ("users.csv", "users.journal") if (STATE / "demo" / f).exists())


def owner(path):
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def test_install_run_as_the_unit_upgrade_keeping_the_config_remove_and_purge(debs):
    first, second = debs
    r = dpkg("-i", str(first))
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed_version() == "0.1.0~test1"

    # What the package put where, with owners and modes an admin would check.
    assert os.access("/usr/bin/provisioning-agent", os.X_OK)
    for p in ("memory", "flatfile", "mysql", "ldap", "native"):
        assert owner(Path(f"/usr/lib/provisioning-agent/plugins/{p}.so")) == ("root", "root", 0o644)
    assert Path("/usr/include/scim_connector.h").read_text().count("scim_connector") > 0
    assert Path("/usr/share/doc/provisioning-agent/README.md").read_text().startswith("# provisioning-agent")
    assert owner(CONF) == ("root", PKG, 0o640)
    assert owner(ENVFILE) == ("root", PKG, 0o640)
    password = re.search(r"^DEMO_SCIM_PASSWORD=(\w{24,})$", ENVFILE.read_text(), re.M).group(1)
    account = pwd.getpwnam(PKG)
    assert account.pw_uid < 1000 and account.pw_shell.endswith("nologin")
    assert owner(STATE) == (PKG, PKG, 0o750) and owner(LOGS) == (PKG, PKG, 0o750)
    # The installed binary finds the Swift runtime the package ships, not a toolchain's.
    ldd = subprocess.run(["ldd", "/usr/bin/provisioning-agent"], capture_output=True, text=True).stdout
    assert "/usr/lib/provisioning-agent/swift/libswiftCore.so" in ldd and "not found" not in ldd

    # The unit: hardened, reloadable, restarted on failure; systemd's own check accepts it.
    unit = UNIT.read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "Restart=on-failure",
                 "ReadWritePaths=/var/lib/provisioning-agent /var/log/provisioning-agent", "User=provisioning-agent"):
        assert line in unit.splitlines(), line
    if shutil.which("systemd-analyze"):
        v = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
        assert v.returncode == 0 and "provisioning-agent.service" not in v.stderr, v.stderr

    # The admin edits the configuration: another port, a second app.
    port = free_port()
    edited = CONF.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}") + "  # edited by the admin\n"
    CONF.write_text(edited)
    base = f"http://127.0.0.1:{port}/apps/demo/scim/v2"
    auth = ("okta", password)
    headers = {"Content-Type": "application/scim+json"}

    service = UnitRun()
    service.start(port)
    try:
        r = requests.post(base + "/Users", json={"userName": "packaged.user", "password": "never-logged-1"}, auth=auth, headers=headers, timeout=10)
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        assert requests.get(base + "/Users/" + user_id, auth=auth, timeout=10).json()["userName"] == "packaged.user"
        assert requests.get(base + "/Users", auth=("okta", "wrong"), timeout=10).status_code == 401
        # Stored where the configuration says, by the service user; audited without the password.
        assert "packaged.user" in stored() and owner(STATE / "demo" / "users.csv")[0] == PKG
        audit = (LOGS / "audit.log").read_text()
        assert '"operation":"create"' in audit and "packaged.user" in audit and "never-logged-1" not in audit
        # The admin's commands, as root, find the running service's state.
        plugins = subprocess.run(["/usr/bin/provisioning-agent", "plugins", "--config", str(CONF)], capture_output=True, text=True, timeout=60)
        assert "Plugins (running agent)" in plugins.stdout and "flatfile 1.0.0  [serving]" in plugins.stdout, plugins.stdout + plugins.stderr
        check = subprocess.run(["/usr/bin/provisioning-agent", "check", "--config", str(CONF)], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "DEMO_SCIM_PASSWORD": password})
        assert check.returncode == 0 and "✓ demo" in check.stdout and "readable by other users" not in check.stdout, check.stdout + check.stderr
        page = requests.get(f"http://127.0.0.1:{port}/status", timeout=10)
        assert page.status_code == 200 and 'id="app-demo" class="green"' in page.text, re.search(r'<tr id="app-demo".*', page.text).group(0)

        # ExecReload: SIGHUP applies an added app without a restart.
        CONF.write_text(CONF.read_text() + "  lab:\n    connector: memory\n    auth: { type: none }\n")
        service.reload()
        lab = f"http://127.0.0.1:{port}/apps/lab/scim/v2/Users"
        assert wait_for(lambda: requests.get(lab, timeout=5).status_code == 200, seconds=10)
    finally:
        service.stop()

    # Upgrade: the edited configuration, the secret and the data are kept.
    kept = CONF.read_text()
    secrets = ENVFILE.read_text()
    r = dpkg("-i", str(second))
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed_version() == "0.1.0~test2"
    assert CONF.read_text() == kept and "# edited by the admin" in kept
    assert ENVFILE.read_text() == secrets
    service = UnitRun()
    service.start(port)
    try:
        r = requests.get(base + "/Users", params={"filter": 'userName eq "packaged.user"'}, auth=auth, timeout=10)
        assert r.json()["totalResults"] == 1
    finally:
        service.stop()

    # Remove: the program goes, the data, the audit log and the configuration stay.
    r = dpkg("-r", PKG)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not Path("/usr/bin/provisioning-agent").exists() and not UNIT.exists()
    assert not Path("/usr/lib/provisioning-agent/plugins/flatfile.so").exists()
    assert "packaged.user" in stored()
    assert (LOGS / "audit.log").exists() and CONF.read_text() == kept

    # Purge: everything of it goes.
    r = dpkg("--purge", PKG)
    assert r.returncode == 0, r.stdout + r.stderr
    for gone in (CONF, ENVFILE, STATE, LOGS):
        assert not gone.exists(), gone
    assert installed_version() is None
