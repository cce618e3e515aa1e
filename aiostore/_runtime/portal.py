"""One long-lived background event loop for the sync side.

The sync methods of natively async stores run their async twins here
(blocking backends call their blocking code directly instead). The loop runs in one
daemon thread started on first use, is checked alive before each call, is
forgotten in a forked child (which starts its own on first use), and refuses
-- with an error, never a deadlock -- a call made from its own thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiostore._runtime.offload import executor_hops

__all__ = ["run_on_portal", "portal_thread", "portal_loop", "spawn_on_portal"]

T = TypeVar("T")


class _Portal:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(
            target=self._serve, args=(started,), name="aiostore-portal", daemon=True
        )
        self.thread.start()
        started.wait()

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()

    def alive(self) -> bool:
        return self.thread.is_alive() and not self.loop.is_closed()


_lock = threading.Lock()
_portal: _Portal | None = None


def _get_portal() -> _Portal:
    global _portal
    portal = _portal
    if portal is not None and portal.alive():
        return portal
    with _lock:
        if _portal is None or not _portal.alive():
            _portal = _Portal()
        return _portal


def portal_thread() -> threading.Thread | None:
    """The portal's thread, if it was started in this process."""
    return _portal.thread if _portal is not None else None


def portal_loop() -> asyncio.AbstractEventLoop:
    """The background loop, started if needed, for work scheduled there without
    waiting for it (:func:`spawn_on_portal`; ``call_soon_threadsafe`` with
    ``context=contextvars.Context()``, for the reason given there).

    >>> portal_loop().is_running()
    True
    """
    return _get_portal().loop


def spawn_on_portal(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Start ``coro`` on the background loop; return its future without waiting.

    The coroutine runs in an empty ``contextvars`` context, not a copy of the
    caller's: under anyio-on-trio the caller's context says "trio" to sniffio
    (so anyio code on this asyncio loop would call trio).

    >>> async def answer() -> int:
    ...     return 42
    >>> spawn_on_portal(answer()).result()
    42
    """
    return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, _get_portal().loop)


def run_on_portal(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result.

    >>> async def answer() -> int:
    ...     return 42
    >>> run_on_portal(answer())
    42
    """
    portal = _get_portal()
    if threading.current_thread() is portal.thread:
        coro.close()
        raise RuntimeError(
            "aiostore sync API called from aiostore's own background event loop; "
            "use the async API there (this would deadlock)"
        )
    future = contextvars.Context().run(asyncio.run_coroutine_threadsafe, _hopping(coro), portal.loop)
    return future.result()


async def _hopping(coro: Coroutine[Any, Any, T]) -> T:
    # The portal loop runs with run_forever: anyio's thread hops are slow there
    # (see executor_hops), asyncio's executor is not.
    with executor_hops():
        return await coro


def _forget_after_fork() -> None:
    global _portal, _lock
    _portal = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
