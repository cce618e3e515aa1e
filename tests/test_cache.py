"""LRUStoreCache: byte bound, what reaches the store, single-flight, prefetch, threads."""

from __future__ import annotations

import logging
import os
import pickle
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, MutableMapping, Sequence
from typing import Any, TypeVar

import anyio
import pytest
from forking import in_forked_child

from aiostore import LRUStoreCache, MappingStore, MemoryStore, ReadOnlyError
from aiostore import sync as aiosync
from aiostore.abc import Buffer, ByteRange, Request, Store, slice_byte_range

T = TypeVar("T")

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


# -- helper stores ------------------------------------------------------------------


class CountingStore(MemoryStore):
    """A memory store that records every call the cache makes to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.fetched: Counter[str] = Counter()
        self.batches: list[list[str]] = []

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        self.calls["get"] += 1
        self.fetched[key] += 1
        return await super()._get(key, byte_range)

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        self.calls["get_many"] += 1
        self.batches.append(list(keys))
        self.fetched.update(keys)
        return await super()._get_many(keys)

    async def _contains(self, key: str) -> bool:
        self.calls["contains"] += 1
        return await super()._contains(key)

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        self.calls["list"] += 1
        async for key in super()._list(prefix):
            yield key

    async def _listdir(self, path: str) -> list[str]:
        self.calls["listdir"] += 1
        return await super()._listdir(path)


class GatedStore(Store):
    """A natively async store whose reads read first, then wait for ``gate``.

    A read that waits models a slow remote read begun before later writes.
    ``gated`` limits the waiting to reads touching those keys; ``failures``
    are raised (once each) by the next reads. The data is in a memory store.
    """

    def __init__(self) -> None:
        super().__init__()
        self.inner = MemoryStore()
        self.gate = threading.Event()
        self.gated: set[str] | None = None
        self.failures: list[Exception] = []
        self.fetched: Counter[str] = Counter()
        self.reads = 0
        self._count_lock = threading.Lock()

    async def _read(self, keys: list[str]) -> dict[str, bytes]:
        found = await self.inner.get_many(keys)
        with self._count_lock:
            self.fetched.update(keys)
            self.reads += 1
        if self.gated is None or self.gated & set(keys):
            await anyio.to_thread.run_sync(self.gate.wait, abandon_on_cancel=True)
        with self._count_lock:
            if self.failures:
                raise self.failures.pop()
        return found

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        found = await self._read([key])
        if key not in found:
            raise KeyError(key)
        return slice_byte_range(found[key], byte_range)

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        return await self._read(keys)

    async def _set(self, key: str, value: Buffer) -> None:
        await self.inner.set(key, value)

    async def _delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def _contains(self, key: str) -> bool:
        return await self.inner.contains(key)

    def _list(self, prefix: str) -> AsyncIterator[str]:
        return self.inner.list(prefix)

    async def _listdir(self, path: str) -> list[str]:
        return await self.inner.listdir(path)


class BlockingMapping(MutableMapping[str, bytes]):
    """A dict whose reads wait for ``gate`` and are counted (thread tests)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = dict(data)
        self.gate = threading.Event()
        self.gate.set()
        self.reads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> bytes:
        with self._lock:
            self.reads[key] += 1
        self.gate.wait()
        return self.data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    # Polled: the conditions change in other threads (the portal, worker threads).
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.002)


def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


async def filled(n: int, size: int = 10, store: MemoryStore | None = None) -> MemoryStore:
    store = store if store is not None else CountingStore()
    await store.set_many({f"k{i}": bytes([i]) * size for i in range(n)})
    return store


def waiting(cache: LRUStoreCache, key: str) -> int:
    flight = cache._inflight.get(key)
    return 0 if flight is None else flight.waiting


# -- the byte-bounded LRU ------------------------------------------------------------


