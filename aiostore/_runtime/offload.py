"""Worker threads for blocking backends: limiters, batch offload, get-coalescing.

A thread hop costs 100-300 µs while a small read costs 20 µs, so blocking work
is sent to threads in *batches*: a batch is split into at most as many parts as
there are worker threads for its resource class, and each part is one
``anyio.to_thread.run_sync`` call. The limiters are shared by every store in the
event loop, so ten stores and a dask pool do not multiply the load.

A resource of ``None`` means work too cheap for a hop (the memory store's):
it runs directly in the calling thread. The runtime knows no store.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

__all__ = [
    "capacity_limiter",
    "gather_each",
    "offload_each",
    "executor_hops",
    "offload",
    "offload_batch",
    "set_thread_limit",
    "thread_limit",
]

T = TypeVar("T")
R = TypeVar("R")

_EXECUTOR_HOPS: ContextVar[bool] = ContextVar("aiostore_executor_hops", default=False)

#: Worker threads per resource class. Disk: a few threads running lean ``os``
#: calls beat one loop (the syscalls release the GIL); more than ~4 only adds
#: contention on small machines.
_THREAD_LIMITS: dict[str, int] = {
    "disk": max(2, min(8, 2 * (os.cpu_count() or 1))),
    "network": 32,
}
_LIMITERS: dict[str, anyio.lowlevel.RunVar[anyio.CapacityLimiter]] = {
    name: anyio.lowlevel.RunVar(f"aiostore_{name}_limiter") for name in _THREAD_LIMITS
}
#: Parts smaller than this are not worth a thread hop of their own.
MIN_KEYS_PER_PART = 16


def thread_limit(resource: str) -> int:
    """Worker threads used for ``resource`` ("disk" or "network").

    >>> thread_limit("disk") >= 2
    True
    """
    return _THREAD_LIMITS[resource]


def set_thread_limit(resource: str, threads: int) -> None:
    """Change how many worker threads ``resource`` may use (new event loops,
    and limiters already created, both follow)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    _THREAD_LIMITS[resource] = threads
    _LIMITERS.setdefault(resource, anyio.lowlevel.RunVar(f"aiostore_{resource}_limiter"))


def capacity_limiter(resource: str) -> anyio.CapacityLimiter:
    """The current event loop's limiter for ``resource``: one per loop, sized by
    :func:`thread_limit` (threads for blocking work, requests in flight for a
    natively async client)."""
    var = _LIMITERS[resource]
    try:
        limiter = var.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(_THREAD_LIMITS[resource])
        var.set(limiter)
    if limiter.total_tokens != _THREAD_LIMITS[resource]:
        limiter.total_tokens = _THREAD_LIMITS[resource]
    return limiter


@contextmanager
def executor_hops() -> Iterator[None]:
    """Within this block (in the current task and tasks it starts), thread hops
    use asyncio's ``loop.run_in_executor`` instead of ``anyio.to_thread``.

    For asyncio loops not started by ``run_until_complete`` -- zarr 3's own loop,
    Jupyter's -- with many tasks alive: there anyio looks for the loop's root task
    by scanning every task in the process on each hop, and starts a new worker
    thread per calling task (milliseconds a hop in a zarr 3 read). Used by
    :class:`aiostore.zarr3.ZarrStore`; only valid under asyncio.
    """
    token = _EXECUTOR_HOPS.set(True)
    try:
        yield
    finally:
        _EXECUTOR_HOPS.reset(token)


class _ThreadCall:
    """``fn`` for one call in a worker thread: a caller stopped before the thread
    took it can keep it from starting, one stopped later can wait for its end."""

    __slots__ = ("finished", "fn", "lock", "skipped", "started")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.lock = threading.Lock()
        self.started = self.skipped = False
        self.finished = threading.Event()

    def __call__(self, *args: Any) -> Any:
        with self.lock:
            if self.skipped:
                return None  # its caller is gone: nobody reads this
            self.started = True
        try:
            return self.fn(*args)
        finally:
            self.finished.set()

    def still_running(self) -> bool:
        """Keep the call from starting if it has not; True if it runs now."""
        with self.lock:
            if not self.started:
                self.skipped = True
                return False
        return not self.finished.is_set()


async def _wait_out(done: Callable[[], bool]) -> None:
    """Wait until ``done()``, through any cancellation: a thread cannot be stopped
    half-way, and its caller must not move on while it still works (a cancelled
    write landing later would overwrite what came after it)."""
    with anyio.CancelScope(shield=True):
        while not done():
            try:
                await anyio.sleep(0.001)  # rare: only after a cancellation
            except anyio.get_cancelled_exc_class():
                pass  # a native asyncio cancellation passes the shield: wait on


