"""How requests run: obstore's async API under asyncio, its blocking API in threads under
trio, concurrently from the sync twin, and never more at once than the network limit.

* asyncio: a ``get_many`` of 50 keys awaits ``obstore.get_async`` 50 times in the
  event loop's thread and makes no thread hop (``anyio.to_thread.run_sync`` and
  the loop's ``run_in_executor`` are replaced by functions that fail);
* trio: the same call runs the blocking ``obstore.get`` 50 times in worker threads
  (never the test's thread), in at most as many threads as the network limit;
* the sync twin's ``getitems`` of 1,000 keys runs its requests concurrently: the
  proxy (adding 50 ms a request) holds more than one at once, never more than
  the network limit, and the whole takes well under 1,000 x 50 ms;
* ``aiostore.set_request_limit(4)``: a ``get_many`` of 40 keys never has more than
  4 requests in flight, counted at the proxy and around obstore's calls.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import obstore
import pytest
from faultproxy import FaultProxy

import aiostore
import aiostore.sync
from aiostore._runtime.offload import thread_limit

pytestmark = pytest.mark.anyio


class Calls:
    """Counts calls of obstore functions: how many, in which threads, how many at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.threads: set[int] = set()
        self.active = 0
        self.max_active = 0

    def enter(self) -> None:
        with self._lock:
            self.count += 1
            self.threads.add(threading.get_ident())
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def wrap_sync(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()

        return wrapper

    def wrap_async(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.enter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.leave()

        return wrapper


def forbidden(what: str, violations: list[str]) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        violations.append(what)
        raise AssertionError(f"{what} was called")

    return fail


DATA = {f"d/{i}": f"value {i}".encode() * (i + 1) for i in range(50)}


async def test_get_many_dispatch(
    anyio_backend: str, moto_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, request_limit: None
) -> None:
    store = aiostore.ObjectStore(moto_server.url(bucket), **moto_server.options())
    await store.set_many(DATA)
    test_thread = threading.get_ident()
    violations: list[str] = []
    if anyio_backend == "asyncio":
        calls = Calls()
        monkeypatch.setattr(obstore, "get_async", calls.wrap_async(obstore.get_async))
        monkeypatch.setattr(obstore, "get", forbidden("obstore.get (blocking) under asyncio", violations))
        monkeypatch.setattr(anyio.to_thread, "run_sync", forbidden("anyio.to_thread.run_sync", violations))
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "run_in_executor", forbidden("loop.run_in_executor", violations))
        assert await store.get_many(list(DATA)) == DATA
        assert violations == []
        assert calls.count == len(DATA)
        assert calls.threads == {test_thread}  # awaited in the event loop's thread
        assert calls.max_active > 1  # and concurrently
    else:
        aiostore.set_request_limit(2)
        calls, hops = Calls(), Calls()
        monkeypatch.setattr(obstore, "get", calls.wrap_sync(obstore.get))
        monkeypatch.setattr(obstore, "get_async", forbidden("obstore.get_async under trio", violations))
        monkeypatch.setattr(anyio.to_thread, "run_sync", hops.wrap_async(anyio.to_thread.run_sync))
        assert await store.get_many(list(DATA)) == DATA
        assert violations == []
        assert calls.count == len(DATA)
        assert test_thread not in calls.threads  # worker threads only
        assert 1 <= len(calls.threads) <= 2  # no more threads than the network limit
        assert calls.max_active <= 2
        assert 1 <= hops.count <= 2  # the batch split over at most 2 hops, not 50


def test_sync_getitems_is_concurrent(
    proxy: FaultProxy, moto_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"many/{i}" for i in range(1000)]
    data = {key: key.encode() for key in keys}
    aiostore.sync.ObjectStore(moto_server.url(bucket), **moto_server.options()).setitems(data)
    twin = aiostore.sync.ObjectStore(moto_server.url(bucket), **proxy.options(moto_server.options()))
    calls = Calls()
    monkeypatch.setattr(obstore, "get_async", calls.wrap_async(obstore.get_async))
    proxy.latency = 0.05
    proxy.reset()
    start = time.monotonic()
    found = twin.getitems(keys)
    elapsed = time.monotonic() - start
    assert found == data
    assert proxy.count("GET") == len(keys) and calls.count == len(keys)
    limit = thread_limit("network")
    assert 1 < proxy.max_in_flight <= limit, proxy.max_in_flight
    assert 1 < calls.max_active <= limit, calls.max_active
    serial = len(keys) * proxy.latency  # 50 s, one request after another
    assert elapsed < serial / 2, f"{elapsed:.1f}s for 1,000 requests of 50 ms: not concurrent"


async def test_request_limit_bounds_get_many(
    proxy: FaultProxy, moto_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, request_limit: None
) -> None:
    data = {f"b/{i}": bytes([i]) * 100 for i in range(40)}
    await aiostore.ObjectStore(moto_server.url(bucket), **moto_server.options()).set_many(data)
    store = aiostore.ObjectStore(moto_server.url(bucket), **proxy.options(moto_server.options()))
    aiostore.set_request_limit(4)
    calls = Calls()
    monkeypatch.setattr(obstore, "get_async", calls.wrap_async(obstore.get_async))
    monkeypatch.setattr(obstore, "get", calls.wrap_sync(obstore.get))
    proxy.latency = 0.03
    proxy.reset()
    with anyio.fail_after(60):
        assert await store.get_many(list(data)) == data
    assert proxy.count("GET") == len(data) and calls.count == len(data)
    assert 1 < proxy.max_in_flight <= 4, proxy.max_in_flight
    assert calls.max_active <= 4, calls.max_active


def test_request_limit_bounds_sync_getitems(
    proxy: FaultProxy, moto_server: Any, bucket: str, request_limit: None
) -> None:
    data = {f"s/{i}": bytes([i]) * 10 for i in range(40)}
    aiostore.sync.ObjectStore(moto_server.url(bucket), **moto_server.options()).setitems(data)
    twin = aiostore.sync.ObjectStore(moto_server.url(bucket), **proxy.options(moto_server.options()))
    aiostore.set_request_limit(4)
    proxy.latency = 0.03
    proxy.reset()
    assert twin.getitems(list(data)) == data
    assert proxy.count("GET") == len(data)
    assert 1 < proxy.max_in_flight <= 4, proxy.max_in_flight
