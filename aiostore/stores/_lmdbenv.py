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
import sys
import threading
import weakref
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import lmdb

from aiostore.errors import BackendError, ClosedStoreError, SettingsConflictError

__all__ = [
    "SharedEnv",
    "acquire_env",
    "check_open_kwargs",
    "check_same_settings",
    "open_settings",
    "release_env",
]

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
        try:
            self.env = lmdb.open(path, **kwargs)
        except lmdb.Error as exc:
            raise BackendError(path, f"cannot open it as an LMDB database: {exc}") from exc
        self.path = path
        #: The settings it was opened with (map_size as asked, not as grown since).
        self.kwargs = dict(kwargs)
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
                raise BackendError(
                    self.path,
                    f"the LMDB database is full at map_size={size} and its map could not grow to "
                    f"{size * 2} bytes ({exc}); nothing of the write was stored",
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


def acquire_env(
    path: str, kwargs: dict[str, Any], readonly: bool, asked: Collection[str] | None = None
) -> SharedEnv:
    """The process's environment on ``path``, opened with ``kwargs`` if it is not open yet;
    if it is, the settings named in ``asked`` (default: all) must be the same."""
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
        else:
            check_same_settings(shared, path, kwargs, readonly, kwargs if asked is None else asked)
        shared.users += 1
        return shared


def check_same_settings(
    shared: SharedEnv, path: str, kwargs: dict[str, Any], readonly: bool, asked: Collection[str]
) -> None:
    """Refuse a second open of ``shared``'s database whose settings differ: it would
    share the first open's environment, so its own could not take effect.

    A read-only store may share a writable environment (it refuses writes
    itself), not the other way round.
    """
    differences = {
        name: (shared.kwargs.get(name, "default"), kwargs.get(name, "default"))
        for name in sorted(asked)
        if name != "readonly" and shared.kwargs.get(name, "default") != kwargs.get(name, "default")
    }
    if shared.readonly and not readonly:
        differences["readonly"] = (True, False)
    if differences:
        raise SettingsConflictError(path, differences)


#: lmdb.open's settings that are counts or sizes.
_COUNTS = ("map_size", "max_readers", "max_dbs", "max_spare_txns", "mode")
_FLAGS = (
    "subdir",
    "readonly",
    "metasync",
    "sync",
    "map_async",
    "create",
    "readahead",
    "writemap",
    "meminit",
    "lock",
)


def open_settings(kwargs: dict[str, Any], readonly: bool) -> dict[str, Any]:
    """``kwargs`` for :func:`lmdb.open` over LMDBStore's defaults (see its docs), checked.

    >>> open_settings({"map_size": 2**20}, readonly=True)["map_size"], open_settings({}, False)["writemap"]
    (1048576, False)
    """
    settings = {
        "map_size": 2**40 if sys.maxsize >= 2**32 else 2**28,
        "meminit": False,
        "writemap": False,
        "metasync": False,
        "sync": False,
        "map_async": False,
        "max_spare_txns": os.cpu_count() or 1,
        **kwargs,
    }
    if readonly:
        settings["readonly"] = True
    check_open_kwargs(settings)
    return settings


def check_open_kwargs(kwargs: dict[str, Any]) -> None:
    """ValueError or TypeError naming the setting, for what :func:`lmdb.open` would refuse
    with a message that does not name it (an unknown name, a negative size).

    >>> check_open_kwargs({"map_size": -1})
    Traceback (most recent call last):
    ...
    ValueError: LMDBStore map_size must be a positive integer, not -1
    """
    unknown = sorted(set(kwargs) - set(_COUNTS) - set(_FLAGS))
    if unknown:
        raise TypeError(
            f"LMDBStore got unknown lmdb.open settings {unknown}; it takes {sorted(_COUNTS + _FLAGS)}"
        )
    for name in _COUNTS:
        value = kwargs.get(name)
        if value is None:
            continue
        kind = "a positive integer" if name == "map_size" else "a non-negative integer"
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"LMDBStore {name} must be {kind}, not {value!r}")
        if value < (name == "map_size"):
            raise ValueError(f"LMDBStore {name} must be {kind}, not {value!r}")


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
