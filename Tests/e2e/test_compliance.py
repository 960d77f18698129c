"""The third-party RFC 7643/7644 compliance suite (scim2-tester, via scim2-cli)."""
import subprocess
import sys
from pathlib import Path

import pytest

SCIM2 = Path(sys.executable).parent / "scim2"


@pytest.mark.parametrize("app,header", [("mem", None), ("files", "Authorization: Bearer s3cret")])
def test_scim2_tester_passes(make_agent, app, header):
    apps = {
        "mem": {"connector": "memory", "auth": {"type": "none"}},
        "files": {"connector": "flatfile", "settings": {"directory": "data/files"},
                  "auth": {"type": "header", "name": "Authorization", "value": "Bearer s3cret"}},
    }
    a = make_agent(apps).start()
    cmd = [str(SCIM2), "--url", a.base(app)]
    if header:
        cmd += ["--header", header]
    r = subprocess.run(cmd + ["test"], capture_output=True, text=True, timeout=600)
    failures = [l for l in r.stdout.splitlines() if l.startswith(("ERROR", "CRITICAL"))]
    assert r.returncode == 0 and not failures, r.stdout[-4000:]
    assert r.stdout.count("SUCCESS") > 100
