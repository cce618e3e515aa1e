"""asyncio-side batching for :class:`aiostore.zarr3.ZarrStore` (no zarr import here).

zarr 3 runs on asyncio -- usually on its own loop, started with ``run_forever`` --
and calls the store once per chunk from thousands of tasks. What makes that fast
on aiostore:

* :func:`fast_hops`: thread hops through asyncio's executor, not
  ``anyio.to_thread`` (see :func:`aiostore._runtime.offload.executor_hops` for why);
* :class:`WriteCoalescer`: concurrent single-key writes become one
  ``set_many``/``delete_many`` batch (reads -- whole values and byte ranges --
  are coalesced by the backend's own :class:`~aiostore._runtime.coalesce.GetCoalescer`,
  and a blocking backend reads a batch of byte ranges with ``_get_ranges``);
* :func:`read_many`: zarr's batch reads (``get_partial_values``) as one
  ``get_many`` for the whole values and one batch for the byte ranges;
* :func:`inline_policy`: cheap reads of a blocking backend (small values in the
  page cache) skip the thread hop altogether -- see
  :class:`~aiostore._runtime.coalesce.InlineReads`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from time import perf_counter
from typing import Any, TypeVar

import anyio

from aiostore._runtime.coalesce import InlineReads
from aiostore._runtime.offload import executor_hops, split_batch, thread_limit
from aiostore.abc import BlockingStore, ByteRange, Store
from aiostore.errors import BatchWriteError

__all__ = [
    "RANGED_CONCURRENCY",
    "WriteCoalescer",
    "asyncio_running",
    "delete_groups",
    "fast_hops",
    "inline_policy",
    "read_many",
    "set_groups",
    "stream_keys",
    "sum_sizes",
    "write_groups",
]

T = TypeVar("T")

#: Ranged reads that run at once on a natively async store (one request each).
RANGED_CONCURRENCY = 64


def asyncio_running() -> bool:
    """True inside a running asyncio event loop (not under trio, not in sync code).

    >>> asyncio_running()
    False
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def fast_hops() -> AbstractContextManager[None]:
    """:func:`~aiostore._runtime.offload.executor_hops` inside a running asyncio loop;
    nothing elsewhere (under trio, or with no event loop running).

    >>> with fast_hops():
    ...     pass
    """
    return executor_hops() if asyncio_running() else nullcontext()


async def stream_keys(store: Store, prefix: str) -> AsyncGenerator[str, None]:
    """``store.list(prefix)`` with fast hops for each page; closes the listing on exit.

    The hops are switched on around each step only: a context variable set
    inside an async generator would stay set in its consumer between steps.
    """
    keys = store.list(prefix)
    try:
        while True:
            with fast_hops():
                try:
                    key = await anext(keys)
                except StopAsyncIteration:
                    return
            yield key
    finally:
        aclose = getattr(keys, "aclose", None)
        if aclose is not None:
            with fast_hops():
                await aclose()