@pytest.mark.anyio
async def test_get_many_serves_hits_from_memory_and_fetches_misses_in_one_batch() -> None:
    store = await filled(10)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=None)
    first = await cache.get_many([f"k{i}" for i in range(5)] + ["absent"])
    assert sorted(first) == [f"k{i}" for i in range(5)]
    assert store.batches == [["k0", "k1", "k2", "k3", "k4", "absent"]]
    both = await cache.get_many([f"k{i}" for i in range(10)])
    assert both == {f"k{i}": bytes([i]) * 10 for i in range(10)}
    assert store.batches[1:] == [["k5", "k6", "k7", "k8", "k9"]]
    assert store.calls["get"] == 0
    assert (cache.hits, cache.misses) == (5, 11)
    assert await cache.get_many([f"k{i}" for i in range(10)]) == both  # all hits: no call
    assert store.calls["get_many"] == 2 and cache.hits == 15


@pytest.mark.anyio
async def test_least_recently_used_value_is_evicted_by_bytes() -> None:
    store = await filled(3)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=25)  # room for two 10-byte values
    await cache.get("k0")
    await cache.get("k1")
    await cache.get("k0")  # k0 is now the most recent
    await cache.get("k2")  # evicts k1
    assert cache.current_size == 20
    await cache.get("k0")
    await cache.get("k2")
    assert store.fetched == Counter({"k0": 1, "k1": 1, "k2": 1})
    await cache.get("k1")
    assert store.fetched["k1"] == 2
    assert (cache.hits, cache.misses) == (3, 4)


@pytest.mark.anyio
async def test_value_larger_than_max_size_is_never_cached() -> None:
    store = await filled(1, size=5)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=4)
    assert await cache.get("k0") == b"\x00" * 5
    assert await cache.get("k0") == b"\x00" * 5
    assert store.fetched["k0"] == 2 and cache.current_size == 0
    await cache.set("big", b"123456")  # written through, not cached
    assert await store.get("big") == b"123456"
    assert cache.current_size == 0
    await cache.set("small", b"1234")
    assert cache.current_size == 4


@pytest.mark.anyio
async def test_unbounded_cache_keeps_everything() -> None:
    store = await filled(50, size=100)
    cache = LRUStoreCache(store, max_size=None)
    await cache.get_many([f"k{i}" for i in range(50)])
    assert cache.current_size == 5000
    await cache.get_many([f"k{i}" for i in range(50)])
    assert cache.hits == 50


@pytest.mark.parametrize("bad", [-1, "10", 1.5])
def test_max_size_must_be_bytes_or_none(bad: object) -> None:
    with pytest.raises(ValueError, match="max_size"):
        LRUStoreCache({}, max_size=bad)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_keys_are_normalized_and_bad_keys_refused() -> None:
    cache = LRUStoreCache(await filled(2), max_size=None)
    assert await cache.get_many(["/k0", "k0", "k1//"]) == {"k0": b"\x00" * 10, "k1": b"\x01" * 10}
    assert await cache.get("/k1") == b"\x01" * 10
    with pytest.raises(ValueError, match=r"'\.\.'"):
        await cache.get_many(["k0", "../k1"])
    with pytest.raises(TypeError):
        await cache.get_many([["k0"]])  # type: ignore[list-item]
    with pytest.raises(KeyError):
        await cache.get("absent")


@pytest.mark.anyio
async def test_byte_ranges_come_from_a_cached_value_or_the_store() -> None:
    store = await filled(2)
    assert isinstance(store, CountingStore)
    cache = LRUStoreCache(store, max_size=None)
    assert await cache.get("k0", byte_range=(2, 4)) == b"\x00\x00"
    assert cache.current_size == 0  # a part is not cached
    await cache.get("k1")
    assert await cache.get("k1", byte_range=(-3, None)) == b"\x01" * 3
    assert store.fetched == Counter({"k0": 1, "k1": 1})


# -- listings and what writes touch --------------------------------------------------


