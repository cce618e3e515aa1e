"""LRUStoreCache's fast paths (issue 12): warm batches, eviction off a snapshot, prefetch's start.

A warm batch takes its values out of the cache's dict and puts them back (two
C-level passes, no key gate); eviction takes its victims from a snapshot of the
least recently used keys; ``prefetch`` hands out its first batch before it
returns, and a sync reader waits for a prefetch in its own thread. These tests
hold each of them to what the slow paths did: exact LRU order, byte accounting,
counters, invalidation, and concurrent writers.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, OrderedDict
from collections.abc import Coroutine
from typing import Any, TypeVar

import anyio
import pytest
from test_cache import CountingStore, GatedStore, filled, until, wait_until, waiting

import aiostore.stores.cache.flights
from aiostore import LRUStoreCache, MemoryStore
from aiostore import sync as aiosync

T = TypeVar("T")


def order(cache: LRUStoreCache) -> list[str]:
    """The keys cached, least recently used first."""
    with cache._lock:
        return list(cache._lru.keys())


class LRUModel:
    """The cache's contents as a plain LRU of bytes would hold them (the reference)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.held: OrderedDict[str, bytes] = OrderedDict()
        self.hits = self.misses = 0

    @property
    def size(self) -> int:
        return sum(map(len, self.held.values()))

    def put(self, key: str, value: bytes) -> None:
        self.held.pop(key, None)
        if len(value) > self.max_size:
            return
        while self.size + len(value) > self.max_size:
            self.held.popitem(last=False)
        self.held[key] = value

    def read(self, keys: list[str], stored: dict[str, bytes]) -> dict[str, bytes]:
        """A batch of distinct keys: hits refreshed in order, then the misses fetched and cached."""
        found = {}
        for key in keys:
            if key in self.held:
                self.held.move_to_end(key)
                found[key] = self.held[key]
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        for key in keys:
            if key not in found and key in stored:
                found[key] = stored[key]
                self.put(key, stored[key])
        return found


@pytest.mark.anyio
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_read_and_write_keeps_exact_lru_order_and_bytes(seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(24)]
    stored = {key: bytes([i]) * rng.randint(1, 30) for i, key in enumerate(keys[:20])}  # k20+ absent
    store = MemoryStore()
    await store.set_many(stored)
    cache = LRUStoreCache(store, max_size=120)
    model = LRUModel(120)
    for step in range(600):
        op = rng.random()
        if op < 0.45:  # a batch: all hits (the fast path) or some misses (the slow path)
            batch = rng.sample(keys, rng.randint(1, 8))
            if rng.random() < 0.5:
                batch = [key for key in batch if key in model.held] or batch
            assert await cache.get_many(batch) == model.read(batch, stored), step
        elif op < 0.55:  # the sync side's batch, when every key is cached (no thread hop)
            batch = rng.sample(list(model.held), min(len(model.held), rng.randint(1, 5)))
            if batch:
                assert cache.get_many_sync(batch) == model.read(batch, stored), step
        elif op < 0.75:  # a single get
            key = rng.choice(keys)
            expected = model.read([key], stored)
            if expected:
                assert await cache.get(key) == expected[key], step
            else:
                with pytest.raises(KeyError):
                    await cache.get(key)
        elif op < 0.9:  # a write: cached as written, evicting what it must
            key = rng.choice(keys)
            value = bytes([rng.randrange(256)]) * rng.randint(1, 40)
            await cache.set(key, value)
            stored[key] = value
            model.put(key, value)
        else:  # a delete
            key = rng.choice(list(stored))
            await cache.delete(key)
            del stored[key]
            model.held.pop(key, None)
        assert order(cache) == list(model.held), step
        assert cache.current_size == model.size, step
        assert (cache.hits, cache.misses) == (model.hits, model.misses), step
    await cache.aclose()


@pytest.mark.anyio
async def test_a_warm_batch_refreshes_its_keys_in_the_order_given() -> None:
    store = await filled(5)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=40)  # four values of 10 bytes
    await cache.get_many(["k0", "k1", "k2", "k3"])
    assert await cache.get_many(["k2", "k0"]) == {"k2": b"\x02" * 10, "k0": b"\x00" * 10}
    assert order(cache) == ["k1", "k3", "k2", "k0"]
    assert (cache.hits, cache.misses) == (2, 4)
    await cache.get("k4")  # evicts k1, the least recently used
    assert order(cache) == ["k3", "k2", "k0", "k4"]
    assert cache.current_size == 40 and store.calls["get_many"] == 1


@pytest.mark.anyio
async def test_a_batch_with_a_miss_ends_as_if_it_had_taken_the_slow_path() -> None:
    store = await filled(6)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=None)
    await cache.get_many(["k0", "k1", "k2", "k3"])
    # k1 is refreshed by the fast path before it meets k5, then by the slow path again.
    found = await cache.get_many(["k1", "k5", "k0"])
    assert sorted(found) == ["k0", "k1", "k5"]
    assert order(cache) == ["k2", "k3", "k1", "k0", "k5"]
    assert (cache.hits, cache.misses) == (2, 5)
    assert store.fetched == Counter(["k0", "k1", "k2", "k3", "k5"])  # k5 alone: a single get


