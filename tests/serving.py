"""``aiostore serve`` for tests: as a subprocess (the command line, a running server), and
in this process (:func:`in_process`).

Imported by tests/http, tests/zarr2 and tests/zarr3 (``tests/`` is on ``sys.path``, as
for ``servers``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import select
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import anyio
import pytest

__all__ = ["STARTUP_SECONDS", "in_process", "running", "serve_command"]

STARTUP_SECONDS = 30
_URL = re.compile(r" at (http://\S+)$")


def serve_command() -> list[str]:
    """``aiostore serve`` as a command line: ``python -m aiostore serve`` once the command is
    in the ``aiostore`` group, else the same click command run alone."""
    try:
        group = importlib.import_module("aiostore.cli").cli
    except (ImportError, AttributeError):
        group = None
    if group is not None and "serve" in getattr(group, "commands", {}):
        return [sys.executable, "-m", "aiostore", "serve"]
    return [sys.executable, "-m", "aiostore.cli.serve"]


@contextlib.contextmanager
def running(
    *args: str, stderr: IO[Any] | int = subprocess.PIPE
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``aiostore serve ARGS --port 0``, and the URL it printed; killed if still running after.

    ``stderr`` (the request log) is a pipe by default: read it with ``communicate``
    after stopping the server, or give a file for a server that logs much.
    """
    proc = subprocess.Popen(
        [*serve_command(), *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_SECONDS)
        line = proc.stdout.readline() if ready else ""
        match = _URL.search(line.strip())
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"aiostore serve printed {line!r}, not its URL; stderr:\n{err}")
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@contextlib.asynccontextmanager
async def in_process(application: Any, **options: Any) -> AsyncIterator[str]:
    """Serve an ASGI app in this event loop (uvicorn under asyncio, hypercorn under trio) on a
    free loopback port; yields its URL, and shuts the server down on the way out."""
    import aiostore.http

    started = anyio.Event()
    stop = anyio.Event()
    urls: list[str] = []

    def ready(url: str) -> None:
        urls.append(url)
        started.set()

    options = {"port": 0, "log_level": "warning", **options}

    async def run() -> None:
        await aiostore.http.serve(application, ready=ready, stop=stop, **options)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(STARTUP_SECONDS):
            await started.wait()
        try:
            yield urls[0]
        finally:
            stop.set()
