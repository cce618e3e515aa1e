"""The thread layer: batch splitting, one thread hop per part, shared limiters,
get-coalescing, and cancellation (asyncio and trio)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from forking import in_forked_child

from aiostore import BatchWriteError, ClosedStoreError
from aiostore._runtime import fanout
from aiostore._runtime import offload as threads
from aiostore._runtime.coalesce import GetCoalescer, Request
from aiostore._runtime.fanout import plan
from aiostore._runtime.offload import offload, offload_batch, split_batch
from aiostore.abc import BlockingStore, Buffer, slice_byte_range

pytestmark = pytest.mark.anyio


class RecordingStore(BlockingStore):
    """A blocking dict backend that records every blocking call and the thread it ran in."""

    def __init__(self, data: dict[str, bytes] | None = None, *, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.data: dict[str, bytes] = {} if data is None else data
        self.calls: list[tuple[str, int, int]] = []  # (hook, batch size, thread id)
        self.gate = gate  # when set, every batch waits for it (to hold work in a thread)
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.list_yielded = 0
        self.list_closed = False
        self.get_batches: list[list[str]] = []  # the keys of every _get_blocking call, in order
        self.set_batches: list[list[str]] = []  # kept by subclasses that record their writes
        self.cut: list[str] = []

    def _record(self, method: str, n: int) -> None:
        with self.lock:
            self.calls.append((method, n, threading.get_ident()))
        if self.gate is not None:
            self.entered.release()
            assert self.gate.wait(10), "test gate never opened"

    def count(self, method: str) -> int:
        return sum(1 for m, _, _ in self.calls if m == method)

    def sizes(self, method: str) -> list[int]:
        return sorted(n for m, n, _ in self.calls if m == method)

    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        keys = [k for k, _ in requests]
        with self.lock:
            self.get_batches.append(keys)
        self._record("get", len(requests))
        if any("bad" in k for k in keys):
            raise OSError(5, "Input/output error", [k for k in keys if "bad" in k])
        return [
            None if key not in self.data else slice_byte_range(self.data[key], byte_range)
            for key, byte_range in requests
        ]

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        self._record("set", len(items))
        for key, value in items:
            self.data[key] = bytes(value)

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        self._record("delete", len(keys))
        return [key for key in keys if self.data.pop(key, None) is None]

    def _contains_blocking(self, key: str) -> bool:
        return key in self.data

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        try:
            for key in sorted(self.data):
                if key.startswith(prefix):
                    self.list_yielded += 1
                    yield key
        finally:
            self.list_closed = True


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (callers bound the wait with ``fail_after``)."""
    while not condition():  # noqa: ASYNC110 - a limiter has no event to wait on
        await anyio.sleep(0.001)


@pytest.fixture
def disk_threads(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pin the disk thread limit so the number of parts is known."""
    monkeypatch.setitem(fanout._THREAD_LIMITS, "disk", 4)
    return 4


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every anyio.to_thread.run_sync call (one per thread hop)."""
    calls: list[int] = []
    original = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[0]) if args and isinstance(args[0], Sequence) else 1)
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


# -- split_batch ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "parts", "sizes"),
    [
        (100, 4, [25, 25, 25, 25]),
        (101, 4, [26, 25, 25, 25]),
        (40, 4, [20, 20]),  # parts of at least MIN_KEYS_PER_PART (16)
        (20, 4, [20]),
        (1, 8, [1]),
        (1000, 1, [1000]),
    ],
)
def test_split_batch_sizes(n: int, parts: int, sizes: list[int]) -> None:
    items = list(range(n))
    split = split_batch(items, parts)
    assert [len(p) for p in split] == sizes
    assert [x for p in split for x in p] == items  # contiguous, order kept, nothing lost


def test_split_batch_of_nothing() -> None:
    assert [list(p) for p in split_batch([], 4)] == [[]]


# -- offload / offload_batch: the adaptive fan-out ------------------------------------------


def sleeping(seconds: float) -> Callable[[Sequence[int]], list[int]]:
    """Work that waits (as a cold read does): its thread is off the CPU."""

    def work(part: Sequence[int]) -> list[int]:
        time.sleep(seconds)
        return [x * 2 for x in part]

    return work


