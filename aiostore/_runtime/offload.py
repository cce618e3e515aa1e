"""Worker threads for blocking backends: limiters, batch offload, get-coalescing.

A thread hop costs 100-300 µs while a small read costs 20 µs, so blocking work
is sent to threads in *batches*: a batch is split into at most as many parts as
there are worker threads for its resource class, and each part is one
``anyio.to_thread.run_sync`` call. The limiters are shared by every store in the
event loop, so ten stores and a dask pool do not multiply the load.

On the sync side (:mod:`aiostore.sync`) the same coroutines are driven without
an event loop: :func:`aiostore._inline.run_inline` marks the context so that every offload
becomes a direct call in the caller's thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from aiostore._inline import _INLINE
from aiostore.abc import Buffer, ByteRange, Store
from aiostore.errors import BatchWriteError

__all__ = [
    "BlockingStore",
    "GetCoalescer",
    "Request",
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


def _limiter(resource: str) -> anyio.CapacityLimiter:
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


async def _hop(fn: Callable[..., R], *args: Any, limiter: anyio.CapacityLimiter) -> R:
    """One thread hop (see :func:`executor_hops`); never abandons the thread's work."""
    if not _EXECUTOR_HOPS.get():
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
    async with limiter:
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        with anyio.CancelScope(shield=True):
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                # A thread cannot be stopped: as anyio's hop does, let it finish first.
                if not future.done():
                    await asyncio.wait([future])
                raise
        return result