@pytest.mark.anyio
async def test_duplicate_and_unnormalized_keys_take_the_key_gate() -> None:
    store = await filled(2)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=None)
    await cache.get_many(["k0", "k1"])
    assert await cache.get_many(["k1", "k0", "k1"]) == {"k1": b"\x01" * 10, "k0": b"\x00" * 10}
    assert await cache.get_many(["/k0", "k1//"]) == {"k0": b"\x00" * 10, "k1": b"\x01" * 10}
    assert order(cache) == ["k0", "k1"]
    assert cache.hits == 4 and store.calls["get_many"] == 1  # no fetch: every key was cached


@pytest.mark.anyio
async def test_a_refused_batch_leaves_every_value_cached() -> None:
    store = await filled(3)
    cache = LRUStoreCache(store, max_size=None)
    await cache.get_many(["k0", "k1", "k2"])
    for bad, error in ((["k0", ["k1"]], TypeError), (["k0", "k1", "../k2"], ValueError)):
        with pytest.raises(error):
            await cache.get_many(bad)  # type: ignore[arg-type]
        with pytest.raises(error):
            cache.get_many_sync(bad)  # type: ignore[arg-type]
        assert sorted(order(cache)) == ["k0", "k1", "k2"] and cache.current_size == 30
    assert await cache.get_many(["k2", "k1", "k0"]) == {f"k{i}": bytes([i]) * 10 for i in (2, 1, 0)}


@pytest.mark.anyio
async def test_invalidation_between_warm_batches_makes_them_misses() -> None:
    store = await filled(3)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=None)
    keys = ["k0", "k1", "k2"]
    await cache.get_many(keys)
    await cache.get_many(keys)
    cache.invalidate_values()
    assert order(cache) == [] and cache.current_size == 0
    assert await cache.get_many(keys) == {k: bytes([i]) * 10 for i, k in enumerate(keys)}
    assert (cache.hits, cache.misses) == (3, 6)
    assert store.fetched == Counter({"k0": 2, "k1": 2, "k2": 2})


@pytest.mark.anyio
async def test_eviction_off_the_snapshot_after_many_warm_batches_stays_exact() -> None:
    # Warm batches leave the dict full of holes; streaming new values then evicts
    # the least recently used, in order, whatever the holes and the snapshot.
    store = MemoryStore()
    await store.set_many({f"k{i}": b"x" * 10 for i in range(3000)})
    cache = LRUStoreCache(store, max_size=10 * 500)
    model = LRUModel(10 * 500)
    rng = random.Random(7)
    stored = {f"k{i}": b"x" * 10 for i in range(3000)}
    first = [f"k{i}" for i in range(500)]
    assert len(await cache.get_many(first)) == 500
    model.read(first, stored)
    for _ in range(20):  # warm batches in random orders
        batch = rng.sample(first, 400)
        await cache.get_many(batch)
        model.read(batch, stored)
    for start in range(500, 3000, 50):  # then a stream of misses, with a few hits between
        batch = [f"k{i}" for i in range(start, start + 50)]
        await cache.get_many(batch)
        model.read(batch, stored)
        hit = rng.sample(list(model.held), 5)
        await cache.get_many(hit)
        model.read(hit, stored)
        assert order(cache) == list(model.held)
    assert cache.current_size == model.size == 5000


def test_sync_getitems_is_keyed_as_given_and_counted() -> None:
    cache = aiosync.LRUStoreCache({f"c/{i}": bytes([i]) for i in range(100)}, max_size=None)
    keys = [f"c/{i}" for i in range(100)]
    assert cache.getitems(keys, contexts={}) == {k: bytes([i]) for i, k in enumerate(keys)}
    assert cache.getitems(keys[::-1], contexts={}) == {k: bytes([i]) for i, k in enumerate(keys)}
    assert list(cache.getitems(keys[::-1], contexts={})) == keys[::-1]
    assert (cache.hits, cache.misses) == (200, 100)
    assert cache.async_store.store.mapping["c/0"] == b"\x00"  # type: ignore[attr-defined]
    cache.close()


def test_warm_reads_and_a_writer_in_threads_agree_with_the_store() -> None:
    cache = aiosync.LRUStoreCache(dict.fromkeys([f"k{i}" for i in range(200)], b"0"), max_size=2000)
    keys = [f"k{i}" for i in range(200)]
    cache.getitems(keys, contexts={})
    stop = threading.Event()
    seen: list[dict[str, bytes]] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(cache.getitems(keys[:100], contexts={}))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for generation in range(1, 30):
        cache.setitems({key: str(generation).encode() for key in keys[generation % 3 :: 3]})
    stop.set()
    for thread in threads:
        thread.join()
    below = cache.async_store.store.mapping  # type: ignore[attr-defined]
    assert cache.getitems(keys, contexts={}) == {key: below[key] for key in keys}
    assert all(len(found) == 100 for found in seen)
    with cache.async_store._lock:
        assert cache.async_store.current_size == sum(map(len, cache.async_store._lru.values()))
    cache.close()


