"""One ``lmdb.Environment`` per database per process, with a gate for map resizes.

LMDB forbids opening one database twice in a process (its fcntl locks belong to
the process, and py-lmdb refuses a second open), so every
:class:`~aiostore.stores.lmdb.LMDBStore` on a database shares one :class:`SharedEnv`.
Resizing the map (``set_mapsize``) and closing need no transaction of this
process to be active, so transactions enter a shared section and those two wait
for an exclusive turn.

>>> import os, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "db")
>>> first = acquire_env(path, {"map_size": 2**20}, readonly=False)
>>> acquire_env(path, {}, readonly=True) is first, first.users
(True, 2)
>>> env = first.acquire()  # a transaction section
>>> with env.begin(write=True) as txn:
...     txn.put(b"k", b"v")
True
>>> first.release()
>>> release_env(first); release_env(first); first.closed
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import lmdb

from aiostore.errors import ClosedStoreError

__all__ = ["SharedEnv", "acquire_env", "release_env"]

R = TypeVar("R")


class SharedEnv:
    """One ``lmdb.Environment`` per database per process, shared by its stores.

    LMDB forbids opening one database twice in a process (its fcntl locks
    belong to the process), so stores on the same database share this. It
    also keeps count of the transactions in flight: resizing the map or
    closing needs none to be active in this process, so those wait for an
    exclusive turn (and new transactions wait for them).
    """

    def __init__(self, path: str, kwargs: dict[str, Any]) -> None:
        self.env = lmdb.open(path, **kwargs)
        self.path = path
        self.readonly = bool(kwargs.get("readonly", False))
        self.max_key_size = self.env.max_key_size()
        self.main_db = self.env.open_db()
        self.pid = os.getpid()
        self.users = 0
        self.closed = False
        #: Bumped by every resize, so that writers that hit a full map at the
        #: same time grow it once.
        self.resizes = 0
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._exclusive_waiting = 0
        self._exclusive = False

    def acquire(self) -> lmdb.Environment:
        """Enter a transaction section (call :meth:`release` after)."""
        with self._cond:
            while self._exclusive or self._exclusive_waiting:
                self._cond.wait()
            if self.closed:
                raise ClosedStoreError(f"the LMDB environment {self.path!r} is closed")
            self._active += 1
        return self.env

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active and self._exclusive_waiting:
                self._cond.notify_all()

    def run_exclusive(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` while no transaction of this process is active."""
        with self._cond:
            self._exclusive_waiting += 1
            try:
                while self._exclusive or self._active:
                    self._cond.wait()
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            return fn()
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()

    def grow(self, resizes_seen: int) -> None:
        """Double the map after MDB_MAP_FULL (unless another writer already did)."""

        def grow() -> None:
            if self.closed or self.resizes != resizes_seen:
                return
            size = self.env.info()["map_size"]
            try:
                self.env.set_mapsize(size * 2)
            except lmdb.Error as exc:
                raise OSError(
                    f"LMDB database {self.path!r} is full at map_size={size} and its map "
                    f"could not grow to {size * 2} bytes: {exc}"
                ) from exc
            self.resizes += 1

        self.run_exclusive(grow)

    def adopt_new_size(self) -> None:
        """Another process grew the map (MDB_MAP_RESIZED): map the new size."""

        def adopt() -> None:
            if not self.closed:
                self.env.set_mapsize(0)
                self.resizes += 1

        self.run_exclusive(adopt)


#: Open environments by database. Weak: when every store on a database is gone
#: without being closed, the environment is freed (py-lmdb closes it then).
_ENVS: weakref.WeakValueDictionary[str, SharedEnv] = weakref.WeakValueDictionary()
_ENVS_LOCK = threading.Lock()


def _data_file(path: str, subdir: bool) -> str:
    return os.path.join(path, "data.mdb") if subdir else path


def acquire_env(path: str, kwargs: dict[str, Any], readonly: bool) -> SharedEnv:
    subdir = bool(kwargs.get("subdir", True))
    key = os.path.realpath(path) + ("/" if subdir else "")
    with _ENVS_LOCK:
        shared = _ENVS.get(key)
        if shared is not None and (shared.closed or not os.path.exists(_data_file(path, subdir))):
            # Closed, or its files were deleted under it: a database at this
            # path now is a different one.
            shared = None
        if shared is None:
            shared = SharedEnv(path, kwargs)
            _ENVS[key] = shared
        elif shared.readonly and not readonly:
            raise ValueError(
                f"the LMDB database {path!r} is already open read-only in this process; "
                "close those stores before opening it for writing"
            )
        shared.users += 1
        return shared


def release_env(shared: SharedEnv) -> None:
    with _ENVS_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        if shared.pid != os.getpid():
            # Inherited through fork: closing it here aborts this process's copies
            # of the parent's transactions, which can free reader slots the parent
            # still uses in the shared lock file. Leave it to the parent.
            return

        def close() -> None:
            shared.closed = True
            shared.env.close()

        shared.run_exclusive(close)