async def _hop(fn: Callable[..., R], *args: Any, limiter: anyio.CapacityLimiter) -> R:
    """One thread hop (see :func:`executor_hops`); never abandons the thread's work.

    anyio's hop waits for the thread when an anyio scope is cancelled, but a native
    asyncio cancellation (``task.cancel()``, ``asyncio.wait_for``) passes its shield
    and returns at once: this waits for the thread then too, or keeps it from starting.
    """
    if not _EXECUTOR_HOPS.get():
        call = _ThreadCall(fn)
        try:
            result: R = await anyio.to_thread.run_sync(call, *args, limiter=limiter)
        except BaseException:
            if call.still_running():
                await _wait_out(call.finished.is_set)
            raise
        return result
    async with limiter:
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        with anyio.CancelScope(shield=True):
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                await _wait_out(future.done)  # as anyio's hop does, let the thread finish
                raise
        return result


async def offload(resource: str | None, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn(*args)`` in a worker thread of ``resource`` (directly if None)."""
    if resource is None:
        return fn(*args)
    return await _hop(fn, *args, limiter=capacity_limiter(resource))


def split_batch(
    items: Sequence[T], parts: int, *, min_part_size: int = MIN_KEYS_PER_PART
) -> list[Sequence[T]]:
    """Split ``items`` into at most ``parts`` contiguous parts of similar size,
    none smaller than ``min_part_size`` (except a lone short batch).

    >>> [len(p) for p in split_batch(list(range(100)), 4)]
    [25, 25, 25, 25]
    >>> [len(p) for p in split_batch(list(range(20)), 4)]
    [20]
    >>> [len(p) for p in split_batch(list(range(6)), 4, min_part_size=1)]
    [2, 2, 1, 1]
    """
    n = len(items)
    parts = max(1, min(parts, n // max(1, min_part_size)))
    size, extra = divmod(n, parts)
    out: list[Sequence[T]] = []
    start = 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


async def offload_batch(
    resource: str | None,
    fn: Callable[[Sequence[T]], R],
    items: Sequence[T],
    *,
    split: bool = True,
    min_part_size: int = MIN_KEYS_PER_PART,
) -> list[tuple[Sequence[T], R | BaseException]]:
    """Run ``fn`` over parts of ``items`` in worker threads, one hop per part.

    Returns ``(part, result)`` pairs, the result being the exception the part
    raised if it failed: one part failing
    does not stop the others, so a caller can report exactly what failed.
    Running parts are never abandoned on cancellation (a thread cannot be
    stopped half-way); parts not yet started are skipped. With ``resource``
    None the whole batch runs directly, as one part.
    """
    if resource is None:
        try:
            return [(items, fn(items))]
        except Exception as exc:
            return [(items, exc)]
    parts = split_batch(items, thread_limit(resource), min_part_size=min_part_size) if split else [items]
    results: list[R | BaseException] = [None] * len(parts)  # type: ignore[list-item]
    limiter = capacity_limiter(resource)

    async def run_part(index: int, part: Sequence[T]) -> None:
        try:
            results[index] = await _hop(fn, part, limiter=limiter)
        except Exception as exc:
            results[index] = exc

    if len(parts) == 1:
        await run_part(0, parts[0])
    else:
        async with anyio.create_task_group() as tg:
            for index, part in enumerate(parts):
                tg.start_soon(run_part, index, part)
    return list(zip(parts, results, strict=True))


async def gather_each(
    resource: str, items: Sequence[T], one: Callable[[T], Awaitable[R]]
) -> list[R | Exception]:
    """``await one(item)`` for every item, concurrently, at most ``resource``'s limit at
    once (requests in flight for a natively async client); each result is the value
    or the exception it raised, in order.

    >>> import anyio
    >>> async def double(x):
    ...     return 2 * x
    >>> anyio.run(gather_each, "network", [1, 2, 3], double)
    [2, 4, 6]
    """
    limiter = capacity_limiter(resource)
    results: list[R | Exception] = [None] * len(items)  # type: ignore[list-item]
    indices = iter(range(len(items)))

    # A few workers pulling from one iterator, not a task per item (a task costs more
    # than a small request's client work); each takes a slot per item, so other
    # batches' requests interleave with this one's.
    async def worker() -> None:
        for index in indices:
            async with limiter:
                try:
                    results[index] = await one(items[index])
                except Exception as exc:
                    results[index] = exc

    async with anyio.create_task_group() as tg:
        for _ in range(min(len(items), int(limiter.total_tokens))):
            tg.start_soon(worker)
    return results


async def offload_each(resource: str, items: Sequence[T], one: Callable[[T], R]) -> list[R | Exception]:
    """``one(item)`` for every item in worker threads of ``resource``, the batch split
    over as many of them as it has items (one hop per part: each item may wait on the
    network, so they wait side by side); each result is the value or the exception
    it raised.

    >>> import anyio
    >>> anyio.run(offload_each, "network", ["1", "x"], int)
    [1, ValueError("invalid literal for int() with base 10: 'x'")]
    """

    def part(chunk: Sequence[T]) -> list[R | Exception]:
        out: list[R | Exception] = []
        for item in chunk:
            try:
                out.append(one(item))
            except Exception as exc:
                out.append(exc)
        return out

    results: list[R | Exception] = []
    for _, result in await offload_batch(resource, part, items, min_part_size=1):
        if isinstance(result, BaseException):
            raise result
        results.extend(result)
    return results