async def offload(resource: str, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn(*args)`` in a worker thread (directly, when inline)."""
    if _INLINE.get():
        return fn(*args)
    return await _hop(fn, *args, limiter=_limiter(resource))


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
    resource: str,
    fn: Callable[[Sequence[T]], R],
    items: Sequence[T],
    *,
    split: bool = True,
) -> list[tuple[Sequence[T], R | BaseException]]:
    """Run ``fn`` over parts of ``items`` in worker threads, one hop per part.

    Returns ``(part, result)`` pairs, the result being the exception the part
    raised if it failed: one part failing
    does not stop the others, so a caller can report exactly what failed.
    Running parts are never abandoned on cancellation (a thread cannot be
    stopped half-way); parts not yet started are skipped.
    """
    if _INLINE.get():
        try:
            return [(items, fn(items))]
        except Exception as exc:
            return [(items, exc)]
    parts = split_batch(items, thread_limit(resource)) if split else [items]
    results: list[R | BaseException] = [None] * len(parts)  # type: ignore[list-item]
    limiter = _limiter(resource)

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


#: One read: a key and its byte range (None for the whole value).
Request = tuple[str, ByteRange | None]


class _Batch:
    """One batch of gets: its requests, their outcomes, and one event for all waiters.

    One event per batch, not per waiter: creating an ``anyio.Event`` costs about
    as much as a small read, and every waiter of a batch wakes at the same moment.
    """

    __slots__ = ("done", "errors", "found", "requests", "thread")

    def __init__(self, request: Request) -> None:
        self.thread = threading.get_ident()
        self.requests: dict[Request, None] = {request: None}  # an ordered set
        self.done = anyio.Event()
        self.found: dict[Request, bytes] = {}
        self.errors: dict[Request, BaseException] = {}


class GetCoalescer:
    """Merge concurrent gets -- whole values and byte ranges -- into batches.

    The first ``get`` becomes the batch's leader: it yields once so that the
    other tasks ready to run can add their requests, then fetches the whole
    values with one call of ``fetch_batch`` and the byte ranges with one call of
    ``fetch_ranges``, and hands each waiter its value. Gets that arrive while a
    batch is in flight form the next batch. A request that fails fails only its
    own waiters: a failed batch call is retried one request at a time.

    Parameters
    ----------
    fetch_batch : async callable
        ``fetch_batch(keys) -> {key: value}``; missing keys are left out.
    fetch_ranges : async callable, optional
        ``fetch_ranges([(key, byte_range), ...]) -> [value or None, ...]``, in
        order, None for a missing key; without it, ranged gets are refused.

    Examples
    --------
    >>> import anyio
    >>> data = {"a": b"abc", "b": b"xyz"}
    >>> calls = []
    >>> async def fetch_batch(keys):
    ...     calls.append(keys)
    ...     return {k: data[k] for k in keys if k in data}
    >>> async def fetch_ranges(requests):
    ...     calls.append(requests)
    ...     return [data[k][r[0]:r[1]] if k in data else None for k, r in requests]
    >>> async def main():
    ...     coalescer = GetCoalescer(fetch_batch, fetch_ranges)
    ...     async with anyio.create_task_group() as tg:
    ...         for key in ("a", "b"):
    ...             tg.start_soon(coalescer.get, key)
    ...             tg.start_soon(coalescer.get, key, (1, 2))
    ...     print(await coalescer.get("b", (0, 1)))
    >>> anyio.run(main)
    b'x'
    >>> calls
    [['a', 'b'], [('a', (1, 2)), ('b', (1, 2))], [('b', (0, 1))]]
    """

    def __init__(
        self,
        fetch_batch: Callable[[list[str]], Awaitable[dict[str, bytes]]],
        fetch_ranges: Callable[[list[Request]], Awaitable[list[bytes | None]]] | None = None,
    ) -> None:
        self._fetch_batch = fetch_batch
        self._fetch_ranges = fetch_ranges
        # The batch being gathered, with the thread of its event loop in it: one
        # attribute, so a reader in another thread never joins another loop's batch.
        self._open: _Batch | None = None

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return ``key``'s value (or its ``byte_range``); ``KeyError`` if missing."""
        if byte_range is not None and self._fetch_ranges is None:
            raise TypeError("this GetCoalescer has no fetch_ranges: it cannot read byte ranges")
        request = (key, byte_range)
        batch = self._open
        if batch is not None and batch.thread == threading.get_ident():
            batch.requests[request] = None
            await batch.done.wait()
        else:
            batch = await self._lead(request)
        error = batch.errors.get(request)
        if error is not None:
            raise error
        value = batch.found.get(request)
        if value is None:
            raise KeyError(key)
        return value

    async def _lead(self, request: Request) -> _Batch:
        batch = self._open = _Batch(request)
        try:
            # Shielded: the batch is shared with other waiters and the thread work
            # cannot be interrupted anyway; a cancellation lands right after.
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.lowlevel.checkpoint()
                finally:
                    if self._open is batch:
                        self._open = None
                batch.found, batch.errors = await self._fetch_all(list(batch.requests))
        except BaseException as exc:
            # Whatever stopped the leader (KeyboardInterrupt, a bug), no waiter may hang.
            interrupted = RuntimeError(f"the batch read this get joined was interrupted: {exc!r}")
            batch.errors = dict.fromkeys(batch.requests, interrupted)
            raise
        finally:
            batch.done.set()
        return batch

    async def _fetch_all(
        self, requests: list[Request]
    ) -> tuple[dict[Request, bytes], dict[Request, BaseException]]:
        found: dict[Request, bytes] = {}
        errors: dict[Request, BaseException] = {}
        whole = [r for r in requests if r[1] is None]
        ranged = [r for r in requests if r[1] is not None]
        if whole:
            await self._fetch_group(self._fetch_whole, whole, found, errors)
        if ranged:
            fetch = self._fetch_ranges
            assert fetch is not None  # get() refuses byte ranges without it
            await self._fetch_group(fetch, ranged, found, errors)
        return found, errors

    async def _fetch_whole(self, requests: list[Request]) -> list[bytes | None]:
        values = await self._fetch_batch([key for key, _ in requests])
        return [values.get(key) for key, _ in requests]

    @staticmethod
    async def _fetch_group(
        fetch: Callable[[list[Request]], Awaitable[list[bytes | None]]],
        requests: list[Request],
        found: dict[Request, bytes],
        errors: dict[Request, BaseException],
    ) -> None:
        """One batch call; if it fails, one call per request, so that a failure
        is attributed to its own request and never fails its neighbours."""
        try:
            values = await fetch(requests)
        except Exception as exc:
            if len(requests) == 1:
                errors[requests[0]] = exc
                return
        else:
            for r, value in zip(requests, values, strict=True):
                if value is not None:
                    found[r] = value
            return
        for r in requests:
            try:
                [value] = await fetch([r])
            except Exception as exc:
                errors[r] = exc
            else:
                if value is not None:
                    found[r] = value


class BlockingStore(Store):
    """Base class of the stores whose backend is blocking code.

    A subclass writes plain blocking methods: ``_get_blocking``,
    ``_set_blocking``, ``_delete_blocking``, ``_contains_blocking``,
    ``_list_blocking`` and, to use the backend's own batching,
    ``_get_batch``/``_get_ranges_batch``/``_set_batch``/``_delete_batch``. The
    async methods here send whole batches to worker threads; concurrent
    single-key gets, whole or byte ranges, are coalesced into batches; the sync
    side calls the blocking code directly.
    """

    #: The limiter class this backend's threads count against.
    _resource: ClassVar[str] = "disk"
    #: Whether a batch may be split over several threads (False for backends
    #: whose work holds the GIL, such as LMDB, or needs one lock anyway).
    _split_batches: ClassVar[bool] = True
    _sync_inline = True
    #: Keys listed per thread hop while streaming ``list``.
    _list_page_size: ClassVar[int] = 1000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._coalescer = GetCoalescer(self._get_many, self._get_ranges)

    # -- blocking primitives -----------------------------------------------
    def _get_blocking(self, key: str, byte_range: ByteRange | None) -> bytes:
        raise NotImplementedError

    def _set_blocking(self, key: str, value: Buffer) -> None:
        raise NotImplementedError

    def _delete_blocking(self, key: str) -> None:
        raise NotImplementedError

    def _contains_blocking(self, key: str) -> bool:
        raise NotImplementedError

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        raise NotImplementedError

    # -- blocking batches: override with the backend's native batching ------
    def _get_batch(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key in keys:
            try:
                found[key] = self._get_blocking(key, None)
            except KeyError:
                pass
        return found

    def _get_ranges_batch(self, requests: Sequence[Request]) -> list[bytes | None]:
        """Values (or byte ranges) of ``(key, byte_range)`` requests, in order;
        None for a missing key. Override where the backend can share work
        between requests (one open file, one transaction)."""
        out: list[bytes | None] = []
        for key, byte_range in requests:
            try:
                out.append(self._get_blocking(key, byte_range))
            except KeyError:
                out.append(None)
        return out

    def _set_batch(self, items: Sequence[tuple[str, Buffer]]) -> None:
        failed: dict[str, BaseException] = {}
        for key, value in items:
            try:
                self._set_blocking(key, value)
            except Exception as exc:
                failed[key] = exc
        if failed:
            raise BatchWriteError(failed)

    def _delete_batch(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                self._delete_blocking(key)
            except KeyError:
                pass

    # -- async side ----------------------------------------------------------
    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run one blocking call in a worker thread (directly when inline)."""
        return await offload(self._resource, fn, *args)

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        if not _INLINE.get():
            return await self._coalescer.get(key, byte_range)
        return self._get_blocking(key, byte_range)

    async def _get_ranges(self, requests: Sequence[Request]) -> list[bytes | None]:
        """Many ``(key, byte_range)`` reads (keys and ranges already checked), one
        thread hop per part of the batch; None for a missing key, in order."""
        results = await offload_batch(
            self._resource, self._get_ranges_batch, requests, split=self._split_batches
        )
        values: list[bytes | None] = []
        for _, result in results:
            if isinstance(result, BaseException):
                raise result
            values.extend(result)
        return values

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        results = await offload_batch(self._resource, self._get_batch, keys, split=self._split_batches)
        found: dict[str, bytes] = {}
        for _, result in results:
            if isinstance(result, BaseException):
                raise result
            found.update(result)
        return found

    async def _set(self, key: str, value: Buffer) -> None:
        await self._run(self._set_blocking, key, value)

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        results = await offload_batch(self._resource, self._set_batch, items, split=self._split_batches)
        failed: dict[str, BaseException] = {}
        for part, error in results:
            if isinstance(error, BatchWriteError):
                failed.update(error.failed)
            elif isinstance(error, BaseException):
                failed.update({key: error for key, _ in part})
        if failed:
            raise BatchWriteError(failed)

    async def _delete(self, key: str) -> None:
        await self._run(self._delete_blocking, key)

    async def _delete_many(self, keys: list[str]) -> None:
        results = await offload_batch(self._resource, self._delete_batch, keys, split=self._split_batches)
        for _, result in results:
            if isinstance(result, BaseException):
                raise result

    async def _contains(self, key: str) -> bool:
        return await self._run(self._contains_blocking, key)

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        if _INLINE.get():
            for key in self._list_blocking(prefix):
                yield key
            return
        page_size = self._list_page_size
        # Created in the first worker call: starting a listing may itself block.
        iterator: Iterator[str] | None = None

        def next_page() -> list[str]:
            nonlocal iterator
            if iterator is None:
                iterator = iter(self._list_blocking(prefix))
            page = []
            for key in iterator:
                page.append(key)
                if len(page) >= page_size:
                    break
            return page

        try:
            while True:
                page = await self._run(next_page)
                for key in page:
                    yield key
                if len(page) < page_size:
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
