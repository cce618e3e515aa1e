"""One open dbm object per database per process, shared by its DBMStores, with its lock.

A dbm object keeps state in memory (``dbm.dumb`` its whole index, until sync or
close), so two dbm objects on one file in one process lose each other's keys:
whichever closes last writes its index over the other's. Dask and zarr 2 open a
copy of a store per task (unpickled) in one worker process, so every
:class:`~aiostore.stores.dbm.DBMStore` of a process on a path shares one
:class:`SharedDB`: one dbm object, one lock that serialises its use, and one
:class:`~aiostore.stores._writerlock.FileLock` on ``<path>.lock`` (shared while
the process only reads, exclusive once it writes). It is refcounted: each store
holds a :class:`Lease`, and the last one released syncs and closes the database.

>>> import dbm.dumb, os, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "x.db")
>>> first = acquire_db(path, "c", 0o666, dbm.dumb.open, {})
>>> second = acquire_db(path, "r", 0o666, dbm.dumb.open, {})
>>> first.shared is second.shared, first.shared.users, first.shared.writable
(True, 2, True)
>>> first.release(); second.release(); first.shared.closed
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from aiostore._runtime.forks import renew_after_fork
from aiostore.errors import BackendError, ClosedStoreError, SettingsConflictError
from aiostore.stores._writerlock import FileLock

__all__ = ["READ_MODE", "Lease", "SharedDB", "acquire_db", "open_database", "reopen_flag"]

#: How to open a DBMStore without writing, for error messages.
READ_MODE = "flag='r'"


def reopen_flag(flag: str) -> str:
    """The flag to open an open database again with: never ``"n"``, which would empty it.

    >>> reopen_flag("nf"), reopen_flag("w")
    ('cf', 'w')
    """
    return "c" + flag[1:] if flag[0] == "n" else flag


def open_database(opener: Callable[..., Any], path: str, flag: str, mode: int, kwargs: dict[str, Any]) -> Any:
    """``opener(path, flag, mode, **kwargs)``; a failure that is not a file-system error
    naming its file is a :class:`~aiostore.errors.BackendError` naming ``path``."""
    try:
        return opener(path, flag, mode, **kwargs)
    except OSError as exc:
        if exc.errno is not None and exc.filename is not None:
            raise  # a file-system error, naming its file
        raise BackendError(path, f"cannot open it as a DBM database ({exc})") from exc
    except Exception as exc:  # dbm.error, or a dbm.dumb index that does not parse
        raise BackendError(path, f"cannot open it as a DBM database ({type(exc).__name__}: {exc})") from exc


def _close_database(db: Any) -> None:
    close = getattr(db, "close", None)
    if close is not None:
        close()


class SharedDB:
    """The open database of a path in this process: its dbm object (:attr:`db`), the
    lock around every use of it (:attr:`lock`) and its :class:`FileLock`.

    Opened read-only (``"r"``, a shared file lock) or writable (an exclusive one);
    :meth:`make_writable` switches a read-only one over at the first write.
    """

    def __init__(
        self, path: str, flag: str, mode: int, opener: Callable[..., Any], kwargs: dict[str, Any]
    ) -> None:
        self.path = path
        self.mode = mode
        self.opener = opener
        self.open_kwargs = dict(kwargs)
        #: The flag the dbm object was opened with.
        self.flag = flag
        self.writable = flag[0] != "r"
        #: The process that opened it: a forked child inherits it, and must not write.
        self.pid = os.getpid()
        self.users = 0
        self.closed = False
        self.lock = threading.RLock()
        self._lock_pid = self.pid
        self.file_lock = FileLock(path, "DBMStore", exclusive=self.writable, read_mode=READ_MODE)
        try:
            self.db: Any = open_database(opener, path, flag, mode, self.open_kwargs)
        except BaseException:
            self.file_lock.release()
            raise
        renew_after_fork(self, SharedDB.renew)

    @property
    def inherited(self) -> bool:
        """True in a process forked from the one that opened it."""
        return self.pid != os.getpid()

    def renew(self) -> None:
        """In a forked child: a new :attr:`lock` (a thread of the parent may have held
        it). Idempotent: the stores sharing it call it too."""
        if self._lock_pid != os.getpid():
            self.lock = threading.RLock()
            self._lock_pid = os.getpid()

    def _open(self, flag: str) -> Any:
        return open_database(self.opener, self.path, flag, self.mode, self.open_kwargs)

    def make_writable(self, flag: str) -> None:
        """Take the exclusive file lock and reopen the database with ``flag`` (never
        ``"n"``); raises :class:`~aiostore.errors.StoreLockedError` if another
        process reads or writes it."""
        with self.lock:
            if self.writable:
                return
            if self.db is None:
                raise ClosedStoreError(f"the DBM database {self.path!r} is closed")
            self.file_lock.upgrade()
            # Closed first: gdbm refuses a writer while a reader of this process has it open.
            old, self.db = self.db, None
            try:
                _close_database(old)
                self.db = self._open(reopen_flag(flag))
            except BaseException:
                self.file_lock.downgrade()
                with contextlib.suppress(Exception):
                    self.db = self._open("r")
                raise
            self.flag = reopen_flag(flag)
            self.writable = True

    def sync(self) -> None:
        """Write what the dbm object holds in memory to its files (writable, in the
        process that opened it; otherwise nothing)."""
        with self.lock:
            db = self.db
            if not self.writable or db is None or self.inherited:
                return
            sync = getattr(db, "sync", None)
            if sync is not None:
                sync()
                return
            # dbm.ndbm has no sync: closing writes everything; reopen without "n",
            # which would empty the database.
            self.db = None
            _close_database(db)
            self.db = self._open(reopen_flag(self.flag))

    def close(self) -> None:
        """Close the dbm object (which writes its index) and let go of the file lock."""
        with self.lock:
            self.closed = True
            db, self.db = self.db, None
            try:
                if db is not None:
                    _close_database(db)
            finally:
                self.file_lock.release()


#: The open databases of this process, by real path.
_OPEN: dict[str, SharedDB] = {}
_OPEN_LOCK = threading.Lock()
#: Leases dropped by their stores' finalizers. A finalizer runs inside whatever
#: code the collection interrupted -- maybe this module's own section, or a batch
#: holding a database's lock that a section waits for -- so it never waits: it
#: leaves the lease here for whoever holds the section, or takes it if free.
_PENDING: list[Lease] = []
#: dbm objects inherited through fork whose last store here let go: kept, never
#: closed (closing a parent's dbm.dumb object here would write its index file).
_INHERITED: list[Any] = []


def _drain() -> None:
    """Release the pending leases (inside the section). No one is left to tell of a
    failure to close a database that its stores dropped without closing."""
    while _PENDING:
        with contextlib.suppress(Exception):
            _PENDING.pop().release_now()


@contextlib.contextmanager
def _registry() -> Iterator[None]:
    """The registry's section: the pending leases are released at its end."""
    with _OPEN_LOCK:
        try:
            yield
        finally:
            _drain()
    if _PENDING:  # left by a finalizer while this section held the lock
        _drain_if_free()


