"""Concurrent byte-range gets are coalesced into batches, like whole-value gets
(what zarr 3's sharding codec does: a ranged get per inner chunk), with every
failure attributed to its own request (asyncio and trio)."""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from aiostore import DirectoryStore, LMDBStore, ZipStore
from aiostore._runtime import coalesce
from aiostore._runtime.coalesce import GetCoalescer, InlineReads, Request
from aiostore._runtime.fanout import set_thread_limit, thread_limit
from aiostore.abc import BlockingStore, Buffer, ByteRange, slice_byte_range

pytestmark = pytest.mark.anyio


class RangeRecordingStore(BlockingStore):
    """A blocking dict backend that records every batch of reads (whole and ranged)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        super().__init__()
        self.data = data
        self.lock = threading.Lock()
        self.range_batches: list[list[Request]] = []

    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        with self.lock:
            self.range_batches.append(list(requests))
        bad = [key for key, _ in requests if "bad" in key]
        if bad:
            raise OSError(5, "Input/output error", bad)
        return [
            None if key not in self.data else slice_byte_range(self.data[key], byte_range)
            for key, byte_range in requests
        ]

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        self.data.update((key, bytes(value)) for key, value in items)

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        return [key for key in keys if self.data.pop(key, None) is None]

    def _contains_blocking(self, key: str) -> bool:
        return key in self.data

    def _list_blocking(self, prefix: str) -> list[str]:
        return [key for key in list(self.data) if key.startswith(prefix)]


async def gather(
    get: Callable[[str, ByteRange | None], object], requests: list[tuple[str, ByteRange | None]]
) -> list[object]:
    """Run every request at once; each outcome is the value or the exception's type."""
    outcomes: list[object] = [None] * len(requests)

    async def one(i: int) -> None:
        key, byte_range = requests[i]
        try:
            outcomes[i] = await get(key, byte_range)  # type: ignore[misc]
        except Exception as exc:
            outcomes[i] = type(exc)

    async with anyio.create_task_group() as tg:
        for i in range(len(requests)):
            tg.start_soon(one, i)
    return outcomes


SHARD = bytes(range(256)) * 4
# Inner-chunk-like ranges of one value, a suffix (a shard index), an open end, and an empty range.
RANGES: list[ByteRange] = [(i * 16, i * 16 + 16) for i in range(60)] + [(-16, None), (1000, None), (5, 5)]


@pytest.fixture
def one_disk_thread() -> Iterator[None]:
    """One disk thread: a batch is one call of the backend, so batches can be counted."""
    before = thread_limit("disk")
    set_thread_limit("disk", 1)
    yield
    set_thread_limit("disk", before)


@pytest.mark.usefixtures("one_disk_thread")
async def test_concurrent_ranged_gets_reach_the_backend_as_a_few_batches() -> None:
    store = RangeRecordingStore({"shard": SHARD})
    requests: list[tuple[str, ByteRange | None]] = [("shard", r) for r in RANGES]
    outcomes = await gather(store.get, [*requests, ("missing", (0, 4))])
    assert outcomes == [*(slice_byte_range(SHARD, r) for r in RANGES), KeyError]
    # 64 ranged gets: a handful of batch calls (the leader's, then the rest), not 64 hops.
    assert 1 <= len(store.range_batches) <= 3
    assert sum(map(len, store.range_batches)) == len(requests) + 1


async def test_one_bad_range_does_not_fail_its_neighbours() -> None:
    store = RangeRecordingStore({"a": b"abcdef", "b": b"uvwxyz"})
    requests: list[tuple[str, ByteRange | None]] = [
        ("a", (0, 2)),
        ("bad", (0, 1)),
        ("b", (-2, None)),
        ("gone", (1, 2)),
        ("a", (3, None)),
    ]
    outcomes = await gather(store.get, requests)
    assert outcomes == [b"ab", OSError, b"yz", KeyError, b"def"]
    # The failed batch was retried one request at a time, so only "bad" failed.
    assert sorted(map(len, store.range_batches)) == [1, 1, 1, 1, 1, 5]


async def test_whole_and_ranged_gets_share_a_batch() -> None:
    store = RangeRecordingStore({"a": b"abcdef", "b": b"uvwxyz"})
    requests: list[tuple[str, ByteRange | None]] = [
        ("a", None),
        ("a", (1, 3)),
        ("b", None),
        ("b", (-1, None)),
    ]
    assert await gather(store.get, requests) == [b"abcdef", b"bc", b"uvwxyz", b"z"]
    # One backend call for all four: whole values and byte ranges in the same batch.
    assert len(store.range_batches) == 1 and sorted(store.range_batches[0], key=repr) == sorted(
        requests, key=repr
    )


