"""Hostile keys through the zarr 3 adapter, in a read-only sandbox (zarr3 session).

Runs tests/sandboxed/test_zarr3_hostile_bodies.py with this Python (which has
zarr 3) the way tests/stress/test_hostile_keys_sandboxed.py runs the core
bodies: where everything outside one work directory is read-only -- directly if
the tests already run so, else under tools/sandbox.sh -- and skips only where no
such sandbox can be made.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

SANDBOXED = pathlib.Path(__file__).resolve().parent.parent / "sandboxed"
sys.path.insert(0, str(SANDBOXED))
import sandbox_runner  # noqa: E402


def test_hostile_keys_through_zarr_store() -> None:
    pytest.importorskip("zarr", minversion="3")
    run = sandbox_runner.run_bodies(sys.executable, [SANDBOXED / "test_zarr3_hostile_bodies.py"])
    run.check()
