"""Concurrent byte-range gets are coalesced into batches, like whole-value gets
(what zarr 3's sharding codec does: a ranged get per inner chunk), with every
failure attributed to its own request (asyncio and trio)."""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from aiostore import DirectoryStore, LMDBStore, ZipStore
from aiostore._runtime import offload as threads
from aiostore._runtime.coalesce import GetCoalescer, Request
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


async def test_concurrent_ranged_gets_reach_the_backend_as_a_few_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(threads._THREAD_LIMITS, "disk", 1)  # one part per batch: batches are calls
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
    assert 1 <= len(batches) <= 4 and sum(batches) == len(requests)
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