async def test_the_same_range_twice_is_read_once_and_served_to_both() -> None:
    store = RangeRecordingStore({"a": b"abcdef"})
    assert await gather(store.get, [("a", (1, 2)), ("a", (1, 2))]) == [b"b", b"b"]
    assert store.range_batches == [[("a", (1, 2))]]


def _directory(tmp_path: Path) -> BlockingStore:
    return DirectoryStore(tmp_path / "d")


def _zip(tmp_path: Path) -> BlockingStore:
    return ZipStore(str(tmp_path / "z.zip"), mode="w", compression=zipfile.ZIP_DEFLATED)


def _zip_stored(tmp_path: Path) -> BlockingStore:
    return ZipStore(str(tmp_path / "s.zip"), mode="w")


def _lmdb(tmp_path: Path) -> BlockingStore:
    return LMDBStore(str(tmp_path / "l.mdb"))


def _lmdb_copies(tmp_path: Path) -> BlockingStore:
    return LMDBStore(str(tmp_path / "c.mdb"), buffers=False)


@pytest.mark.parametrize("make", [_directory, _zip, _zip_stored, _lmdb, _lmdb_copies])
async def test_native_ranged_batches(make: Callable[[Path], BlockingStore], tmp_path: Path) -> None:
    store = make(tmp_path)
    other = b"0123456789"
    await store.set_many({"s/0": SHARD, "s/1": other})
    batches: list[int] = []
    native = store._get_blocking

    def counting(requests: Sequence[Request]) -> list[bytes | None]:
        batches.append(len(requests))
        return native(requests)

    store._get_blocking = counting  # type: ignore[method-assign]
    requests: list[tuple[str, ByteRange | None]] = [("s/0", r) for r in RANGES]
    requests += [("s/1", (2, 4)), ("s/1", (-3, None)), ("s/9", (0, 1)), ("s", (0, 1))]
    expected = [slice_byte_range(SHARD, r) for r in RANGES] + [b"23", b"789", KeyError, KeyError]
    assert await gather(store.get, requests) == expected
    # A handful of batch calls, not one per request: the fan-out hands a batch out in
    # chunks of at least 16 requests (more on a busy machine, where chunks stay small).
    assert 1 <= len(batches) <= 8 and sum(batches) == len(requests)
    # The batch hook directly, behind get_ranges (what ZarrStore.get_partial_values calls; None: missing).
    batch: list[tuple[str, ByteRange | None]] = [("s/1", (0, 1)), ("s/9", None), ("s/0", None)]
    assert await store._get_ranges(batch) == [b"0", None, SHARD]
    # The public batch reads, async and blocking, reach the same hook in one call each.
    batches.clear()
    assert await store.get_ranges(batch) == [b"0", None, SHARD]
    assert store.get_ranges_sync(batch) == [b"0", None, SHARD]
    assert batches == [3, 3]
    await store.aclose()


async def test_a_cancelled_ranged_waiter_leaves_the_others_served() -> None:
    gate = threading.Event()
    entered = threading.Semaphore(0)

    class Gated(RangeRecordingStore):
        def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
            values = super()._get_blocking(requests)
            entered.release()
            assert gate.wait(10), "test gate never opened"
            return values

    store = Gated({"a": b"abcdef"})
    scopes = [anyio.CancelScope() for _ in range(3)]
    results: dict[int, bytes] = {}

    async def get(i: int) -> None:
        with scopes[i]:
            results[i] = await store.get("a", (i, i + 1))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(get, i)
            await anyio.to_thread.run_sync(entered.acquire)  # the batch is in a thread
            # The batch's first request is its leader's (trio may start tasks in any order).
            (batch,) = store.range_batches
            waiter = [r[1][0] for r in batch][1]
            scopes[waiter].cancel()
            await anyio.lowlevel.checkpoint()
            gate.set()
    assert results == {i: b"abc"[i : i + 1] for i in range(3) if i != waiter}
    assert await store.get("a", (waiter, waiter + 1)) == b"abc"[waiter : waiter + 1]


