"""Fixtures for the object-store fault tests: moto's S3 server, a misbehaving proxy, limits.

* ``moto_server``: moto's S3 server, one per session, shared by the tests that
  do not stop it (each takes a fresh ``bucket``);
* ``own_moto``: a server of the test's own, which the test may stop;
* ``proxy``: a :class:`faultproxy.FaultProxy` in front of ``moto_server``;
* ``request_limit``: restores aiostore's network limit after the test;
* a hang guard: a test still running after ``HANG_GUARD`` seconds dumps every
  thread's stack and ends the run, instead of hanging it.

The servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from faultproxy import FaultProxy

from aiostore._runtime.offload import set_thread_limit, thread_limit

#: Seconds a test of this folder may run before the run is ended with every stack dumped.
HANG_GUARD = 120


def _moto() -> Any:
    try:
        from servers import MotoS3
    except ImportError as exc:  # moto[server] missing
        pytest.skip(
            f"the object-store fault tests need moto's server mode: pip install 'moto[server]' ({exc})"
        )
    return MotoS3


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_GUARD, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    server = _moto()()
    yield server
    server.stop()


@pytest.fixture
def own_moto() -> Iterator[Any]:
    """A moto server for this test alone (it may stop it; stopped again, harmlessly, after)."""
    server = _moto()()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server: Any) -> str:
    return str(moto_server.bucket())


@pytest.fixture
def proxy(moto_server: Any) -> Iterator[FaultProxy]:
    server = FaultProxy(moto_server.port)
    yield server
    server.stop()


@pytest.fixture
def request_limit() -> Iterator[None]:
    """Lets the test change ``aiostore.set_request_limit``; the old limit is back after it."""
    before = thread_limit("network")
    yield
    set_thread_limit("network", before)