async def test_quick_work_stays_in_one_hop(disk_threads: int, hops: list[int]) -> None:
    main = threading.get_ident()
    seen: list[int] = []

    def work(part: Sequence[int]) -> list[int]:
        seen.append(threading.get_ident())
        return [x * 2 for x in part]

    results = await offload_batch("disk", work, list(range(1000)))
    assert len(hops) == 1  # microseconds of work: no second thread would pay for its hop
    assert len(set(seen)) == 1 and main not in seen
    assert [x for part, _ in results for x in part] == list(range(1000))  # every key once, in order
    assert [x for _, r in results for x in r] == [x * 2 for x in range(1000)]  # type: ignore[union-attr]
    hops.clear()
    await offload_batch("disk", work, list(range(100)), split=False)
    assert hops == [100]  # not split: the whole batch in one call


async def test_waiting_work_fans_out_to_the_thread_limit(disk_threads: int, hops: list[int]) -> None:
    seen: set[int] = set()
    work = sleeping(0.01)

    def recording(part: Sequence[int]) -> list[int]:
        seen.add(threading.get_ident())
        return work(part)

    with anyio.fail_after(20):
        results = await offload_batch("disk", recording, list(range(256)), min_part_size=4)
    assert len(hops) == disk_threads and len(seen) == disk_threads
    assert [x for _, r in results for x in r] == [x * 2 for x in range(256)]  # type: ignore[union-attr]


def test_the_policy_adds_lanes_only_for_work_that_waits() -> None:
    # A batch that waited: up to the thread limit.
    assert plan(16, 0.016, waited=True, left=10_000, min_chunk=16, limit=4)[1] == 4
    # One that ran all along (page-cache hits): one lane, however much is left.
    assert plan(16, 0.0003, waited=False, left=10**6, min_chunk=16, limit=8)[1] == 1
    # Too little left for another lane to pay for its hop.
    assert plan(16, 0.0003, waited=True, left=40, min_chunk=16, limit=8)[1] == 0
    # Never more lanes than chunks left; chunks sized to about a millisecond.
    assert plan(16, 0.016, waited=True, left=32, min_chunk=16, limit=8) == (16, 2)
    assert plan(64, 0.00064, waited=False, left=10**6, min_chunk=16, limit=8)[0] == 64


