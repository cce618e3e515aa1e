"""Hostile keys (absolute paths, ``..``, NUL ...) against the directory stores, in a sandbox.

Tests run as root on the project's machines, and a key-guard bug would turn
``store["/etc/passwd"] = b"x"`` into a write to ``/etc/passwd`` and ``rmdir("/..")``
into ``shutil.rmtree`` of the root's parent. So the tests that feed such keys,
``tests/sandboxed/test_hostile_bodies.py``, run only in a subprocess under
``tools/sandbox.sh``: a private mount namespace where everything but one fresh work
directory is read-only. Outside it they skip; this test starts them there and
requires that they all ran and passed.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SANDBOX = REPO / "tools" / "sandbox.sh"
BODIES = REPO / "tests" / "sandboxed" / "test_hostile_bodies.py"
NO_SANDBOX = 77  # tools/sandbox.sh: no mount namespace can be made here


@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="the sandbox needs unshare (util-linux)")
def test_hostile_keys_inside_the_read_only_sandbox() -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("AIOSTORE_SANDBOX", None)
    proc = subprocess.run(
        [str(SANDBOX), sys.executable, "-m", "pytest", str(BODIES), "-p", "no:cacheprovider", "-q", "-rfEs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode == NO_SANDBOX:
        pytest.skip(f"no read-only sandbox can be made here: {proc.stderr.strip()}")
    assert proc.returncode == 0, output
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, output


def test_the_bodies_skip_outside_the_sandbox() -> None:
    # The sandbox's variable alone is not enough: "/" must also be read-only.
    env = {**os.environ, "AIOSTORE_SANDBOX": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(BODIES), "-p", "no:cacheprovider", "-q", "-rs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" in summary and "passed" not in summary and "failed" not in summary, proc.stdout
