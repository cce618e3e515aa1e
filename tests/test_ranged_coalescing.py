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
from aiostore._runtime.offload import BlockingStore, GetCoalescer, Request
from aiostore.abc import Buffer, ByteRange, slice_byte_range

pytestmark = pytest.mark.anyio


class RangeRecordingStore(BlockingStore):
    """A blocking dict backend that records every batch of ranged reads."""

    def __init__(self, data: dict[str, bytes]) -> None:
        super().__init__()
        self.data = data
        self.lock = threading.Lock()
        self.range_batches: list[list[Request]] = []
        self.single_gets = 0

    def _get_blocking(self, key: str, byte_range: ByteRange | None) -> bytes:
        with self.lock:
            self.single_gets += 1
        if "bad" in key:
            raise OSError(5, "Input/output error", key)
        return slice_byte_range(self.data[key], byte_range)

    def _get_ranges_batch(self, requests: Sequence[Request]) -> list[bytes | None]:
        with self.lock:
            self.range_batches.append(list(requests))
        return super()._get_ranges_batch(requests)

    def _get_batch(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: self.data[k] for k in keys if k in self.data}

    def _set_blocking(self, key: str, value: Buffer) -> None:
        self.data[key] = bytes(value)

    def _contains_blocking(self, key: str) -> bool:
        return key in self.data


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
    assert len(store.range_batches) == 1 and store.single_gets == 2


async def test_the_same_range_twice_is_read_once_and_served_to_both() -> None:
    store = RangeRecordingStore({"a": b"abcdef"})
    assert await gather(store.get, [("a", (1, 2)), ("a", (1, 2))]) == [b"b", b"b"]
    assert store.single_gets == 1


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
    native = store._get_ranges_batch

    def counting(requests: Sequence[Request]) -> list[bytes | None]:
        batches.append(len(requests))
        return native(requests)

    store._get_ranges_batch = counting  # type: ignore[method-assign]
    requests: list[tuple[str, ByteRange | None]] = [("s/0", r) for r in RANGES]
    requests += [("s/1", (2, 4)), ("s/1", (-3, None)), ("s/9", (0, 1)), ("s", (0, 1))]
    expected = [slice_byte_range(SHARD, r) for r in RANGES] + [b"23", b"789", KeyError, KeyError]
    assert await gather(store.get, requests) == expected
    assert 1 <= len(batches) <= 4 and sum(batches) == len(requests)
    # The batch read directly, as ZarrStore.get_partial_values uses it (None: missing).
    assert await store._get_ranges([("s/1", (0, 1)), ("s/9", None), ("s/0", None)]) == [b"0", None, SHARD]
    await store.aclose()


async def test_a_cancelled_ranged_waiter_leaves_the_others_served() -> None:
    gate = threading.Event()
    entered = threading.Semaphore(0)

    class Gated(RangeRecordingStore):
        def _get_ranges_batch(self, requests: Sequence[Request]) -> list[bytes | None]:
            with self.lock:
                self.range_batches.append(list(requests))
            entered.release()
            assert gate.wait(10), "test gate never opened"
            return BlockingStore._get_ranges_batch(self, requests)

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


async def test_a_coalescer_without_fetch_ranges_refuses_byte_ranges() -> None:
    async def fetch(keys: list[str]) -> dict[str, bytes]:
        return dict.fromkeys(keys, b"v")

    coalescer = GetCoalescer(fetch)
    assert await coalescer.get("a") == b"v"
    with pytest.raises(TypeError, match="byte ranges"):
        await coalescer.get("a", (0, 1))