def run_with_clock(
    monkeypatch: pytest.MonkeyPatch, times: list[tuple[float, float]], waits: bool = False
) -> int:
    """Lanes a batch of 10,000 keys asks for when its chunks take ``times`` (wall, cpu)."""
    clock = {"wall": 0.0, "cpu": 0.0}
    steps = iter(times + [(0.001, 0.001)] * 1000)

    def work(part: Sequence[int]) -> int:
        wall, cpu = next(steps)
        clock["wall"] += wall
        clock["cpu"] += cpu
        return len(part)

    monkeypatch.setattr(fanout.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(fanout.time, "thread_time", lambda: clock["cpu"])
    batch = fanout.Fanout(work, list(range(10_000)), limit=8, min_chunk=16, waits=waits)
    asked: list[int] = []
    batch.spawn = asked.append
    batch.run_lane()
    assert sum(asked) + 1 == batch.lanes
    return batch.lanes


def test_a_cold_probe_fans_out_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Evicted files on a fast disk: the lone first lane ran 0.41-0.44 of the time.
    assert run_with_clock(monkeypatch, [(0.001, 0.00042)]) == 8


def test_warm_work_stays_on_one_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    # Page-cache hits: more threads would only pass the GIL around. One chunk that
    # waited (for the GIL, or preempted) does not make the batch a waiting one.
    assert run_with_clock(monkeypatch, [(0.001, 0.001)] * 5 + [(0.004, 0.001)]) == 1


def test_declared_waiting_work_fans_out_from_the_first_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # Writes: creating files waits on the file system's journal, however warm.
    assert run_with_clock(monkeypatch, [(0.001, 0.001)], waits=True) == 8


def test_a_batch_that_waits_after_several_lanes_still_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    times = [(0.001, 0.001)] * 3 + [(0.01, 0.0001)] * 20  # warm at first, then the disk
    assert run_with_clock(monkeypatch, times) == 8


async def test_offload_batch_reports_each_parts_failure(disk_threads: int) -> None:
    def work(part: Sequence[int]) -> int:
        if 30 in part:
            raise OSError("part with 30 failed")
        return len(part)

    results = await offload_batch("disk", work, list(range(100)))
    assert [x for part, _ in results for x in part] == list(range(100))
    failed = [part for part, r in results if isinstance(r, OSError)]
    assert len(failed) == 1 and 30 in failed[0]
    assert all(r == len(part) for part, r in results if not isinstance(r, OSError))


async def test_resource_none_runs_in_the_calling_thread(hops: list[int]) -> None:
    main = threading.get_ident()
    assert await offload(None, threading.get_ident) == main
    seen: list[int] = []

    def work(part: Sequence[int]) -> int:
        seen.append(threading.get_ident())
        if -1 in part:
            raise OSError("boom")
        return len(part)

    [(part, result)] = await offload_batch(None, work, list(range(100)))
    assert list(part) == list(range(100)) and result == 100  # one part, never split
    [(_, error)] = await offload_batch(None, work, [-1])
    assert isinstance(error, OSError)  # reported, as a thread part's failure is
    assert seen == [main, main] and hops == []


async def test_store_batches_reach_the_backend_whole_and_in_threads(
    disk_threads: int, hops: list[int]
) -> None:
    store = RecordingStore()
    items = {f"k{i:03d}": bytes([i]) for i in range(100)}
    await store.set_many(items)
    assert sum(store.sizes("set")) == 100 and 1 <= len(hops) <= disk_threads  # writes: may fan out
    hops.clear()
    assert await store.get_many([*items, "missing"]) == items
    assert sum(store.sizes("get")) == 101 and len(hops) == 1  # every key once: no single reads
    await store.delete_many(list(items)[:50])
    assert sum(store.sizes("delete")) == 50
    assert sorted(store.data) == sorted(items)[50:]
    main = threading.get_ident()
    assert all(ident != main for _, _, ident in store.calls)


def test_sync_batches_fan_out_from_the_callers_thread(disk_threads: int) -> None:
    class SlowStore(RecordingStore):
        def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
            time.sleep(0.005)  # a cold disk
            return super()._get_blocking(requests)

    store = SlowStore({f"k{i:03d}": bytes([i]) for i in range(200)})
    assert store.get_many_sync([f"k{i:03d}" for i in range(200)]) == store.data
    threads_used = {ident for _, _, ident in store.calls}
    assert threading.get_ident() in threads_used  # the caller works too ...
    assert len(threads_used) == disk_threads  # ... with pool threads, up to the limit
    store.calls.clear()
    quick = RecordingStore(dict(store.data))
    assert quick.get_ranges_sync([(k, (0, 1)) for k in quick.data]) == list(quick.data.values())
    assert {ident for _, _, ident in quick.calls} == {threading.get_ident()}  # quick: the caller alone


def test_sync_batch_parts_failures_are_reported_like_async(disk_threads: int) -> None:
    class HalfBroken(RecordingStore):
        def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
            time.sleep(0.005)
            if any(k == "k030" for k, _ in items):
                raise OSError(28, "No space left on device")
            super()._set_blocking(items)

    store = HalfBroken()
    batch = {f"k{i:03d}": b"x" for i in range(200)}
    with pytest.raises(BatchWriteError) as info:
        store.set_many_sync(batch)
    assert "k030" in info.value.failed
    assert sorted(store.data) == sorted(set(batch) - set(info.value.failed))  # nothing lost or extra


def test_sync_fanout_in_a_forked_child_uses_a_pool_of_its_own(disk_threads: int) -> None:
    store = RecordingStore({f"k{i:03d}": b"v" for i in range(64)})

    class SlowStore(RecordingStore):
        def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
            time.sleep(0.002)
            return super()._get_blocking(requests)

    slow = SlowStore(dict(store.data))
    slow.get_many_sync(list(slow.data))  # the parent's pool has threads now
    assert fanout.lane_pool("disk") is fanout.lane_pool("disk")

    def child() -> int:
        # The parent's pool threads are not in this process: a pool of its own serves it.
        return 0 if slow.get_many_sync(list(slow.data)) == slow.data else 1

    assert in_forked_child(child, seconds=20) == 0


async def test_split_flags_keep_a_batch_in_one_thread(disk_threads: int, hops: list[int]) -> None:
    class OneTransaction(RecordingStore):
        split_batches = False

    class OneWriter(RecordingStore):
        split_writes = False

    items = {f"k{i:03d}": b"x" for i in range(100)}
    store: RecordingStore = OneTransaction()
    await store.set_many(items)
    await store.get_many(list(items))
    await store.delete_many(list(items))
    assert hops == [100, 100, 100]
    assert store.sizes("set") == store.sizes("get") == store.sizes("delete") == [100]
    store.set_many_sync(items)
    store.get_many_sync(list(items))
    assert store.sizes("set") == store.sizes("get") == [100, 100]  # the sync side too
    hops.clear()
    store = OneWriter()
    await store.set_many(items)
    store.set_many_sync(items)
    assert hops == [100] and store.sizes("set") == [100, 100]  # one writer: writes are one part ...
    hops.clear()
    await store.get_many(list(items))
    assert len(store.sizes("get")) > 1  # ... reads are still chunked


async def test_failed_part_becomes_batch_write_error(disk_threads: int) -> None:
    class HalfBroken(RecordingStore):
        def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
            with self.lock:
                self.set_batches.append([k for k, _ in items])
            if any(k == "k030" for k, _ in items):
                raise OSError(28, "No space left on device")  # fails before writing anything
            super()._set_blocking(items)

    store = HalfBroken()
    with pytest.raises(BatchWriteError) as info:
        await store.set_many({f"k{i:03d}": b"x" for i in range(100)})
    [failing] = [batch for batch in store.set_batches if "k030" in batch]
    assert sorted(info.value.failed) == failing
    assert sorted(store.data) == [f"k{i:03d}" for i in range(100) if f"k{i:03d}" not in failing]


async def test_a_parts_batch_write_error_names_only_its_failed_keys(disk_threads: int) -> None:
    class OneBadKey(RecordingStore):
        def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
            super()._set_blocking([(k, v) for k, v in items if k != "k030"])
            if any(k == "k030" for k, _ in items):
                raise BatchWriteError({"k030": OSError(28, "No space left on device")})

    store = OneBadKey()
    with pytest.raises(BatchWriteError) as info:
        await store.set_many({f"k{i:03d}": b"x" for i in range(100)})
    assert list(info.value.failed) == ["k030"]
    assert isinstance(info.value.failed["k030"], OSError)
    assert sorted(store.data) == [f"k{i:03d}" for i in range(100) if i != 30]


async def test_a_batch_write_cut_by_a_close_raises_closed_store_error(disk_threads: int) -> None:
    # Found by tests/stress: a set_many in flight when the store was closed raised a
    # BatchWriteError of ClosedStoreErrors, which a caller catching ClosedStoreError missed.
    class ClosedHalfWay(RecordingStore):
        def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
            if any(k.startswith("full") for k, _ in items):
                raise OSError(28, "No space left on device")
            if any(k >= "k050" for k, _ in items):  # the store was closed half-way
                with self.lock:
                    self.cut.extend(k for k, _ in items)
                raise ClosedStoreError(f"{self!r} is closed")
            super()._set_blocking(items)

    store = ClosedHalfWay()
    with pytest.raises(ClosedStoreError, match=r"is closed \(while this batch was written: \d+ key") as info:
        await store.set_many({f"k{i:03d}": b"x" for i in range(100)})
    assert isinstance(info.value.__cause__, BatchWriteError)  # which keys were not written
    assert sorted(info.value.__cause__.failed) == sorted(store.cut)
    assert sorted(store.data) == sorted({f"k{i:03d}" for i in range(100)} - set(store.cut))
    assert "k050" in store.cut and "k000" not in store.cut
    with pytest.raises(ClosedStoreError, match="is closed"):
        store.set_many_sync({"k099": b"x"})
    # Failures of another kind too: reported key by key, as before.
    batch = {**{f"full{i:03d}": b"x" for i in range(50)}, **{f"k{i:03d}": b"y" for i in range(50, 100)}}
    with pytest.raises(BatchWriteError) as mixed:
        await store.set_many(batch)
    assert sorted(mixed.value.failed) == sorted(batch)


async def test_limiter_is_shared_by_every_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fanout._THREAD_LIMITS, "disk", 2)
    gate = threading.Event()
    stores = [RecordingStore({"a": b"1"}, gate=gate), RecordingStore({"a": b"1"}, gate=gate)]
    limiter = threads.capacity_limiter("disk")
    assert limiter is threads.capacity_limiter("disk") and limiter.total_tokens == 2
    results: list[dict[str, bytes]] = []

    async def read(store: RecordingStore) -> None:
        results.append(await store.get_many(["a"]))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(read, stores[i % 2])
            # Wait until two batches are in threads and the other four queue on the limiter.
            await wait_until(lambda: limiter.statistics().tasks_waiting == 4)
            await wait_until(lambda: sum(s.count("get") for s in stores) == 2)
            assert limiter.borrowed_tokens == 2 and limiter.statistics().tasks_waiting == 4
            gate.set()
    assert results == [{"a": b"1"}] * 6


