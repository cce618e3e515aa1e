"""Hostile request paths against served directory and LMDB stores, in the read-only sandbox.

The bodies (tests/sandboxed/test_http_hostile_bodies.py) serve file-system stores and
send ``/../etc/passwd``, ``//etc/passwd``, ``/a/%2F..%2Fb`` and their kin as raw bytes,
with writes enabled: a gate bug would write or read outside the store as root. So
they run only where everything outside one work directory is read-only
(tests/sandboxed/sandbox_runner.py: directly in a read-only container, else under
tools/sandbox.sh); where no sandbox can be made, this test skips.
"""

from __future__ import annotations

import pathlib
import sys

SANDBOXED = pathlib.Path(__file__).resolve().parent.parent / "sandboxed"
sys.path.insert(0, str(SANDBOXED))
import sandbox_runner  # noqa: E402

BODIES = SANDBOXED / "test_http_hostile_bodies.py"


def test_hostile_paths_against_served_file_stores() -> None:
    run = sandbox_runner.run_bodies(sys.executable, [BODIES], timeout=600)
    run.check()