@pytest.mark.anyio
async def test_listings_and_contains_are_cached_and_invalidated() -> None:
    store = CountingStore()
    await store.set_many({"a/x": b"1", "b": b"2"})
    cache = LRUStoreCache(store, max_size=None)
    for _ in range(2):
        assert sorted([k async for k in cache.list()]) == ["a/x", "b"]
        assert await cache.listdir("a") == ["x"]
        assert await cache.contains("b") and not await cache.contains("c")
    assert (store.calls["list"], store.calls["listdir"], store.calls["contains"]) == (1, 1, 2)
    assert [k async for k in cache.list("a/")] == ["a/x"]  # from the cached listing
    assert store.calls["list"] == 1
    await store.set("c", b"3")  # behind the cache's back
    assert not await cache.contains("c")
    cache.invalidate_keys()
    assert await cache.contains("c")
    assert sorted([k async for k in cache.list()]) == ["a/x", "b", "c"]
    assert store.calls["list"] == 2
    await cache.get("b")
    cache.invalidate_values()
    await cache.get("b")
    assert store.fetched["b"] == 2
    cache.invalidate()
    assert cache.current_size == 0
    assert await cache.listdir("a") == ["x"] and store.calls["listdir"] == 2


@pytest.mark.anyio
async def test_a_write_updates_only_what_it_touches() -> None:
    store = CountingStore()
    await store.set_many({"a/x": b"1", "a/y": b"2", "b/z": b"3"})
    cache = LRUStoreCache(store, max_size=None)

    async def prime() -> None:
        [k async for k in cache.list()]
        for path in ("", "a", "b"):
            await cache.listdir(path)
        for key in ("a/x", "b/z", "a/new"):
            await cache.contains(key)

    await prime()
    before = Counter(store.calls)
    await cache.set("a/x", b"changed")  # overwrite: nothing to re-read
    await prime()
    assert await cache.get("a/x") == b"changed"
    assert store.calls == before and store.fetched["a/x"] == 0

    await cache.set("a/new", b"4")  # a new key: the listing is re-read, a/'s listdir is dropped
    await prime()
    assert store.calls - before == Counter({"list": 1, "listdir": 1})
    assert await cache.listdir("a") == ["new", "x", "y"]
    assert await cache.contains("a/new")

    before = Counter(store.calls)
    await cache.delete("b/z")  # listdir of b and of the root may change; the listing loses b/z
    await prime()
    assert store.calls - before == Counter({"listdir": 2})
    assert sorted([k async for k in cache.list()]) == ["a/new", "a/x", "a/y"]
    assert await cache.listdir("b") == []
    assert await cache.listdir("") == await store.listdir("")  # the store decides about "b"
    assert not await cache.contains("b/z")
    with pytest.raises(KeyError):
        await cache.get("b/z")


@pytest.mark.anyio
async def test_batch_writes_and_subtree_operations() -> None:
    store = CountingStore()
    cache = LRUStoreCache(store, max_size=None)
    await cache.set_many({"a/0": b"0", "a/1": b"1", "b/0": b"2"})
    assert await cache.get_many(["a/0", "a/1", "b/0"]) == {"a/0": b"0", "a/1": b"1", "b/0": b"2"}
    assert store.calls["get_many"] + store.calls["get"] == 0  # write-through values
    await cache.delete_many(["a/1", "absent"])
    assert not await cache.contains("a/1")
    await cache.rename("a", "c")
    assert await cache.get_many(["a/0", "c/0"]) == {"c/0": b"0"}
    assert await cache.listdir("") == ["b", "c"]
    await cache.rmdir("c")
    assert await cache.get_many(["c/0", "b/0"]) == {"b/0": b"2"}
    assert await cache.getsize("b") == 1
    await cache.clear()
    assert [k async for k in cache.list()] == [] and cache.current_size == 0
    with pytest.raises(KeyError):
        await cache.get("b/0")


