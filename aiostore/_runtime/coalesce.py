"""Get-coalescing: concurrent single reads merged into one batch read.

A thread hop costs far more than a small read, so concurrent ``get`` calls --
zarr 3 calls ``get`` once per chunk, gathered -- are collected into one batch
before any of them reaches a thread. The runtime knows no store: it is given a
batch-read function.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import anyio
import anyio.lowlevel

__all__ = ["GetCoalescer", "Request"]

#: One read: a key and its byte range ((start, stop) or None for the whole value).
Request: TypeAlias = tuple[str, tuple[int, int | None] | None]
#: Reads a batch of requests: the values in order, None for a missing key.
FetchRequests: TypeAlias = Callable[[list[Request]], Awaitable[list[bytes | None]]]


class _Batch:
    """One batch of gets: its requests, their outcomes, and one event for all waiters.

    One event per batch, not per waiter: creating an ``anyio.Event`` costs about
    as much as a small read, and every waiter of a batch wakes at the same moment.
    """

    __slots__ = ("done", "errors", "found", "interrupted", "requests", "thread")

    def __init__(self, request: Request) -> None:
        self.thread = threading.get_ident()
        self.requests: dict[Request, None] = {request: None}  # an ordered set
        self.done = anyio.Event()
        self.found: dict[Request, bytes | None] = {}
        self.errors: dict[Request, BaseException] = {}
        #: The leader stopped before every request had its outcome.
        self.interrupted = False


class GetCoalescer:
    """Merge concurrent gets -- whole values and byte ranges -- into batches.

    The first ``get`` becomes the batch's leader: it yields once so that the
    other tasks ready to run can add their requests, then reads them all with
    one call of ``fetch`` and hands each waiter its value. Gets that arrive
    while a batch is in flight form the next batch. A request that fails fails
    only its own waiters: a failed batch call is retried one request at a time.
    The batch is shielded from the leader's cancellation; a cancellation that
    passes the shield anyway (a native asyncio one) stops only the leader: the
    waiters it leaves without an answer read again.

    Parameters
    ----------
    fetch : async callable
        ``fetch([(key, byte_range), ...]) -> [value or None, ...]``, in order,
        None for a missing key.

    Examples
    --------
    >>> import anyio
    >>> data = {"a": b"abc", "b": b"xyz"}
    >>> calls = []
    >>> async def fetch(requests):
    ...     calls.append(requests)
    ...     return [data[k][slice(*(r or (None,)))] if k in data else None for k, r in requests]
    >>> async def main():
    ...     coalescer = GetCoalescer(fetch)
    ...     async with anyio.create_task_group() as tg:
    ...         for key in ("a", "b"):
    ...             tg.start_soon(coalescer.get, key)
    ...             tg.start_soon(coalescer.get, key, (1, 2))
    ...     print(await coalescer.get("b", (0, 1)))
    >>> anyio.run(main)
    b'x'
    >>> calls
    [[('a', None), ('a', (1, 2)), ('b', None), ('b', (1, 2))], [('b', (0, 1))]]
    """

    def __init__(self, fetch: FetchRequests) -> None:
        self._fetch = fetch
        # The batch being gathered, with the thread of its event loop in it: one
        # attribute, so a reader in another thread never joins another loop's batch.
        self._open: _Batch | None = None

    async def get(self, key: str, byte_range: tuple[int, int | None] | None = None) -> bytes | None:
        """Return ``key``'s value (or its ``byte_range``), or None if it is missing."""
        request = (key, byte_range)
        while True:
            batch = self._open
            if batch is not None and batch.thread == threading.get_ident():
                batch.requests[request] = None
                await batch.done.wait()
            else:
                batch = await self._lead(request)
            if not batch.interrupted or request in batch.found or request in batch.errors:
                break
            # The leader was stopped without this reader's answer (a native asyncio
            # cancellation -- task.cancel(), asyncio.wait_for -- passes anyio's shield):
            # this reader was not stopped, so it reads again.
        error = batch.errors.get(request)
        if error is not None:
            raise error
        return batch.found.get(request)

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
                await self._fetch_all(batch)
        except BaseException:
            # Whatever stopped the leader, no waiter may hang: each one without its
            # answer reads again (see get).
            batch.interrupted = True
            raise
        finally:
            batch.done.set()
        return batch

    async def _fetch_all(self, batch: _Batch) -> None:
        """One batch call; if it fails, one call per request, so that a failure
        is attributed to its own request and never fails its neighbours."""
        requests = list(batch.requests)
        try:
            values = await self._fetch(requests)
        except Exception as exc:
            if len(requests) == 1:
                batch.errors[requests[0]] = exc
                return
        else:
            batch.found = dict(zip(requests, values, strict=True))
            return
        for r in requests:
            try:
                [batch.found[r]] = await self._fetch([r])
            except Exception as exc:
                batch.errors[r] = exc