def test_set_thread_limit() -> None:
    before = threads.thread_limit("disk")
    try:
        threads.set_thread_limit("disk", 3)
        assert threads.thread_limit("disk") == 3
        with pytest.raises(ValueError):
            threads.set_thread_limit("disk", 0)
    finally:
        threads.set_thread_limit("disk", before)


# -- get-coalescing ----------------------------------------------------------------------


async def test_concurrent_gets_are_coalesced(hops: list[int]) -> None:
    store = RecordingStore({f"k{i}": str(i).encode() for i in range(50)})
    results: dict[str, bytes | str] = {}

    async def get(key: str) -> None:
        try:
            results[key] = await store.get(key)
        except KeyError:
            results[key] = "KeyError"

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(get, f"k{i}")
        tg.start_soon(get, "missing")
    assert results == {f"k{i}": str(i).encode() for i in range(50)} | {"missing": "KeyError"}
    # 51 gets reached the backend as a handful of batches, not 51 single reads.
    assert 1 <= store.count("get") <= 3
    assert sorted(k for batch in store.get_batches for k in batch) == sorted(results)
    assert len(hops) <= 3


async def test_a_blocking_store_without_a_resource_does_not_hop(hops: list[int]) -> None:
    class InThread(RecordingStore):
        resource = None

    store = InThread({"a": b"abcdef"})
    await store.set_many({"b": b"1"})
    assert await store.get("a", byte_range=(1, 3)) == b"bc"
    assert await store.get_many(["a", "b", "c"]) == {"a": b"abcdef", "b": b"1"}
    assert [k async for k in store.list()] == ["a", "b"]
    with pytest.raises(KeyError):
        await store.get("missing")
    assert hops == []
    assert {ident for _, _, ident in store.calls} == {threading.get_ident()}


