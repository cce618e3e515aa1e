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
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from aiostore._runtime.fanout import Fanout, set_thread_limit, thread_limit

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

_LIMITERS: dict[str, anyio.lowlevel.RunVar[anyio.CapacityLimiter]] = {}
#: Parts smaller than this are not worth a thread hop of their own.
MIN_KEYS_PER_PART = 16


def capacity_limiter(resource: str) -> anyio.CapacityLimiter:
    """The current event loop's limiter for ``resource``: one per loop, sized by
    :func:`thread_limit` (threads for blocking work, requests in flight for a
    natively async client)."""
    var = _LIMITERS.get(resource)
    if var is None:
        var = _LIMITERS.setdefault(resource, anyio.lowlevel.RunVar(f"aiostore_{resource}_limiter"))
    limit = thread_limit(resource)
    try:
        limiter = var.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(limit)
        var.set(limiter)
    if limiter.total_tokens != limit:
        limiter.total_tokens = limit
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


async def _hop(
    fn: Callable[..., R], *args: Any, limiter: anyio.CapacityLimiter, stop: Callable[[], None] | None = None
) -> R:
    """One thread hop (see :func:`executor_hops`); never abandons the thread's work.

    anyio's hop waits for the thread when an anyio scope is cancelled, but a native
    asyncio cancellation (``task.cancel()``, ``asyncio.wait_for``) passes its shield
    and returns at once: this waits for the thread then too, or keeps it from starting.
    On cancellation ``stop()`` is called first, to make a thread that loops over work
    end after its current step.
    """
    if not _EXECUTOR_HOPS.get():
        call = _ThreadCall(fn)
        try:
            result: R = await anyio.to_thread.run_sync(call, *args, limiter=limiter)
        except BaseException:
            if stop is not None:
                stop()
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
                if stop is not None:
                    stop()
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
    waits: bool = False,
) -> list[tuple[Sequence[T], R | BaseException]]:
    """Run ``fn`` over parts of ``items`` in worker threads, fanned out as it pays.

    The batch starts as one thread hop working through chunks of ``items``
    (:class:`~aiostore._runtime.fanout.Fanout`: more hops join while its chunks
    wait on the disk or the network, or ``waits`` declares they do: writes).
    Returns ``(part, result)`` pairs in order, the result being the exception
    the part raised if it failed: one part failing does not stop the others, so
    a caller can report exactly what failed. Running parts are never abandoned
    on cancellation (a thread cannot be stopped half-way); no part starts after
    it. With ``split`` False the batch is one part in one hop (one transaction,
    one writer); with ``resource`` None it runs directly, as one part.
    """
    if resource is None:
        try:
            return [(items, fn(items))]
        except Exception as exc:
            return [(items, exc)]
    limiter = capacity_limiter(resource)
    if not split or len(items) <= min_part_size:
        try:
            return [(items, await _hop(fn, items, limiter=limiter))]
        except Exception as exc:
            return [(items, exc)]
    batch = Fanout(fn, items, limit=thread_limit(resource), min_chunk=min_part_size, waits=waits)
    token = anyio.lowlevel.current_token()
    # In anyio's worker threads a lane sees its caller's cancellation between chunks.
    check = None if _EXECUTOR_HOPS.get() else anyio.from_thread.check_cancelled

    async def lane() -> None:
        await _hop(batch.run_lane, check, limiter=limiter, stop=batch.stop)

    async with anyio.create_task_group() as tg:

        def start_lanes(count: int) -> None:  # in the event loop, asked by a lane's thread
            for _ in range(count):
                tg.start_soon(lane)

        batch.spawn = lambda count: anyio.from_thread.run_sync(start_lanes, count, token=token)
        tg.start_soon(lane)
    if not batch.complete:
        # A lane saw its caller cancelled and stopped the batch; trio's nursery exit
        # need not raise it, and a part of a batch must never pass for all of it.
        await anyio.lowlevel.checkpoint_if_cancelled()
        raise RuntimeError("a batch stopped before its end without a cancellation")  # pragma: no cover
    return list(batch.results())


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
    for _, result in await offload_batch(resource, part, items, min_part_size=1, waits=True):
        if isinstance(result, BaseException):
            raise result
        results.extend(result)
    return results