@pytest.mark.anyio
async def test_read_only_store_gives_a_read_only_cache() -> None:
    store = await filled(1)
    cache = LRUStoreCache(MemoryStore(store.root, read_only=True), max_size=None)
    assert cache.read_only
    with pytest.raises(ReadOnlyError):
        await cache.set("k0", b"x")
    assert await cache.get("k0") == b"\x00" * 10


@pytest.mark.anyio
async def test_pickle_gives_an_empty_cache_over_the_same_data_and_close_closes_the_store() -> None:
    inner = MappingStore({"a": b"1"})
    cache = LRUStoreCache(inner, max_size=100)
    await cache.get("a")
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.max_size == 100 and copy.current_size == 0
    assert await copy.get("a") == b"1"
    assert repr(cache) == "LRUStoreCache(MappingStore(dict), max_size=100)"
    await cache.aclose()
    assert inner.closed
    with pytest.raises(ValueError, match="closed"):
        await cache.get("a")


# -- single-flight -------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrent_gets_of_one_key_share_one_fetch() -> None:
    store = await filled(1, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=0)  # nothing is cached: only joining can save fetches
    results: list[bytes] = []

    async def read() -> None:
        results.append(await cache.get("k0"))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(read)
        await until(lambda: waiting(cache, "k0") == 19)
        store.gate.set()
    assert results == [b"\x00" * 10] * 20
    assert store.fetched["k0"] == 1
    assert cache.misses == 20


@pytest.mark.anyio
async def test_overlapping_batches_fetch_each_key_once() -> None:
    store = await filled(3, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=None)
    results: dict[str, dict[str, bytes]] = {}

    async def read(name: str, keys: list[str]) -> None:
        results[name] = await cache.get_many(keys)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read, "first", ["k0", "k1"])
        await until(lambda: store.reads == 1)
        tg.start_soon(read, "second", ["k1", "k2"])
        await until(lambda: store.reads == 2)  # k2 fetched on its own; k1 joined
        store.gate.set()
    assert results["second"] == {"k1": b"\x01" * 10, "k2": b"\x02" * 10}
    assert store.fetched == Counter({"k0": 1, "k1": 1, "k2": 1})


@pytest.mark.anyio
async def test_an_error_reaches_every_reader_of_that_fetch_and_a_later_read_retries() -> None:
    store = await filled(1, store=GatedStore())
    assert isinstance(store, GatedStore)
    store.failures.append(OSError("connection reset"))
    cache = LRUStoreCache(store, max_size=None)
    errors: list[BaseException] = []

    async def read() -> None:
        try:
            await cache.get("k0")
        except OSError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(read)
        await until(lambda: waiting(cache, "k0") == 4)
        store.gate.set()
    assert len(errors) == 5 and store.fetched["k0"] == 1
    assert await cache.get("k0") == b"\x00" * 10
    assert store.fetched["k0"] == 2