async def test_a_lone_get_and_byte_ranges_still_work() -> None:
    store = RecordingStore({"a": b"abcdef"})
    assert await store.get("a") == b"abcdef"
    assert await store.get("a", byte_range=(-2, None)) == b"ef"
    with pytest.raises(KeyError):
        await store.get("b")


async def test_one_bad_key_does_not_fail_its_neighbours() -> None:
    store = RecordingStore({f"k{i}": b"v" for i in range(10)} | {"bad": b"x"})
    outcomes: dict[str, object] = {}

    async def get(key: str) -> None:
        try:
            outcomes[key] = await store.get(key)
        except Exception as exc:
            outcomes[key] = type(exc)

    async with anyio.create_task_group() as tg:
        for key in ["k0", "bad", *[f"k{i}" for i in range(1, 10)]]:
            tg.start_soon(get, key)
    assert outcomes.pop("bad") is OSError
    assert outcomes == {f"k{i}": b"v" for i in range(10)}


async def test_coalescer_dispatches_missing_and_errors() -> None:
    batches: list[list[Request]] = []

    async def fetch(requests: list[Request]) -> list[bytes | None]:
        batches.append(requests)
        if any(k == "boom" for k, _ in requests):
            raise RuntimeError("boom")
        return [None if k == "gone" else k.encode() for k, _ in requests]

    coalescer = GetCoalescer(fetch)
    got: dict[str, object] = {}

    async def get(key: str) -> None:
        try:
            got[key] = await coalescer.get(key)
        except Exception as exc:
            got[key] = type(exc)

    async with anyio.create_task_group() as tg:
        for key in ["a", "gone", "boom", "b", "a"]:
            tg.start_soon(get, key)
    # A missing key is None (the store turns it into KeyError), an error its own.
    assert got == {"a": b"a", "gone": None, "boom": RuntimeError, "b": b"b"}
    whole = [("a", None), ("b", None), ("boom", None), ("gone", None)]
    assert sorted(batches[0]) == whole  # one batch, each request once
    assert sorted(batches[1:]) == [[r] for r in whole]  # then one by one


