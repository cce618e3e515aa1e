"""Code run in child processes by the object-store fault tests.

A module of its own so that a ``spawn`` child imports it (and nothing of pytest's).
"""

from __future__ import annotations

import os
import pickle
from typing import Any

__all__ = ["read_pickled"]


def read_pickled(blob: bytes, keys: list[str], conn: Any) -> None:
    """Unpickle a store and read ``keys`` every way it can.

    Sends ``("ok", results)`` or ``("error", repr of the exception)`` through ``conn``.
    """
    try:
        import anyio

        from aiostore.sync import SyncStore

        store = pickle.loads(blob)
        out: dict[str, Any] = {"pid": os.getpid(), "type": type(store).__name__, "repr": repr(store)}
        if isinstance(store, SyncStore):
            out["read_only"] = store.read_only
            out["sync"] = store.getitems(keys)
        else:
            out["read_only"] = store.read_only
            out["asyncio"] = anyio.run(store.get_many, keys)
            out["trio"] = anyio.run(store.get_many, keys, backend="trio")
            out["sync"] = store.get_many_sync(keys)
        conn.send(("ok", out))
    except BaseException as exc:
        conn.send(("error", repr(exc)))
    finally:
        conn.close()