async def test_one_fetch_serves_whole_and_ranged_gets_with_none_for_missing() -> None:
    # The coalescer takes one batch-read function for both kinds of get (it used to
    # need a second one for byte ranges); a missing key is None, not KeyError.
    data = {"a": b"abcdef"}
    calls: list[list[Request]] = []

    async def fetch(requests: list[Request]) -> list[bytes | None]:
        calls.append(requests)
        return [None if k not in data else slice_byte_range(data[k], r) for k, r in requests]

    coalescer = GetCoalescer(fetch)
    requests: list[tuple[str, ByteRange | None]] = [
        ("a", None),
        ("a", (0, 1)),
        ("gone", (0, 1)),
        ("gone", None),
    ]
    assert await gather(coalescer.get, requests) == [b"abcdef", b"a", None, None]
    assert len(calls) == 1 and sorted(calls[0], key=repr) == sorted(requests, key=repr)
    assert await coalescer.get("a", (-2, None)) == b"ef"
    assert calls[-1] == [("a", (-2, None))]


# -- reads inline: no batch, no thread hop, while they are cheap -----------------------------


class InlineData:
    """A dict read both ways: ``fetch`` (async, what a thread hop would run) and
    ``read`` (blocking, inline); each call recorded with its thread. Keys starting
    with "slow" take 5 ms to read (a cold disk)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.fetched: list[list[Request]] = []
        self.read_inline: list[tuple[list[Request], int]] = []

    def values(self, requests: list[Request]) -> list[bytes | None]:
        if any(key.startswith("slow") for key, _ in requests):
            time.sleep(0.005)
        return [None if k not in self.data else slice_byte_range(self.data[k], r) for k, r in requests]

    async def fetch(self, requests: list[Request]) -> list[bytes | None]:
        self.fetched.append(requests)
        return self.values(requests)

    def read(self, requests: list[Request]) -> list[bytes | None]:
        self.read_inline.append((requests, threading.get_ident()))
        return self.values(requests)


async def test_cheap_gets_are_read_inline_alone() -> None:
    source = InlineData({"a": b"abcdef", "b": b"xyz"})
    coalescer = GetCoalescer(source.fetch, source.read)
    requests: list[tuple[str, ByteRange | None]] = [("a", None), ("a", (1, 3)), ("b", None), ("gone", None)]
    assert await gather(coalescer.get, requests) == [b"abcdef", b"bc", b"xyz", None]
    assert source.fetched == []
    assert sorted(map(repr, (r for r, _ in source.read_inline))) == sorted(repr([r]) for r in requests)
    assert {thread for _, thread in source.read_inline} == {threading.get_ident()}
    assert GetCoalescer(source.fetch).inline is None  # without a blocking reader: always batches


async def test_after_slow_inline_reads_gets_are_batched_again() -> None:
    source = InlineData({**{f"slow{i}": b"s" for i in range(3)}, **{f"k{i}": bytes([i]) for i in range(20)}})
    coalescer = GetCoalescer(source.fetch, source.read)
    for i in range(3):  # read inline, 5 ms each: three in a row make slow reads the rule
        assert await coalescer.get(f"slow{i}") == b"s"
    requests: list[tuple[str, ByteRange | None]] = [(f"k{i}", None) for i in range(20)]
    assert await gather(coalescer.get, requests) == [bytes([i]) for i in range(20)]
    assert len(source.read_inline) == 3
    assert 1 <= len(source.fetched) <= 3 and sum(map(len, source.fetched)) == 20


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(coalesce, "perf_counter", fake)
    return fake


def test_inline_reads_back_off_while_tries_stay_slow(clock: FakeClock) -> None:
    policy = InlineReads(max_seconds=50e-6)
    assert policy.allowed() and not policy.allowed(reads=2)  # a single read measures first
    policy.record(10e-6)
    assert policy.allowed() and policy.allowed(reads=40) and not policy.allowed(reads=60)
    policy.record(30e-6 * 10, reads=10)  # a batch: per read
    assert policy.allowed()
    for wait in [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]:
        for _ in range(3):  # three slow reads in a row: threads for a while, longer each time
            assert policy.allowed()
            policy.record(0.003)
        start = clock.now
        clock.now = start + wait - 0.01
        assert not policy.allowed() and not policy.allowed(reads=2)
        clock.now = start + wait + 0.01
        assert policy.allowed() and not policy.allowed(reads=2)  # single reads measure again
    for _ in range(32):  # a cheap streak: inline again, and the next wait is short again
        policy.record(5e-6)
    assert policy.allowed(reads=10)
    for _ in range(3):
        policy.record(0.003)
    clock.now += 0.11
    assert policy.allowed()


def test_lone_slow_reads_keep_reads_inline() -> None:
    policy = InlineReads(max_seconds=50e-6)
    for _ in range(100):  # a hiccup (a preemption, a collection) now and then
        policy.record(5e-6)
        policy.record(5e-6)
        policy.record(0.002)
        assert policy.allowed()
    assert not InlineReads(max_seconds=0).allowed()