def _drain_if_free() -> None:
    if _OPEN_LOCK.acquire(blocking=False):
        try:
            _drain()
        finally:
            _OPEN_LOCK.release()


class Lease:
    """One store's share of a :class:`SharedDB`; :meth:`release` once (more is a no-op)."""

    def __init__(self, shared: SharedDB) -> None:
        self.shared = shared
        self.released = False

    def release(self) -> None:
        """Let go; the last share of the process syncs and closes the database."""
        with _registry():
            self.release_now()

    def release_soon(self) -> None:
        """:meth:`release`, for a finalizer: now if no one is in the section, else at its end."""
        _PENDING.append(self)
        _drain_if_free()

    def release_now(self) -> None:
        """:meth:`release`, inside the registry's section."""
        if self.released:
            return
        self.released = True
        shared = self.shared
        shared.users -= 1
        if shared.users > 0:
            return
        key = os.path.realpath(shared.path)
        if _OPEN.get(key) is shared:
            del _OPEN[key]
        if shared.inherited:
            _INHERITED.append(shared.db)
            shared.closed = True
            return
        shared.close()


def acquire_db(path: str, flag: str, mode: int, opener: Callable[..., Any], kwargs: dict[str, Any]) -> Lease:
    """A share of this process's open database at ``path``, opened with ``flag`` if it is
    not open yet, made writable if ``flag`` writes and it is open read-only.

    A database open here already must be opened with the same ``opener`` and
    ``kwargs`` (:class:`~aiostore.errors.SettingsConflictError`, a ValueError),
    and not with ``"n"``, which would empty it under the stores using it.
    """
    key = os.path.realpath(path)
    for attempt in range(2):
        with _registry():
            shared = _OPEN.get(key)
            if shared is not None and (shared.closed or shared.inherited):
                shared = None  # a forked child opens its own (its parent holds the lock)
            if shared is None:
                shared = SharedDB(path, flag, mode, opener, kwargs)
                _OPEN[key] = shared
            else:
                differences = _differences(shared, flag, opener, kwargs)
                if differences and attempt:
                    raise SettingsConflictError(path, differences)
                if differences:
                    shared = None  # unless the stores holding it are garbage: collected below
                elif flag[0] != "r":
                    shared.make_writable(flag)
            if shared is not None:
                shared.users += 1
                return Lease(shared)
        # Stores dropped without being closed (zarr 2 never closes its) let go of
        # the database when collected: a cycle may hold them.
        gc.collect()
    raise AssertionError("unreachable")  # pragma: no cover


def _differences(
    shared: SharedDB, flag: str, opener: Callable[..., Any], kwargs: dict[str, Any]
) -> dict[str, tuple[object, object]]:
    """How opening with these settings differs from the open ``shared``."""
    differences: dict[str, tuple[object, object]] = {}
    if shared.opener != opener:
        differences["open"] = (shared.opener, opener)
    for name in sorted(set(shared.open_kwargs) | set(kwargs)):
        there, here = shared.open_kwargs.get(name, "default"), kwargs.get(name, "default")
        if there != here:
            differences[name] = (there, here)
    if flag[0] == "n":
        differences["flag"] = (shared.flag, flag)
    return differences


def _renew_after_fork() -> None:
    """In a forked child: a thread of the parent may have held the lock at the fork."""
    global _OPEN_LOCK
    _OPEN_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_after_fork)
# What finalizers left when the interpreter exits (they run at exit, before this).
atexit.register(_drain_if_free)