async def test_cancelling_the_leader_leaves_no_waiter_hanging() -> None:
    gate = threading.Event()
    store = RecordingStore({"a": b"1", "b": b"2", "c": b"3"}, gate=gate)
    leader_scope = anyio.CancelScope()
    results: dict[str, bytes] = {}

    async def leader() -> None:
        with leader_scope:
            results["a"] = await store.get("a")

    async def waiter(key: str) -> None:
        results[key] = await store.get(key)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            tg.start_soon(waiter, "b")
            tg.start_soon(waiter, "c")
            await anyio.to_thread.run_sync(store.entered.acquire)  # the batch is in a thread
            leader_scope.cancel()
            await anyio.lowlevel.checkpoint()
            gate.set()
    assert results["b"] == b"2" and results["c"] == b"3"
    assert store.count("get") == 1
    gate.clear()
    store.gate = None
    assert await store.get("a") == b"1"  # the coalescer is not stuck


async def test_cancelling_a_waiter_leaves_the_others_served() -> None:
    gate = threading.Event()
    store = RecordingStore({"a": b"1", "b": b"2", "c": b"3"}, gate=gate)
    scopes = {key: anyio.CancelScope() for key in "abc"}
    results: dict[str, bytes] = {}

    async def get(key: str) -> None:
        with scopes[key]:
            results[key] = await store.get(key)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for key in "abc":
                tg.start_soon(get, key)
            await anyio.to_thread.run_sync(store.entered.acquire)
            # The batch lists the leader's key first (trio may start the tasks in any
            # order); cancel a task that only waits on it.
            (batch,) = store.get_batches
            assert sorted(batch) == ["a", "b", "c"]
            cancelled = batch[1]
            scopes[cancelled].cancel()
            await anyio.lowlevel.checkpoint()
            gate.set()
    assert results == {k: v for k, v in {"a": b"1", "b": b"2", "c": b"3"}.items() if k != cancelled}
    store.gate = None
    assert await store.get(cancelled) == {"a": b"1", "b": b"2", "c": b"3"}[cancelled]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("hop_path", ["anyio", "executor"])