class _WriteBatch:
    __slots__ = ("done", "items", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: dict[str, Any] = {}
        self.done: asyncio.Future[dict[str, BaseException]] = loop.create_future()
        self.task: asyncio.Task[None] | None = None


class WriteCoalescer:
    """Merge single-key writes made in the same event-loop tick into one batch.

    The first call opens a batch and schedules its start with ``call_soon``, so
    every task already ready to run adds its key first. The batch runs in a task
    of its own, so one caller's cancellation cannot stop it for the others; a
    cancelled caller still waits for the batch (its write cannot be recalled)
    before it re-raises. Only for use inside a running asyncio loop.

    Parameters
    ----------
    run_batch : async callable
        ``run_batch(items) -> {key: error}`` for the keys that failed; an
        exception it raises fails every key of the batch.

    Examples
    --------
    >>> import asyncio
    >>> batches = []
    >>> async def write(items):
    ...     batches.append(dict(items))
    ...     return {}
    >>> async def main():
    ...     writes = WriteCoalescer(write)
    ...     await asyncio.gather(*(writes.submit(f"k{i}", i) for i in range(3)))
    >>> asyncio.run(main())
    >>> batches
    [{'k0': 0, 'k1': 1, 'k2': 2}]
    """

    def __init__(
        self, run_batch: Callable[[Sequence[tuple[str, Any]]], Awaitable[dict[str, BaseException]]]
    ) -> None:
        self._run_batch = run_batch
        # One open batch per event loop: a store may be used from several threads.
        self._open: dict[asyncio.AbstractEventLoop, _WriteBatch] = {}

    async def submit(self, key: str, payload: Any) -> None:
        """Write ``payload`` under ``key`` in the next batch; raise this key's error."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(loop)
        if batch is None:
            batch = self._open[loop] = _WriteBatch(loop)
            loop.call_soon(self._start, loop, batch)
        batch.items[key] = payload  # the same key twice (two writers at once): the last one wins
        done = batch.done
        try:
            failed = await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                await asyncio.wait([done])
            raise
        if key in failed:
            raise failed[key]

    def _start(self, loop: asyncio.AbstractEventLoop, batch: _WriteBatch) -> None:
        if self._open.get(loop) is batch:
            del self._open[loop]
        batch.task = loop.create_task(self._run(batch))

    async def _run(self, batch: _WriteBatch) -> None:
        try:
            failed = await self._run_batch(list(batch.items.items()))
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except BaseException as exc:
            batch.done.set_exception(exc)
        else:
            batch.done.set_result(failed)


def write_groups(store: Store, items: Sequence[T]) -> list[Sequence[T]]:
    """Split a batch of writes into one group per worker thread, for concurrent batches.

    A small file write costs several thread hops (a temporary file, a rename), so
    unlike reads, even a few writes are worth spreading over the backend's threads
    (``split_batch`` keeps parts of at least 16 keys, right for reads). Backends
    with one writer (``split_writes = False``) get a single group.

    >>> from aiostore import MappingStore, MemoryStore
    >>> [len(g) for g in write_groups(MemoryStore(), list(range(10)))]
    [10]
    >>> len(write_groups(MappingStore({}), list(range(10))))
    1
    """
    if not isinstance(store, BlockingStore) or len(items) < 2:
        return [items]
    if store.resource is None or not (store.split_batches and store.split_writes):
        return [items]
    return split_batch(items, thread_limit(store.resource), min_part_size=1)


def inline_policy(store: Store, max_seconds: float) -> InlineReads | None:
    """When to read ``store`` in the event loop's thread: for a blocking backend whose
    sync reads run in the caller's thread and whose async ones take a hop to the disk
    threads; None for any other (the memory store reads in the loop's thread anyway, a
    natively async store awaits its I/O).

    >>> from aiostore import MappingStore, MemoryStore
    >>> inline_policy(MappingStore({}), 50e-6) is not None, inline_policy(MemoryStore(), 50e-6)
    (True, None)
    """
    if isinstance(store, BlockingStore) and store.supports_sync_io and store.resource == "disk":
        return InlineReads(max_seconds)
    return None


async def set_groups(store: Store, items: Sequence[tuple[str, Any]]) -> dict[str, BaseException]:
    """Write a coalesced batch (:class:`WriteCoalescer`'s ``run_batch``): one
    ``set_many`` per :func:`write_groups` group, concurrently; ``{key: error}`` for
    the keys that failed."""

    async def write(group: Sequence[tuple[str, Any]]) -> dict[str, BaseException]:
        try:
            await store.set_many(group)
        except BatchWriteError as exc:
            return exc.failed
        return {}

    failed: dict[str, BaseException] = {}
    with fast_hops():
        for result in await asyncio.gather(*map(write, write_groups(store, items))):
            failed.update(result)
    return failed


async def delete_groups(store: Store, items: Sequence[tuple[str, Any]]) -> dict[str, BaseException]:
    """Delete a coalesced batch of ``(key, None)``: one ``delete_many`` per group."""

    async def remove(group: Sequence[tuple[str, Any]]) -> None:
        await store.delete_many([key for key, _ in group])

    with fast_hops():
        await asyncio.gather(*map(remove, write_groups(store, items)))
    return {}


async def sum_sizes(store: Store, keys: Sequence[str]) -> int:
    """The summed sizes of the values of ``keys`` (zarr's ``getsize_prefix``), a
    few ``getsize`` calls at once.

    aiostore's ``getsize(dir)`` sums a directory's immediate keys in one call; a
    parent that is also a key itself (possible in flat backends) would report its
    own size instead, so its children are counted one by one.
    """
    by_parent: dict[str, list[str]] = {}
    for key in keys:
        by_parent.setdefault(key.rpartition("/")[0], []).append(key)
    total = 0
    limiter = anyio.CapacityLimiter(RANGED_CONCURRENCY)

    async def add_sizes(parent: str, children: list[str]) -> None:
        nonlocal total  # (``total += await ...`` would read ``total`` before awaiting)
        async with limiter:
            if parent and await store.contains(parent):
                sizes = [await store.getsize(child) for child in children]
            else:
                sizes = [await store.getsize(parent)]
        total += sum(sizes)

    async with anyio.create_task_group() as tg:  # the tasks inherit the caller's fast hops
        for parent, children in by_parent.items():
            tg.start_soon(add_sizes, parent, children)
    return total


async def read_many(
    store: Store, requests: Sequence[tuple[str, ByteRange | None]], inline: InlineReads | None = None
) -> list[bytes | None]:
    """The values (or byte ranges) of ``requests``, in order; None where a key is missing.

    A batch ``inline`` allows is read in the caller's thread (``get_ranges_sync``).
    Else whole values are read with one ``get_many``; byte ranges of a blocking
    backend with one ``get_ranges`` batch, others with concurrent ``get`` calls.
    """
    if not requests:
        return []
    if inline is not None and inline.allowed(len(requests)):
        start = perf_counter()
        try:
            return store.get_ranges_sync(requests)
        finally:
            inline.record(perf_counter() - start, len(requests))
    with fast_hops():
        return await _read_batched(store, requests)


async def _read_batched(store: Store, requests: Sequence[tuple[str, ByteRange | None]]) -> list[bytes | None]:
    results: list[bytes | None] = [None] * len(requests)
    whole = [i for i, (_, request) in enumerate(requests) if request is None]
    ranged = [i for i, (_, request) in enumerate(requests) if request is not None]
    if whole:
        found = await store.get_many(requests[i][0] for i in whole)
        for i in whole:
            results[i] = found.get(store.check_key(requests[i][0]))
    if len(ranged) > 1 and isinstance(store, BlockingStore):
        values = await store.get_ranges([requests[i] for i in ranged])
        for i, value in zip(ranged, values, strict=True):
            results[i] = value
    elif ranged:
        limiter = anyio.CapacityLimiter(RANGED_CONCURRENCY)

        async def read_one(i: int) -> None:
            async with limiter:
                results[i] = await _read_one(store, *requests[i])

        async with anyio.create_task_group() as tg:
            for i in ranged:
                tg.start_soon(read_one, i)
    return results


async def _read_one(store: Store, key: str, request: ByteRange | None) -> bytes | None:
    try:
        return await store.get(key, request)
    except KeyError:
        return None
