"""Hostile keys, sandboxed: every store, sync and async, and the zarr 3 adapter.

Tests run as root on the project's machines, and a key-guard bug would turn
``store["/etc/passwd"] = b"x"`` into a write to ``/etc/passwd`` and ``rmdir("/..")``
into ``shutil.rmtree`` of the root's parent. So the tests that feed such keys, in
``tests/sandboxed/``, run only in a subprocess where everything outside one work
directory is read-only (``tests/sandboxed/sandbox_runner.py``): directly, if a
probe finds the tests already run so (a read-only container), else under
``tools/sandbox.sh``. Started any other way they skip. These tests start them,
require that they all ran and passed with no escape, and add their counts to the
stress tally.

Scale: 20 hypothesis keys per store and side, plus the fixed ones (``hostile.EXPLICIT_KEYS``);
300 with ``AIOSTORE_STRESS=full``. The zarr 3 bodies need a Python with zarr 3:
this one, or ``$AIOSTORE_ZARR3_PYTHON``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from stress_tally import TALLY

SANDBOXED = pathlib.Path(__file__).resolve().parent.parent / "sandboxed"
sys.path.insert(0, str(SANDBOXED))
import sandbox_runner  # noqa: E402

CORE_BODIES = SANDBOXED / "test_hostile_bodies.py"
ZARR3_BODIES = SANDBOXED / "test_zarr3_hostile_bodies.py"


def check(run: sandbox_runner.Run) -> None:
    if not run.unavailable:
        TALLY.add(keys_checked=run.calls, escapes=run.escapes)
    run.check()


def test_hostile_keys_against_every_store() -> None:
    check(sandbox_runner.run_bodies(sys.executable, [CORE_BODIES]))


def zarr3_python() -> str | None:
    """This Python if it has zarr 3, else ``$AIOSTORE_ZARR3_PYTHON`` if that has it."""
    for python in (sys.executable, os.environ.get("AIOSTORE_ZARR3_PYTHON")):
        if (
            python
            and subprocess.run(
                [python, "-c", "import sys, zarr; sys.exit(int(zarr.__version__.split('.')[0]) < 3)"],
                capture_output=True,
            ).returncode
            == 0
        ):
            return python
    return None


def test_hostile_keys_against_the_zarr3_adapter() -> None:
    python = zarr3_python()
    if python is None:
        pytest.skip("zarr 3 is not importable here; set AIOSTORE_ZARR3_PYTHON to a Python that has it")
    check(sandbox_runner.run_bodies(python, [ZARR3_BODIES]))


def test_the_bodies_run_only_where_the_probe_finds_a_sandbox() -> None:
    # Started directly -- not under tools/sandbox.sh -- with the runner's variable set.
    # The variable alone is not enough: the bodies run only if everything outside the
    # work directory is read-only, and that is probed, not assumed. On a normal machine
    # they skip; in a read-only container (or inside tools/sandbox.sh) they run and pass.
    env = sandbox_runner.body_env()
    sandboxed, verdict = sandbox_runner.probe(sys.executable, env)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(CORE_BODIES),
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "-k",
            "the_sandbox_is_read_only or the_canaries_notice_a_read",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    summary = sandbox_runner.Run("direct", proc.returncode, output).summary
    assert proc.returncode == 0, output
    if sandboxed:
        assert " passed" in summary and "skipped" not in summary and "failed" not in summary, (
            verdict,
            output,
        )
    else:
        assert "skipped" in summary and "passed" not in summary and "failed" not in summary, (verdict, output)
        assert verdict.removeprefix("not sandboxed: ") in output, output  # the skip says why
