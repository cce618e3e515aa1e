"""Inline mode: driving a store's coroutines with no event loop at all.

The sync side (:mod:`aiostore.sync`) runs the same coroutines as the async
side. For stores whose coroutines never suspend (blocking backends, the memory
store), :func:`run_inline` drives them in the caller's thread and marks the
context, so that every thread offload becomes a direct call. The lowest layer:
:mod:`aiostore.abc` and :mod:`aiostore._runtime.offload` both ask :func:`is_inline`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["is_inline", "run_inline"]

T = TypeVar("T")

_INLINE: ContextVar[bool] = ContextVar("aiostore_inline", default=False)


def is_inline() -> bool:
    """True while :func:`run_inline` drives the current coroutine."""
    return _INLINE.get()


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends, with no event loop at all.

    Offloads inside it become direct calls in this thread. A coroutine that
    does suspend (it awaits real async I/O) is closed and refused.

    >>> from aiostore import MemoryStore
    >>> store = MemoryStore()
    >>> run_inline(store.set("a", b"1")); run_inline(store.get("a"))
    b'1'
    """
    token = _INLINE.set(True)
    try:
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        coro.close()
        raise RuntimeError(
            "this store's coroutine suspended while being run without an event loop; "
            "it is not a blocking backend (use aiostore.sync.SyncStore, which runs "
            "natively async stores on a background loop)"
        )
    finally:
        _INLINE.reset(token)
