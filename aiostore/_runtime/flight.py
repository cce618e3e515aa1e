"""Single-flight fetches that readers in any thread or event loop can wait for.

A :class:`Flight` stands for one call to a slow store that is under way. Other
readers that want one of its keys wait for it instead of fetching again. The
readers may live in the same event loop as the fetch or in another thread's
event loop (asyncio or trio; the sync side's readers wait on aiostore's
background loop). A waiter waits on an ``anyio.Event`` that the finishing
thread sets through the waiter's own loop (``call_soon_threadsafe`` /
``run_sync_soon``); an anyio event must only be set from its loop's thread.

The state of a flight is guarded by a lock its owner (the cache) passes in, so
registering a waiter and finishing the flight never race.

>>> import threading
>>> lock = threading.Lock()
>>> flight = Flight(prefetch=False)
>>> flight.finish(lock, {"a": b"1"}, None)
>>> flight.outcome("a"), flight.outcome("b")
(b'1', None)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import anyio
import sniffio

__all__ = ["Flight", "RETRY"]


class _Retry:
    """Marker: the flight ended without an answer usable by this waiter."""

    def __repr__(self) -> str:
        return "RETRY"


#: :meth:`Flight.outcome` for a waiter that must fetch the key itself: the
#: fetch was cancelled, or it was a prefetch that failed (a prefetch's error is
#: never handed to a reader; the reader tries again and sees its own error).
RETRY = _Retry()


def _loop_waker() -> Callable[[Callable[[], object]], object]:
    """A thread-safe "run this soon in the current event loop" function."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    return asyncio.get_running_loop().call_soon_threadsafe


class Flight:
    """One fetch under way, for keys other readers may wait for.

    Parameters
    ----------
    prefetch : bool
        True for a background prefetch: its errors are not handed to waiters.
    """

    __slots__ = ("done", "error", "found", "prefetch", "thread", "waiters", "waiting")

    def __init__(self, *, prefetch: bool) -> None:
        self.prefetch = prefetch
        self.done = False
        self.found: dict[str, bytes] | None = None
        self.error: BaseException | None = None
        #: The thread whose event loop runs the fetch.
        self.thread = threading.get_ident()
        self.waiters: list[tuple[anyio.Event, int, Callable[[Callable[[], object]], object]]] = []
        #: Readers waiting now (tests use it to know everyone has joined).
        self.waiting = 0

    def finish(
        self, lock: threading.Lock, found: dict[str, bytes] | None, error: BaseException | None
    ) -> None:
        """Record the result and wake every waiter (call once, without ``lock`` held).

        ``found`` is the store's answer; ``None`` with no ``error`` means the
        fetch was abandoned (cancelled) and waiters must retry.
        """
        with lock:
            self.found, self.error, self.done = found, error, True
            waiters, self.waiters = self.waiters, []
        me = threading.get_ident()
        for anyio_event, thread, waker in waiters:
            if thread == me:
                anyio_event.set()
            else:
                try:
                    waker(anyio_event.set)
                except Exception:  # the waiter's loop is gone: nobody left to wake
                    pass

    async def wait(self, lock: threading.Lock) -> None:
        """Return once the flight is done."""
        if self.done:
            return
        waker = _loop_waker()
        anyio_event = anyio.Event()
        with lock:
            if self.done:
                return
            self.waiters.append((anyio_event, threading.get_ident(), waker))
            self.waiting += 1
        try:
            await anyio_event.wait()
        finally:
            with lock:
                self.waiting -= 1

    def outcome(self, key: str) -> bytes | _Retry | None:
        """After :meth:`wait`: the value, ``None`` if missing, or :data:`RETRY`.

        Raises the fetch's error for a reader that joined another reader's fetch.
        """
        if self.found is not None:
            return self.found.get(key)
        if self.error is not None and not self.prefetch:
            raise self.error
        return RETRY
