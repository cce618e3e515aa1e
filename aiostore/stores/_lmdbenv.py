"""One ``lmdb.Environment`` per database per process, with a gate for map resizes and forks.

LMDB forbids opening one database twice in a process (its fcntl locks belong to
the process, and py-lmdb refuses a second open), so every
:class:`~aiostore.stores.lmdb.LMDBStore` on a database shares one :class:`SharedEnv`.
Resizing the map (``set_mapsize``) and closing need no transaction of this
process to be active, so transactions enter a shared section and those two wait
for an exclusive turn.

``fork`` takes one too: LMDB's environments must not be used in a forked child,
so a child opens its own, on the same database, before its first transaction.
It first closes its copy of the parent's, which py-lmdb requires before a second
open; that copy must hold no transaction then -- closing a transaction's copy in
the child releases the parent's reader slot in the shared lock file -- so the
fork waits for the transactions in flight to end (and holds new ones back until
it is done), and no read transaction is kept for reuse (``max_spare_txns=0``).

Read snapshots (:mod:`~aiostore.stores._lmdbsnapshot`: read transactions kept
open while buffers into them are alive) are counted here. While any is alive the
map is never replaced (a resize would unmap the pages under the buffers: it
waits for them briefly, then fails clearly), and closing is deferred until the
last one ends (new operations are refused at once). A fork does not wait for
them (they may live for ever), and a child never ends the parent's: it drops
them unended when it replaces the parent's environment with its own, at its
first transaction -- which unmaps the parent's map in the child. So buffers read
before a fork stay readable in the child only until then; a child must not use
them after (nor could it rely on them before: only the parent's snapshot
protects them, for as long as the parent holds it). Threads of the parent that
held buffers at the fork never release them in the child, so the child cannot
wait for inherited buffers to go.

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
import time
import weakref
from collections.abc import Callable, Collection
from typing import Any, Protocol, TypeVar

import lmdb

from aiostore._runtime.forks import renew_after_fork
from aiostore.errors import BackendError, ClosedStoreError, SettingsConflictError
from aiostore.stores._lmdbsettings import check_open_kwargs, open_settings
from aiostore.stores._lmdbsnapshot import SnapshotCache

__all__ = [
    "SharedEnv",
    "acquire_env",
    "check_open_kwargs",
    "check_same_settings",
    "open_settings",
    "release_env",
]

R = TypeVar("R")

#: Seconds a map resize waits for live read snapshots to end before it fails.
SNAPSHOT_WAIT = 2.0


class Pinning(Protocol):
    """A live read snapshot, as the environment sees it."""

    def alive(self) -> bool:
        """Whether buffers into it may still be alive (in a forked child: inherited ones)."""
        ...

    def detach(self) -> None:
        """In a forked child: drop the parent's transaction, unended."""
        ...


