"""What every command shares: opening stores by URL, running a coroutine, sizes for people.

>>> human_size(512), human_size(1536), human_size(5 * 2**30)
('512 B', '1.5 KiB', '5.0 GiB')
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio

from aiostore.abc import Store
from aiostore.cli._errors import UserError
from aiostore.stores.urls import open_store

__all__ = ["human_size", "opened", "run"]

T = TypeVar("T")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def run(function: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function to its end in a new event loop (asyncio)."""
    return anyio.run(function)


def human_size(size: int) -> str:
    """A byte count in binary units, one decimal (``1.2 MiB``); bytes as they are below 1 KiB."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@asynccontextmanager
async def opened(url: str, mode: str = "r", role: str = "store") -> AsyncIterator[Store]:
    """The store ``url`` names, closed on the way out (a Zip file is readable only once closed).

    ``role`` ("store", "source", "destination") names it in errors: a store that
    does not exist is a :class:`UserError` saying so, and one opened to be written
    (``mode`` other than ``"r"``) that is read-only is refused before anything is read.
    """
    try:
        store = await open_store(url, mode=mode)
    except FileNotFoundError as exc:
        raise UserError(f"{role} {url!r} does not exist (no such file or directory)") from exc
    try:
        if mode != "r" and store.read_only:
            raise UserError(f"{role} {url!r} is read-only: nothing can be written there")
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