@pytest.mark.anyio
async def test_readers_of_a_cancelled_fetch_fetch_again() -> None:
    store = await filled(1, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=None)
    leader = anyio.CancelScope()
    result: list[bytes] = []

    async def lead() -> None:
        with leader:
            await cache.get("k0")

    async def follow() -> None:
        result.append(await cache.get("k0"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(lead)
        await until(lambda: store.reads == 1)
        tg.start_soon(follow)
        await until(lambda: waiting(cache, "k0") == 1)
        leader.cancel()
        await until(lambda: store.reads == 2)  # the follower fetches on its own
        store.gate.set()
    assert result == [b"\x00" * 10]


@pytest.mark.anyio
async def test_a_write_during_a_fetch_is_not_undone_by_the_older_read() -> None:
    store = await filled(1, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=None)
    seen: list[bytes] = []

    async def read() -> None:
        seen.append(await cache.get("k0"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await until(lambda: store.reads == 1)  # read the old value, now waiting
        await cache.set("k0", b"new")
        store.gate.set()
    assert seen == [b"\x00" * 10]  # that read began before the write
    assert await cache.get("k0") == b"new"
    assert store.reads == 1  # served from the cache


@pytest.mark.anyio
async def test_a_fetch_under_way_during_invalidate_is_not_cached() -> None:
    store = await filled(1, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.get, "k0")
        await until(lambda: store.reads == 1)
        await store.set("k0", b"changed behind the cache")
        cache.invalidate_values()
        store.gate.set()
    assert await cache.get("k0") == b"changed behind the cache"
    assert store.reads == 2


def test_threads_reading_one_key_share_one_fetch() -> None:
    mapping = BlockingMapping({"k": b"value"})
    mapping.gate.clear()
    cache = aiosync.LRUStoreCache(mapping, max_size=0)
    results: list[bytes] = []

    def read() -> None:
        results.append(cache["k"])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: waiting(cache.async_store, "k") == 7)
    mapping.gate.set()
    for thread in threads:
        thread.join()
    assert results == [b"value"] * 8
    assert mapping.reads["k"] == 1


def test_many_threads_leave_the_cache_consistent_with_the_store() -> None:
    data: dict[str, bytes] = {}
    cache = aiosync.LRUStoreCache(data, max_size=200)
    keys = [f"g/{i}" for i in range(20)]

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            key = rng.choice(keys)
            op = rng.random()
            if op < 0.4:
                cache.getitems(rng.sample(keys, 5), contexts={})
            elif op < 0.7:
                cache[key] = bytes([seed]) * rng.randint(1, 30)
            elif op < 0.85:
                cache.delitems([key])
            elif op < 0.95:
                _ = key in cache
            else:
                cache.listdir("g")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    async_cache = cache.async_store
    assert cache.getitems(keys, contexts={}) == {k: data[k] for k in keys if k in data}
    assert [k for k in keys if k in cache] == [k for k in keys if k in data]
    assert cache.listdir("g") == sorted(k.split("/")[1] for k in data)
    assert sorted(cache) == sorted(data)
    assert async_cache.current_size == sum(len(v) for v in async_cache._lru.values()) <= 200


# -- prefetch ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_prefetch_returns_at_once_and_reads_wait_for_its_fetches(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await filled(20, store=GatedStore())
    assert isinstance(store, GatedStore)
    cache = LRUStoreCache(store, max_size=None, prefetch_batch_size=8)
    keys = [f"k{i}" for i in range(20)]
    assert cache.prefetch(keys) == 20  # returns with every fetch still blocked
    await until(lambda: store.reads == 3)  # 3 batches (8 + 8 + 4) under way at once
    result: dict[str, bytes] = {}

    async def read() -> None:
        result.update(await cache.get_many(keys))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await until(lambda: waiting(cache, "k0") == 1)
        store.gate.set()
    assert result == {k: bytes([i]) * 10 for i, k in enumerate(keys)}
    assert store.fetched == Counter(keys)  # each key fetched once, by the prefetch
    assert cache.prefetch(keys) == 0  # all cached now
    await cache.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.anyio
async def test_prefetch_errors_are_recorded_not_raised_and_a_read_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await filled(4, store=GatedStore())
    assert isinstance(store, GatedStore)
    store.gate.set()
    store.failures.append(OSError("throttled"))
    cache = LRUStoreCache(store, max_size=None)
    cache.prefetch(["k0", "k1", "k2", "k3"])
    await until(lambda: cache.prefetch_errors == 1 and not cache._prefetcher.running)
    assert isinstance(cache.last_prefetch_error, OSError)
    assert await cache.get_many(["k0", "k1", "k2", "k3"]) == {f"k{i}": bytes([i]) * 10 for i in range(4)}
    assert store.fetched == Counter({"k0": 2, "k1": 2, "k2": 2, "k3": 2})
    await cache.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.anyio
async def test_a_reader_joining_a_failed_prefetch_fetches_again() -> None:
    store = await filled(1, store=GatedStore())
    assert isinstance(store, GatedStore)
    store.failures.append(OSError("throttled"))
    cache = LRUStoreCache(store, max_size=None)
    cache.prefetch(["k0"])
    await until(lambda: store.reads == 1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.get, "k0")
        await until(lambda: waiting(cache, "k0") == 1)
        store.gate.set()
    assert store.fetched["k0"] == 2 and cache.prefetch_errors == 1
    await cache.aclose()


@pytest.mark.anyio
async def test_prefetch_stops_while_unread_values_fill_max_size() -> None:
    store = await filled(10, store=GatedStore())
    assert isinstance(store, GatedStore)
    store.gate.set()
    cache = LRUStoreCache(store, max_size=30, prefetch_concurrency=1, prefetch_batch_size=1)
    cache.prefetch([f"k{i}" for i in range(10)])
    await until(lambda: cache._prefetcher.waiting)
    assert store.reads == 3 and cache.current_size == 30
    assert await cache.get("k0") == b"\x00" * 10  # read: room for one more
    await until(lambda: store.reads == 4 and cache._prefetcher.waiting)
    # k3 took the place of k0, which was read; k1 and k2, not read yet, were kept.
    assert store.fetched == Counter({"k0": 1, "k1": 1, "k2": 1, "k3": 1})
    assert await cache.get_many(["k1", "k2", "k3"]) and store.reads == 4
    await until(lambda: store.reads == 7)  # room for three more
    await cache.aclose()  # stops the paused prefetch
    assert not cache._prefetcher.running


@pytest.mark.anyio
async def test_a_read_of_a_key_still_queued_fetches_it_at_once() -> None:
    store = await filled(5, store=GatedStore())
    assert isinstance(store, GatedStore)
    store.gated = {"k0"}  # the first prefetch batch hangs
    cache = LRUStoreCache(store, max_size=None, prefetch_concurrency=1, prefetch_batch_size=1)
    cache.prefetch([f"k{i}" for i in range(5)])
    await until(lambda: store.reads == 1)
    assert await cache.get("k4") == b"\x04" * 10  # not stuck behind k0
    await cache.aclose()  # cancels the hung fetch
    assert store.fetched["k4"] == 1
    store.gate.set()


def test_prefetch_from_sync_code_over_an_inline_store() -> None:
    mapping = BlockingMapping({f"c/{i}": bytes([i]) for i in range(50)})
    cache = aiosync.LRUStoreCache(mapping, max_size=None)
    keys = [f"c/{i}" for i in range(50)]
    assert cache.prefetch(keys) == 50
    assert cache.getitems(keys, contexts={}) == {k: bytes([i]) for i, k in enumerate(keys)}
    assert mapping.reads == Counter(keys)  # prefetched, joined or read: each exactly once
    wait_until(lambda: not cache.async_store._prefetcher.running)
    assert cache.getitems(keys, contexts={}) == {k: bytes([i]) for i, k in enumerate(keys)}
    assert mapping.reads == Counter(keys)
    cache.close()


def test_sync_cache_over_a_natively_async_store_hits_without_leaving_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiostore._protocol.store
    import aiostore.stores.cache.flights
    import aiostore.stores.cache.store

    hops: list[object] = []
    real = aiostore.stores.cache.store.run_on_portal

    def counted(call: Coroutine[Any, Any, T]) -> T:
        hops.append(call)
        return real(call)

    monkeypatch.setattr(aiostore.stores.cache.store, "run_on_portal", counted)
    monkeypatch.setattr(aiostore.stores.cache.flights, "run_on_portal", counted)
    monkeypatch.setattr(aiostore._protocol.store, "run_on_portal", counted)
    store = GatedStore()
    store.gate.set()
    cache = aiosync.LRUStoreCache(store, max_size=None)
    cache["a"] = b"1"  # the cache runs in the caller's thread ...
    assert len(hops) == 1  # ... the store's write went to the portal (its set_many_sync),
    assert cache["a"] == b"1" and cache.getitems(["a"], contexts={}) == {"a": b"1"}
    assert len(hops) == 1 and cache.hits == 2  # hits did not
    assert cache.getitems(["a", "b"], contexts={}) == {"a": b"1"}
    assert len(hops) == 2 and store.fetched == Counter({"b": 1})
    cache.prefetch(["c"])
    wait_until(lambda: not cache.async_store._prefetcher.running)
    assert "c" not in cache and len(hops) == 3  # contains is the store's: one hop
    cache.close()
    assert store.closed


@pytest.mark.anyio
async def test_sync_cache_used_from_inside_an_event_loop_reaches_the_store() -> None:
    # Blocking calls from async code are unusual but legal; the portal must not
    # inherit the caller's context (under trio it names trio, and anyio code on the
    # portal's asyncio loop would then call trio).
    store = GatedStore()
    store.gate.set()
    cache = aiosync.LRUStoreCache(store, max_size=None)
    cache["a"] = b"1"
    assert cache.getitems(["a", "b"], contexts={}) == {"a": b"1"}
    assert store.fetched == Counter({"b": 1})
    cache.prefetch(["c"])
    await until(lambda: store.fetched["c"] == 1 and not cache.async_store._prefetcher.running)
    assert cache.async_store.prefetch_errors == 0
    cache.close()


@pytest.mark.anyio
async def test_a_string_is_not_a_collection_of_keys_for_the_cache() -> None:
    cache = LRUStoreCache({"a": b"1", "b": b"2"}, max_size=None)
    await cache.get_many(["a", "b"])  # both cached: the fast path must refuse too
    for collection in ("ab", b"ab"):
        with pytest.raises(TypeError, match="collection of str keys"):
            await cache.get_many(collection)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="collection of str keys"):
            cache.get_many_sync(collection)  # type: ignore[arg-type]


# -- fork ------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_forked_child_does_not_join_a_fetch_of_the_parent() -> None:
    entered, gate = threading.Event(), threading.Event()

    class SlowStore(MemoryStore):
        resource = "disk"  # its reads run in worker threads, as a file store's do

        def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
            if any(key == "slow" for key, _ in requests):
                entered.set()
                gate.wait(10)
            return super()._get_blocking(requests)

    store = SlowStore()
    store.set_many_sync({"slow": b"v", "k": b"1"})
    cache = aiosync.LRUStoreCache(store, max_size=2**20)
    assert cache["k"] == b"1"  # cached before the fork
    reader = threading.Thread(target=cache.__getitem__, args=("slow",))
    reader.start()
    assert entered.wait(10)  # a fetch of "slow" is in flight in the parent

    def child() -> None:  # that fetch never ends here: the child fetches anew
        gate.set()
        assert cache["slow"] == b"v" and cache["k"] == b"1"
        cache["w"] = b"2"
        assert cache["w"] == b"2" and cache.getitems(["slow", "w"], contexts={}) == {"slow": b"v", "w": b"2"}

    try:
        assert in_forked_child(child) == 0
    finally:
        gate.set()
        reader.join(10)
    assert cache["slow"] == b"v" and "w" not in cache


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_while_the_cache_lock_is_held_does_not_hang() -> None:
    cache = aiosync.LRUStoreCache({"k": b"1"}, max_size=2**20)
    assert cache["k"] == b"1"
    lock = cache.async_store._lock
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # as a reader or writer between two steps would
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)

    def child() -> None:
        assert cache["k"] == b"1"
        cache["w"] = b"2"
        assert cache["w"] == b"2" and sorted(cache) == ["k", "w"]

    try:
        assert in_forked_child(child) == 0
    finally:
        release.set()
        holder.join(10)
    assert "w" not in cache and cache["k"] == b"1"
