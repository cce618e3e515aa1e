"""Start the hostile-key bodies where they may run, and read what they report.

Used by tests/stress/test_hostile_keys_sandboxed.py (and, for the zarr 3
adapter, tests/zarr3/test_zarr3_hostile_keys.py). The bodies run in a subprocess,
with ``AIOSTORE_SANDBOX=1``, in one of two places, chosen by probing
(:mod:`sandbox_probe`), never by assuming:

- *here*, if everything outside the work directory is already read-only -- the
  tests run in a read-only container, or inside ``tools/sandbox.sh`` already;
- else under ``tools/sandbox.sh``, a private mount namespace where it is made so.
  If no namespace can be made (exit 77: not root, no ``unshare``), the caller skips.

The bodies print one line ``HOSTILE keys=N calls=N refusals=N escapes=N``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
SANDBOX = REPO / "tools" / "sandbox.sh"
PROBE = HERE / "sandbox_probe.py"
NO_SANDBOX = 77  # tools/sandbox.sh: no mount namespace can be made here
_LINE = re.compile(r"^HOSTILE keys=(\d+) calls=(\d+) refusals=(\d+) escapes=(\d+)\s*$", re.MULTILINE)


@dataclasses.dataclass
class Run:
    where: str  # "already read-only" or "tools/sandbox.sh"
    returncode: int
    output: str
    keys: int = 0
    calls: int = 0
    refusals: int = 0
    escapes: int = 0

    @property
    def unavailable(self) -> bool:
        return self.where == "tools/sandbox.sh" and self.returncode == NO_SANDBOX

    @property
    def line(self) -> str:
        return (
            f"{self.where}: HOSTILE keys={self.keys} calls={self.calls} "
            f"refusals={self.refusals} escapes={self.escapes}"
        )

    @property
    def tail(self) -> str:
        """The end of the output (hypothesis' keys can make it long)."""
        return self.output if len(self.output) < 20000 else "...\n" + self.output[-20000:]

    def check(self) -> None:
        """Skip where no sandbox can be made; else every body ran and passed, no escape."""
        import pytest

        if self.unavailable:
            pytest.skip(f"no read-only sandbox can be made here: {self.output.strip()[-500:]}")
        print(self.line)
        assert self.escapes == 0, self.tail
        assert self.returncode == 0, self.tail
        assert self.calls > 0 and self.refusals > 0, self.tail
        summary = self.summary
        assert " passed" in summary and "skipped" not in summary and "failed" not in summary, self.tail

    @property
    def summary(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        finals = [line for line in lines if re.search(r"\d+ (passed|failed|skipped|error)", line)]
        return finals[-1] if finals else (lines[-1] if lines else "")


def body_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "AIOSTORE_SANDBOX": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def probe(python: str, env: dict[str, str]) -> tuple[bool, str]:
    """The probe's verdict in a process like the bodies' own: (sandboxed, what it says)."""
    proc = subprocess.run([python, str(PROBE)], capture_output=True, text=True, env=env, timeout=60)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def run_bodies(python: str, bodies: list[pathlib.Path], *pytest_args: str, timeout: float = 1800) -> Run:
    """Run ``bodies`` with ``python -m pytest`` where hostile keys are safe; parse the counts."""
    env = body_env()
    command = [
        python,
        "-m",
        "pytest",
        *map(str, bodies),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        *pytest_args,
    ]
    sandboxed, _verdict = probe(python, env)
    if sandboxed:
        where = "already read-only"
    else:
        where = "tools/sandbox.sh"
        env.pop("AIOSTORE_SANDBOX_WORK", None)  # the sandbox makes its own
        command = [str(SANDBOX), *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    run = Run(where, proc.returncode, proc.stdout + proc.stderr)
    found = _LINE.findall(proc.stdout)
    if found:
        run.keys, run.calls, run.refusals, run.escapes = map(int, found[-1])
    return run