# -- prefetch's start ----------------------------------------------------------------


@pytest.mark.anyio
async def test_prefetch_has_its_first_batch_in_flight_when_it_returns() -> None:
    store = await filled(8, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=None, prefetch_batch_size=4)
    assert cache.prefetch([f"k{i}" for i in range(8)]) == 8
    assert all(f"k{i}" in cache._inflight for i in range(4))  # before any worker ran
    found: dict[str, bytes] = {}

    async def read() -> None:
        found["k0"] = await cache.get("k0")

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await until(lambda: waiting(cache, "k0") == 1)  # joined the prefetch: not fetched again
        store.gate.set()
    assert found == {"k0": b"\x00" * 10}
    await until(lambda: not cache._prefetcher.running)
    assert store.fetched == Counter(f"k{i}" for i in range(8))
    await cache.aclose()


@pytest.mark.anyio
async def test_a_batch_no_worker_took_is_given_up_by_close() -> None:
    store = await filled(2, store=GatedStore())
    assert isinstance(store, GatedStore)
    store.gate.set()
    cache = LRUStoreCache(store, max_size=None)
    cache._prefetcher._workers.start = lambda: None  # type: ignore[method-assign]  # no worker starts
    cache.prefetch(["k0", "k1"])
    assert "k0" in cache._inflight
    result: list[bytes] = []

    async def read() -> None:
        result.append(await cache.get("k0"))

    with anyio.fail_after(10):  # a reader left waiting for the batch would hang here
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await until(lambda: waiting(cache, "k0") == 1)
            await cache._prefetcher.stop()  # what aclose does first: the reader fetches for itself
    assert result == [b"\x00" * 10] and "k0" not in cache._inflight and "k1" not in cache._inflight
    assert store.fetched == Counter({"k0": 1})
    await cache.aclose()


def test_a_failed_start_gives_up_the_batch_it_handed_out() -> None:
    cache = LRUStoreCache({"a": b"1"}, max_size=None)

    def broken() -> None:
        raise RuntimeError("no loop")

    cache._prefetcher._workers.start = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="no loop"):
        cache.prefetch(["a"])
    assert "a" not in cache._inflight
    assert cache.get_sync("a") == b"1"


def test_a_sync_reader_waits_for_a_prefetch_in_its_own_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    hops: list[object] = []
    real = aiostore.stores.cache.flights.run_on_portal

    def counted(call: Coroutine[Any, Any, T]) -> T:
        hops.append(call)
        return real(call)

    monkeypatch.setattr(aiostore.stores.cache.flights, "run_on_portal", counted)
    store = GatedStore()
    anyio.run(store.inner.set_many, {f"k{i}": bytes([i]) for i in range(40)})
    cache = aiosync.LRUStoreCache(store, max_size=1000, prefetch_concurrency=5, prefetch_batch_size=8)
    keys = [f"k{i}" for i in range(40)]
    cache.prefetch(keys)
    wait_until(lambda: store.reads == 5)  # every key in flight, every fetch held at the gate
    threading.Timer(0.02, store.gate.set).start()
    assert [cache[key] for key in keys] == [bytes([i]) for i in range(40)]
    # Every key was waited for (or read) in this thread: no hop to the background loop,
    # no fetch of its own, and what a prefetch brought was read.
    assert hops == [] and store.fetched == Counter(keys)
    assert cache.misses >= 1 and cache.hits + cache.misses == 40
    wait_until(lambda: not cache.async_store._prefetcher.running)
    assert cache.async_store._lru.unread_bytes == 0
    cache.close()


@pytest.mark.anyio
async def test_buffers_from_the_store_behind_are_held_as_copies(tmp_path: Any) -> None:
    # LMDB's zero-copy buffers each keep their read snapshot open: a cache holding
    # them would take a reader slot per commit between misses, and run out at 126.
    from aiostore import LMDBStore

    inner = LMDBStore(str(tmp_path / "db"), max_readers=8)
    cache = LRUStoreCache(inner, max_size=None)
    for i in range(40):  # a commit between every two misses: 40 snapshots if pinned
        await inner.set(f"k{i}", b"v%d" % i)
        value = await cache.get(f"k{i}")
        assert bytes(value) == b"v%d" % i
        del value
    assert await cache.get_many([f"k{i}" for i in range(40)]) == {f"k{i}": b"v%d" % i for i in range(40)}
    many = await cache.get_many(["k0", "k1"])
    assert all(type(v) is bytes for v in many.values())
    await cache.aclose()
