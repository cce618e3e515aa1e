"""``open_store`` on the sync side: the store a URL names, as its sync twin."""

from __future__ import annotations

from typing import Any

from aiostore._runtime.portal import run_on_portal
from aiostore.stores import urls
from aiostore.sync._store import SyncStore
from aiostore.sync._twins import as_twin

__all__ = ["open_store"]


def open_store(url: str, mode: str = "a", **options: Any) -> SyncStore[Any]:
    """Blocking :func:`aiostore.open_store`: the store as its sync twin.

    >>> store = open_store("memory://")
    >>> store["a"] = b"1"
    >>> type(store).__name__, store["a"]
    ('MemoryStore', b'1')
    """
    return as_twin(run_on_portal(urls.open_store(url, mode, **options)))