async def test_a_natively_cancelled_leader_leaves_its_waiters_served(
    anyio_backend: str, hop_path: str
) -> None:
    # Found by tests/stress: task.cancel() (asyncio.wait_for, a TaskGroup) passes anyio's
    # shield, and every get coalesced into the cancelled leader's batch failed with a
    # RuntimeError instead of getting its value.
    gate = threading.Event()
    data = {"a": b"1", "b": b"2", "c": b"3"}
    store = RecordingStore(dict(data), gate=gate)
    with threads.executor_hops() if hop_path == "executor" else contextlib.nullcontext():
        tasks = {key: asyncio.ensure_future(store.get(key)) for key in data}
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(store.entered.acquire)  # the batch is in a thread
        (batch,) = store.get_batches
        leader = batch[0]
        tasks[leader].cancel()
        await asyncio.sleep(0)
        store.gate = None  # the waiters' own reads do not wait
        gate.set()
        results = dict(zip(tasks, await asyncio.gather(*tasks.values(), return_exceptions=True), strict=True))
    assert tasks[leader].cancelled()
    assert {key: value for key, value in results.items() if key != leader} == {
        key: value for key, value in data.items() if key != leader
    }


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("hop_path", ["anyio", "executor"])
async def test_a_natively_cancelled_hop_waits_for_its_thread(anyio_backend: str, hop_path: str) -> None:
    # Found by tests/stress: task.cancel() passed anyio's shield (and a second one the
    # executor hop's wait), so a cancelled set_many returned while its thread still
    # wrote: the write landed after the caller moved on, over later writes.
    gate = threading.Event()
    store = RecordingStore({"a": b"old"}, gate=gate)
    with threads.executor_hops() if hop_path == "executor" else contextlib.nullcontext():
        task = asyncio.ensure_future(store.set_many({"a": b"new"}))
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(store.entered.acquire)  # the write is in a thread
        for _ in range(2):
            task.cancel()
            await asyncio.sleep(0.02)
            assert not task.done()  # waiting for the thread
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert store.data == {"a": b"new"}


async def test_a_cancelled_batch_never_returns_part_of_its_results(disk_threads: int) -> None:
    # Found by the Azure conformance suite under trio: a lane that saw its caller
    # cancelled stopped the batch, and trio's nursery exit returned the parts done.
    calls: list[int] = []
    returned: list[object] = []

    with anyio.CancelScope() as scope:

        def work(part: Sequence[int]) -> list[int]:
            calls.append(len(part))
            if len(calls) == 1:
                anyio.from_thread.run_sync(scope.cancel)
            return list(part)  # quick: the batch stays on this one lane

        returned.append(await offload_batch("disk", work, list(range(400)), min_part_size=4))
    assert scope.cancelled_caught and returned == []
    assert sum(calls) < 400  # no chunk started after the cancellation was seen


async def test_cancelled_batch_write_leaves_every_key_old_or_new(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fanout._THREAD_LIMITS, "disk", 2)
    gate = threading.Event()
    old = {f"k{i:03d}": b"old" for i in range(64)}
    store = RecordingStore(dict(old), gate=gate)
    scope = anyio.CancelScope()

    async def write() -> None:
        with scope:
            await store.set_many({k: b"new" for k in old})

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await anyio.to_thread.run_sync(store.entered.acquire)  # its first chunk is in a thread
            scope.cancel()
            await anyio.lowlevel.checkpoint()
            gate.set()
    # The running chunk finished (a thread is never abandoned half-way); no chunk
    # started after the cancellation. No key is torn or lost.
    assert store.count("set") == 1
    [(_, written, _)] = [call for call in store.calls if call[0] == "set"]
    new = sorted(k for k, v in store.data.items() if v == b"new")
    assert len(new) == written < len(old) and sorted(store.data) == sorted(old)
    assert set(store.data.values()) == {b"old", b"new"}


async def test_list_is_paged_through_threads_and_closed_early(hops: list[int]) -> None:
    store = RecordingStore({f"k{i:05d}": b"" for i in range(2500)})
    store.list_page_size = 100  # type: ignore[misc]
    seen: list[str] = []
    agen = store.list("k")
    async for key in agen:
        seen.append(key)
        if len(seen) == 150:
            break
    await agen.aclose()  # type: ignore[attr-defined]
    assert seen == [f"k{i:05d}" for i in range(150)]
    assert store.list_yielded == 200  # two pages were read, not all 2500 keys
    assert store.list_closed
    assert len(hops) == 2
    hops.clear()
    assert len([k async for k in store.list("k01")]) == 1000
    assert len(hops) == 11  # 10 full pages and the short last one