class SharedEnv:
    """One ``lmdb.Environment`` per database per process, shared by its stores.

    LMDB forbids opening one database twice in a process (its fcntl locks
    belong to the process), so stores on the same database share this. It
    also keeps count of the transactions in flight: resizing the map,
    closing and forking need none to be active in this process, so those
    wait for an exclusive turn (and new transactions wait for them). In a
    forked child, the first transaction opens the child's own environment.
    """

    def __init__(self, path: str, kwargs: dict[str, Any]) -> None:
        self.path = path
        #: The settings it was opened with (map_size as asked, not as grown since).
        self.kwargs = dict(kwargs)
        self.readonly = bool(kwargs.get("readonly", False))
        self._open()
        self.users = 0
        self.closed = False
        #: Bumped by every resize, so that writers that hit a full map at the
        #: same time grow it once.
        self.resizes = 0
        # Reentrant: a snapshot may end (in a weakref callback, during a collection)
        # in a thread that already holds it.
        self._cond = threading.Condition(threading.RLock())
        self._active = 0
        self._exclusive_waiting = 0
        self._exclusive = False
        #: Held while a snapshot ends, and by a fork: a fork never copies one half-ended.
        self.end_lock = threading.RLock()
        self._snapshots: set[Pinning] = set()
        self._close_pending = False
        #: The read snapshot that reads with no write in between share.
        self.snapshots = SnapshotCache()
        # In a forked child until its first transaction: the parent's environment,
        # to close (never to use) before the child opens its own.
        self._reopen = False
        self._parents: lmdb.Environment | None = None
        _LIVE.add(self)
        renew_after_fork(self, type(self)._renew_in_child)

    def _open(self) -> None:
        try:
            self.env = lmdb.open(self.path, **self.kwargs)
        except lmdb.Error as exc:
            raise BackendError(self.path, f"cannot open it as an LMDB database: {exc}") from exc
        self.max_key_size = self.env.max_key_size()
        self.main_db = self.env.open_db()
        self.pid = os.getpid()

    def current_env(self) -> lmdb.Environment:
        """This process's ``lmdb.Environment`` (in a forked child, its own, opened now)."""
        self.acquire()
        self.release()
        return self.env

    def acquire(self) -> lmdb.Environment:
        """Enter a transaction section (call :meth:`release` after)."""
        with self._cond:
            while self._exclusive or self._exclusive_waiting:
                self._cond.wait()
            if self.closed:
                raise ClosedStoreError(f"the LMDB environment {self.path!r} is closed")
            if self._reopen:
                self._reopen_locked()
            self._active += 1
        return self.env

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active and self._exclusive_waiting:
                self._cond.notify_all()

    def run_exclusive(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` while no transaction of this process is active."""
        self.hold()
        try:
            return fn()
        finally:
            self.unhold()

    def hold(self) -> None:
        """Wait until no transaction of this process is active, and hold new ones
        back until :meth:`unhold` (a fork holds every environment so)."""
        with self._cond:
            self._exclusive_waiting += 1
            try:
                while self._exclusive or self._active:
                    self._cond.wait()
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True

    def unhold(self) -> None:
        """Let transactions run again."""
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()

    def close(self) -> None:
        """Close the environment once no transaction of this process is active, or,
        while read snapshots are alive, once the last one ends (:meth:`revive` undoes that)."""

        def close() -> None:
            with self._cond:
                if self._snapshots and not self._reopen:  # a child's are the parent's: dropped
                    self._close_pending = True
                else:
                    self._close_now()

        self.run_exclusive(close)

    def _close_now(self) -> None:
        self.closed = True
        self._forget_parents()
        if not self._reopen and self.pid == os.getpid():  # else: the parent's (a fork
            self.env.close()  # that ran no fork hooks): closing it here could hurt it

    @property
    def closing(self) -> bool:
        """Closed by its stores, and kept open by buffers still alive (see :meth:`close`)."""
        return self._close_pending and not self.closed

    def revive(self) -> bool:
        """A new store joins: cancel a deferred close. False if it is closed already."""
        with self._cond:
            self._close_pending = False
            return not self.closed

    # -- read snapshots ----------------------------------------------------------------
    @property
    def live_snapshots(self) -> int:
        """Read snapshots alive in this process (buffers into them are alive)."""
        return len(self._snapshots)

    def snapshot_started(self, snapshot: Pinning) -> None:
        """Count ``snapshot`` (call inside a transaction section)."""
        with self._cond:
            self._snapshots.add(snapshot)

    def snapshot_ended(self, snapshot: Pinning) -> None:
        """``snapshot`` ended: the last one lets a resize run, or a deferred close."""
        with self._cond:
            self._snapshots.discard(snapshot)
            if not self._snapshots:
                self._cond.notify_all()
                if self._close_pending and not self.closed:
                    self._close_now()

    def _no_snapshots(self, what: str) -> None:
        """Inside an exclusive turn: wait a little for the live snapshots to end, or fail."""
        deadline = time.monotonic() + SNAPSHOT_WAIT
        with self._cond:
            while self._snapshots and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._snapshots:
                raise BackendError(
                    self.path,
                    f"{what}: LMDB cannot map a new size while buffers returned by reads are "
                    f"alive ({len(self._snapshots)} read snapshots are held by them; the pages "
                    f"under them would be unmapped). Release those buffers, read with "
                    f"buffers=False, or open with a larger map_size",
                )

    # -- fork ----------------------------------------------------------------------------
    def _renew_in_child(self) -> None:
        """In a forked child, first thing: fresh locks, and the environment in use
        becomes the parent's, replaced before the child's first transaction."""
        self._cond = threading.Condition(threading.RLock())
        self.end_lock = threading.RLock()
        self._active = self._exclusive_waiting = 0
        self._exclusive = False
        # The parent's snapshots: never ended here, dropped when the child opens its own.
        self._snapshots = {s for s in self._snapshots if s.alive()}
        self.snapshots.renew_in_child()
        if not self.closed and not self._reopen:  # else: still the grandparent's
            self._parents, self._reopen = self.env, True

    def _reopen_locked(self) -> None:
        """The child's first transaction: open the child's own environment."""
        spares = self.kwargs.get("max_spare_txns", 0)
        self._forget_parents()
        try:
            self._open()
        except BackendError as exc:
            if not spares:
                raise
            raise BackendError(
                self.path,
                f"a forked child cannot open its own LMDB environment while the parent's copy "
                f"stays open, as it must with max_spare_txns={spares} (closing it would release "
                f"the parent's cached readers); use max_spare_txns=0, or the 'spawn' or "
                f"'forkserver' start methods ({exc.__cause__})",
            ) from exc
        self._reopen = False

    def _forget_parents(self) -> None:
        """Close the child's copy of the parent's environment: the fork waited for
        every transaction (see :func:`_hold_all`), so it holds no reader slot --
        unless read transactions are kept for reuse: then it stays open, unused."""
        parents, self._parents = self._parents, None
        if parents is None:
            return
        # Read snapshots inherited from the parent: their transactions are dropped,
        # never ended (that would free the parent's reader slots), so that closing
        # the environment does not end them either. Their buffers die with its map.
        for snapshot in self._snapshots:
            snapshot.detach()
        self._snapshots.clear()
        if self.kwargs.get("max_spare_txns", 0):
            _KEPT.append(parents)
        else:
            parents.close()

    def grow(self, resizes_seen: int) -> None:
        """Double the map after MDB_MAP_FULL (unless another writer already did)."""

        def grow() -> None:
            if self.closed or self.resizes != resizes_seen:
                return
            size = self.env.info()["map_size"]
            self._no_snapshots(
                f"the LMDB database is full at map_size={size} and nothing of the write was stored"
            )
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
                self._no_snapshots("another process grew the LMDB map")
                self.env.set_mapsize(0)
                self.resizes += 1

        self.run_exclusive(adopt)


#: Open environments by database. Weak: when every store on a database is gone
#: without being closed, the environment is freed (py-lmdb closes it then).
_ENVS: weakref.WeakValueDictionary[str, SharedEnv] = weakref.WeakValueDictionary()
_ENVS_LOCK = threading.Lock()
#: Every environment alive, for the fork hooks; those held during a fork.
_LIVE: weakref.WeakSet[SharedEnv] = weakref.WeakSet()
_HELD: list[SharedEnv] = []
#: In a forked child: the parent's environments it keeps open, never to use.
_KEPT: list[lmdb.Environment] = []


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
            try:
                check_same_settings(shared, path, kwargs, readonly, kwargs if asked is None else asked)
            except SettingsConflictError as exc:
                if shared.closing:
                    exc.add_note(
                        f"Its stores are closed, but buffers read through them are alive and keep it "
                        f"open ({shared.live_snapshots} read snapshots): release them first."
                    )
                raise
            if not shared.revive():  # its deferred close just happened
                shared = _ENVS[key] = SharedEnv(path, kwargs)
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


def release_env(shared: SharedEnv) -> None:
    """A store is done with ``shared``: the last one closes it."""
    with _ENVS_LOCK:
        shared.users -= 1
        if shared.users <= 0 and not shared.closed:
            shared.close()


def _hold_all() -> None:
    """Before ``fork``: wait for every transaction in flight, and hold new ones
    back, so that the child's copies of the environments hold none."""
    _ENVS_LOCK.acquire()  # and no environment is being opened or closed
    for shared in list(_LIVE):
        if not shared.closed:
            shared.hold()
            shared.end_lock.acquire()  # and no read snapshot is ending
            _HELD.append(shared)


def _unhold_all() -> None:
    """After ``fork``, in the parent: let transactions run again."""
    while _HELD:
        shared = _HELD.pop()
        shared.end_lock.release()
        shared.unhold()
    _ENVS_LOCK.release()


def _renew_module() -> None:
    """After ``fork``, in the child (each environment renews itself)."""
    global _ENVS_LOCK
    _ENVS_LOCK = threading.Lock()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_hold_all, after_in_parent=_unhold_all, after_in_child=_renew_module)
