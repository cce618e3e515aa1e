"""Test, lint, docs and benchmark sessions. ``nox`` with no arguments runs what CI runs."""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "zarr2", "zarr3", "docs"]

TEST_DEPS = [
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "trio>=0.26",
    "hypothesis>=6.100",
    "obstore>=0.6",
    "moto[server]>=5",
    "dask[distributed]",  # tests/stress writes through every store from a process cluster
    # the `aiostore` command and `aiostore serve` (the cli and serve extras), and HTTP clients
    "click>=8.1",
    "rich>=13",
    "starlette>=0.37",
    "uvicorn>=0.30",
    "hypercorn>=0.17",
    "httpx",
    "fsspec",
    "aiohttp",
    "requests",
]
ZARR2_DEPS = ["zarr==2.18.7", "numcodecs<0.16", "msgpack"]
# docs/griffe_aiostore.py uses griffe's API directly, so griffe is pinned too.
DOCS_DEPS = [
    "mkdocs>=1.6.1,<2",
    "mkdocstrings[python]>=1.0.8,<2",
    "mkdocstrings-python>=2.0.11,<3",
    "griffelib>=2.4,<3",
    "ruff",  # mkdocstrings formats the separate signatures with it
]


def _python312() -> str:
    """zarr >= 3.2 needs Python >= 3.12: use pyenv's 3.12 if there is one."""
    for candidate in ("python3.12",):
        path = shutil.which(candidate)
        if path and subprocess.run([path, "-V"], capture_output=True).returncode == 0:
            return path
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.path.expanduser("~/.pyenv")
    versions = os.path.join(root, "versions")
    if os.path.isdir(versions):
        for name in sorted(os.listdir(versions), reverse=True):
            exe = os.path.join(versions, name, "bin", "python")
            if name.startswith("3.12") and os.path.exists(exe):
                return exe
    return "python3"


@nox.session
def tests(session: nox.Session) -> None:
    """The core suite (no zarr): every store, asyncio and trio, doctests.

    tests/objectstore starts its servers itself: moto (a test dependency) and
    Azurite, which it installs with npm into .nox/azurite/. Where Node.js is
    missing those tests skip, except under CI, where a skip would hide it.
    """
    session.install("-e", ".", *TEST_DEPS)
    session.run(
        "pytest",
        "tests",
        "--ignore=tests/zarr2",
        "--ignore=tests/zarr3",
        "--doctest-modules",
        "aiostore",
        "--ignore=aiostore/zarr3",
        *session.posargs,
        env={"AIOSTORE_REQUIRE_SERVERS": "1"} if os.environ.get("CI") else {},
    )


@nox.session
def zarr2(session: nox.Session) -> None:
    """The sync stores under zarr 2.18: its own store suites and the seed's examples."""
    session.install("-e", ".", *TEST_DEPS, *ZARR2_DEPS, "dask[array,distributed]")
    session.run("pytest", "tests/zarr2", *session.posargs)


@nox.session(python=_python312())
def zarr3(session: nox.Session) -> None:
    """The zarr 3 adapter under the newest zarr 3, with zarr's own StoreTests and its doctests."""
    session.install("-e", ".", *TEST_DEPS, "zarr>=3,<4", "xarray", "dask[array,distributed]")
    session.run("pytest", "tests/zarr3", "--doctest-modules", "aiostore/zarr3", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """The stress suite at full scale: hundreds of SIGKILLed writers per store, many
    processes and threads, cancellations, injected faults, hostile keys in the
    read-only sandbox. Prints one summary line (kills, keys checked, processes,
    cancellations, faults; torn values, lost writes, escapes).

    CI runs the same tests at a bounded scale, inside the ``tests`` session.
    ``AIOSTORE_STRESS_SEED`` replays a run; extra arguments go to pytest.
    """
    session.install("-e", ".", *TEST_DEPS)
    session.run(
        "pytest",
        "tests/stress",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AIOSTORE_STRESS": "full"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    paths = ["aiostore", "tests", "benchmarks", "examples", "docs", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[serve]", "mypy", "trio", "pytest>=8", "obstore>=0.6", "httpx")
    session.run("mypy", "--strict", "aiostore", "tests/typing")


@nox.session
def docs(session: nox.Session) -> None:
    """The API reference (mkdocs + mkdocstrings) into site/; any warning fails the build.

    griffe reads the package's source without importing it, so zarr is not needed
    for aiostore.zarr3's page. Extra arguments go to ``mkdocs build``.
    """
    session.install("-e", ".", *DOCS_DEPS)
    session.run("mkdocs", "build", "--strict", "--clean", "--config-file", "mkdocs.yml", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script; writes nothing, prints the tables for RESULTS.md.

    zarr 2 and zarr 3 cannot share a Python, so the scripts run their zarr 3 rows
    under $AIOSTORE_BENCH_ZARR3_PYTHON: the one given, else a venv made here.
    """
    session.install(
        "-e", ".", *ZARR2_DEPS, "tensorstore", "aiofiles", "obstore>=0.6", "moto[server]>=5", "s3fs"
    )
    env = {
        "AIOSTORE_BENCH_ZARR3_PYTHON": os.environ.get("AIOSTORE_BENCH_ZARR3_PYTHON", ""),
        # This session's Python has zarr 2: bench_before_after's zarr 2 rows run under it.
        "AIOSTORE_BENCH_ZARR2_PYTHON": os.path.join(session.virtualenv.location, "bin", "python"),
    }
    if not env["AIOSTORE_BENCH_ZARR3_PYTHON"]:
        venv = os.path.abspath(os.path.join(".nox", "bench-zarr3"))
        python = os.path.join(venv, "bin", "python")
        if not os.path.exists(python):
            session.run(_python312(), "-m", "venv", venv, external=True)
        session.run(
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "-e",
            ".",
            "zarr>=3",
            "obstore>=0.6",
            "moto[server]>=5",
            "s3fs",
            external=True,
        )
        env["AIOSTORE_BENCH_ZARR3_PYTHON"] = python
    for script in sorted(os.listdir("benchmarks")):
        if script.startswith("bench_") and script.endswith(".py"):
            session.run("python", os.path.join("benchmarks", script), *session.posargs, env=env)
