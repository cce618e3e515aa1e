"""Get-coalescing: concurrent single reads merged into one batch read; and when
a read is cheap enough to make with no thread hop at all.

A thread hop costs far more than a small read, so concurrent ``get`` calls --
zarr 3 calls ``get`` once per chunk, gathered -- are collected into one batch
before any of them reaches a thread. Cheaper still is no hop: a small value in
the page cache is read in a few microseconds, a twentieth of a hop, so while
reads stay that cheap :class:`InlineReads` has them made in the caller's own
thread. The runtime knows no store: it is given the batch-read functions.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TypeAlias

import anyio
import anyio.lowlevel

__all__ = ["INLINE_BATCH_SECONDS", "INLINE_SECONDS", "GetCoalescer", "InlineReads", "Request"]

#: One read: a key and its byte range ((start, stop) or None for the whole value).
Request: TypeAlias = tuple[str, tuple[int, int | None] | None]
#: Reads a batch of requests: the values in order, None for a missing key.
FetchRequests: TypeAlias = Callable[[list[Request]], Awaitable[list[bytes | None]]]
#: The same, blocking, in the caller's thread.
ReadRequests: TypeAlias = Callable[[list[Request]], list[bytes | None]]

#: A read that takes longer than this is slow: reads are made inline (no thread
#: hop) while slow ones stay rare. About what a hop costs (60-300 µs): a read this
#: cheap gains nothing from a thread. A small value in the page cache takes 2-10 µs
#: (50-100 on a busy machine), a cold read from an SSD 80 µs or more, from a
#: network file system or a disk milliseconds.
INLINE_SECONDS = 100e-6
#: A batch of reads is made inline only if it should take at most this long (its
#: reads times the average read): the event loop's other tasks wait for it.
INLINE_BATCH_SECONDS = 0.5e-3
#: Each read's weight in the slow-read score; reads go to threads when it passes
#: 1/2, so after three slow reads in a row -- not after a lone one (a preemption on
#: a busy machine, a garbage collection pause).
_SCORE_WEIGHT = 0.25
#: After slow reads, reads go to threads for this long before reads try inline
#: again; the wait doubles while those tries are slow too, up to :data:`_MAX_BACKOFF`,
#: and is back to this after :data:`_CHEAP_STREAK` cheap reads in a row.
_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 5.0
_CHEAP_STREAK = 32


class InlineReads:
    """The policy for reading inline -- in the event loop's own thread -- rather
    than through a thread hop: inline while reads are cheap.

    The caller times each inline read and reports it (:meth:`record`). A read
    that took longer than ``max_seconds`` is slow. Reads stay inline until slow
    reads are the rule -- three in a row (a score weighing the recent reads
    most), not a lone one, which a preemption or a garbage collection can cause:
    a cold page cache, a network file system or large values then send reads to
    threads for a while (0.1 s at first). Then reads try inline again, and if
    they are slow again the while doubles (up to 5 s). So a slow disk blocks the
    event loop for three reads every few seconds at most, and a warm one is read
    with no hop at all.

    A batch of reads is made inline only when the average read, times its
    reads, is within :data:`INLINE_BATCH_SECONDS` (and an average is known).

    Parameters
    ----------
    max_seconds : float
        How long a read may take and still be cheap; 0 makes no read inline.

    Examples
    --------
    >>> policy = InlineReads(max_seconds=50e-6)
    >>> policy.allowed(), policy.allowed(reads=10)  # a single read finds out first
    (True, False)
    >>> policy.record(5e-6)  # it took 5 µs
    >>> policy.allowed(), policy.allowed(reads=10), policy.allowed(reads=1000)
    (True, True, False)
    >>> policy.record(0.004)  # one slow read (4 ms): a hiccup
    >>> policy.allowed()
    True
    >>> policy.record(0.004); policy.record(0.004)  # a cold disk
    >>> policy.allowed()
    False
    >>> InlineReads(max_seconds=0).allowed()
    False
    """

    __slots__ = ("_backoff", "_cheap", "_cost", "_retry_at", "_score", "max_seconds")

    def __init__(self, max_seconds: float = INLINE_SECONDS) -> None:
        self.max_seconds = max_seconds
        #: Average seconds per read (recent ones weigh most); None: not measured yet.
        self._cost: float | None = None
        #: Recent slow reads, weighted (see _SCORE_WEIGHT).
        self._score = 0.0
        #: Cheap reads in a row.
        self._cheap = 0
        #: No read is made inline before this ``perf_counter`` time.
        self._retry_at = 0.0
        self._backoff = _MIN_BACKOFF

    def allowed(self, reads: int = 1) -> bool:
        """Whether to make a batch of ``reads`` reads inline now."""
        if reads == 1:
            return self.max_seconds > 0 and (not self._retry_at or perf_counter() >= self._retry_at)
        cost = self._cost
        return cost is not None and not self._retry_at and cost * reads <= INLINE_BATCH_SECONDS

    def record(self, seconds: float, reads: int = 1) -> None:
        """Report that ``reads`` reads made inline took ``seconds`` in all."""
        per_read = seconds if reads == 1 else seconds / max(1, reads)
        cost = self._cost
        self._cost = per_read if cost is None else cost + (per_read - cost) * _SCORE_WEIGHT
        if self._retry_at:  # the first read after a wait: reads are inline again
            self._retry_at = 0.0
        if per_read <= self.max_seconds:  # the usual read: kept short (once per chunk)
            if self._score:
                self._score = 0.0 if self._score < 0.01 else self._score * (1 - _SCORE_WEIGHT)
            if self._cheap < _CHEAP_STREAK:
                self._cheap += 1
                if self._cheap == _CHEAP_STREAK:
                    self._backoff = _MIN_BACKOFF
            return
        self._cheap = 0
        self._score += (1 - self._score) * _SCORE_WEIGHT
        if self._score > 0.5:  # slow reads are the rule: threads for a while
            self._score = 0.0
            self._cost = None
            self._retry_at = perf_counter() + self._backoff
            self._backoff = min(2 * self._backoff, _MAX_BACKOFF)


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

    With ``read_inline``, a get that :attr:`inline` allows (a cheap one: see
    :class:`InlineReads`) skips all that: it is read at once, in the caller's
    thread, alone.

    Parameters
    ----------
    fetch : async callable
        ``fetch([(key, byte_range), ...]) -> [value or None, ...]``, in order,
        None for a missing key.
    read_inline : callable, optional
        The same, blocking: what an inline read calls (with one request).
    inline : InlineReads, optional
        The policy for ``read_inline``; a new one by default.

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

    def __init__(
        self,
        fetch: FetchRequests,
        read_inline: ReadRequests | None = None,
        *,
        inline: InlineReads | None = None,
    ) -> None:
        self._fetch = fetch
        self._read_inline = read_inline
        #: When a get is read inline, alone (None: never; see :class:`InlineReads`).
        self.inline = None if read_inline is None else inline or InlineReads()
        # The batch being gathered, with the thread of its event loop in it: one
        # attribute, so a reader in another thread never joins another loop's batch.
        self._open: _Batch | None = None

    async def get(self, key: str, byte_range: tuple[int, int | None] | None = None) -> bytes | None:
        """Return ``key``'s value (or its ``byte_range``), or None if it is missing."""
        request = (key, byte_range)
        inline = self.inline
        if inline is not None and self._read_inline is not None and inline.allowed():
            start = perf_counter()
            try:
                [value] = self._read_inline([request])
            finally:
                inline.record(perf_counter() - start)
            return value
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
