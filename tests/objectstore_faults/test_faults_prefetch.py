"""``LRUStoreCache(ObjectStore(...))`` with ``prefetch(keys)``: every key fetched once.

The proxy counts the GETs each object receives. After ``prefetch(keys)`` the
reads -- made at once (they join the fetches under way, or fetch keys still
queued themselves) or after the prefetch finished (from memory) -- return the
data, and each key was fetched from the server exactly once: the store's request
count equals the key count. From async code (asyncio and trio) and from the
sync twin.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
import pytest
from faultproxy import FaultProxy

import aiostore
import aiostore.sync

pytestmark = pytest.mark.anyio

DATA = {f"pre/{i}": os.urandom(100 + i) for i in range(80)}
TOTAL = sum(map(len, DATA.values()))


def through_proxy(proxy: FaultProxy, moto_server: Any, bucket: str) -> aiostore.ObjectStore:
    aiostore.sync.ObjectStore(moto_server.url(bucket), **moto_server.options()).setitems(DATA)
    return aiostore.ObjectStore(moto_server.url(bucket), **proxy.options(moto_server.options()))


def fetched_once(proxy: FaultProxy, bucket: str) -> None:
    gets = proxy.gets_by_path()
    assert sum(gets.values()) == len(DATA), f"{sum(gets.values())} GETs for {len(DATA)} keys"
    assert gets == {f"/{bucket}/{key}": 1 for key in DATA}


async def test_prefetch_then_read_at_once(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    cache = aiostore.LRUStoreCache(through_proxy(proxy, moto_server, bucket), max_size=None)
    proxy.latency = 0.005  # the reads below find fetches under way
    proxy.reset()
    assert cache.prefetch(list(DATA)) == len(DATA)
    with anyio.fail_after(60):
        assert await cache.get_many(list(DATA)) == DATA
        assert await cache.get("pre/7") == DATA["pre/7"]
    fetched_once(proxy, bucket)
    await cache.aclose()


async def test_prefetch_then_read_from_memory(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    cache = aiostore.LRUStoreCache(through_proxy(proxy, moto_server, bucket), max_size=None)
    proxy.reset()
    assert cache.prefetch(list(DATA)) == len(DATA)
    with anyio.fail_after(60):
        while cache.current_size < TOTAL:  # noqa: ASYNC110 - polling a counter: no event to wait on
            await anyio.sleep(0.01)
    fetched_once(proxy, bucket)
    hits = cache.hits
    with anyio.fail_after(60):
        assert await cache.get_many(list(DATA)) == DATA
    assert cache.hits == hits + len(DATA) and cache.misses == 0
    fetched_once(proxy, bucket)  # no request more
    assert cache.prefetch(list(DATA)) == 0  # all held: nothing queued
    await cache.aclose()


def test_sync_twin_prefetch(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    cache = aiostore.sync.LRUStoreCache(through_proxy(proxy, moto_server, bucket), max_size=None)
    proxy.latency = 0.005
    proxy.reset()
    assert cache.prefetch(list(DATA)) == len(DATA)
    assert cache.getitems(list(DATA)) == DATA  # at once: joins or fetches
    fetched_once(proxy, bucket)
    assert cache["pre/3"] == DATA["pre/3"]
    fetched_once(proxy, bucket)
    cache.close()


def test_sync_twin_prefetch_then_read_from_memory(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    cache = aiostore.sync.LRUStoreCache(through_proxy(proxy, moto_server, bucket), max_size=None)
    proxy.reset()
    assert cache.prefetch(list(DATA)) == len(DATA)
    deadline = time.monotonic() + 60
    while cache.async_store.current_size < TOTAL:
        assert time.monotonic() < deadline, "the prefetch never finished"
        time.sleep(0.01)
    fetched_once(proxy, bucket)
    assert cache.getitems(list(DATA)) == DATA
    assert cache.async_store.misses == 0
    fetched_once(proxy, bucket)
    cache.close()
