"""One writing process per file: an exclusive ``flock`` that a writable store takes at open.

Zip files and DBM databases keep their index in the writer's memory until it is
closed, so two processes writing one file at once silently lose each other's
entries (seen: a dask cluster writing a zarr array to a ZipStore left a file that
is not a Zip file, and to a DBMStore one that reads back as fill values). The
second writer is therefore refused at open with
:class:`~aiostore.errors.StoreLockedError`, which says why.

Stores of one process share the lock (zarr 2 opens a pickled copy of a store in
the same process, and those copies take turns through the store's own lock);
a forked child does not inherit it: it must take the lock itself, and cannot
while the parent holds it. The lock is an ``flock`` on the file itself, or on a
``<path>.lock`` file next to it where the format may replace its files (a new
DBM database is written to new files); that one is removed again on release.
Where ``fcntl`` is missing (Windows) no lock is taken.

>>> import os, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "data.bin")
>>> first = lock_for_writing(path, "ZipStore", sidecar=False)
>>> second = lock_for_writing(path, "ZipStore", sidecar=False)  # this process already holds it
>>> first.release(); second.release(); tmp.cleanup()
"""

from __future__ import annotations

import os
import threading

from aiostore.errors import StoreLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "lock_for_writing"]


class _Held:
    """This process's open, locked descriptor for one file, and its users."""

    def __init__(self, fd: int, lock_path: str, sidecar: bool) -> None:
        self.fd = fd
        self.lock_path = lock_path
        self.sidecar = sidecar
        self.pid = os.getpid()
        self.users = 0


_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()


class WriterLock:
    """A store's share of its process's writer lock on one file; :meth:`release` once."""

    def __init__(self, key: str, held: _Held | None) -> None:
        self._key = key
        self._held = held
        self._released = False

    def release(self) -> None:
        """Give up this store's share; the last share of the process unlocks the file."""
        with _HELD_LOCK:
            if self._released or self._held is None:
                return
            self._released = True
            held = self._held
            held.users -= 1
            if held.users > 0 or held.pid != os.getpid():
                return  # still used here, or inherited through fork: the parent's to release
            _HELD.pop(self._key, None)
            if held.sidecar:
                try:  # removed while still locked, so no one can lock the old file after
                    os.unlink(held.lock_path)
                except OSError:
                    pass
            os.close(held.fd)


def lock_for_writing(path: str, store: str, *, sidecar: bool, read_mode: str = "mode='r'") -> WriterLock:
    """Take (or share) the writer lock of the file at ``path`` for a store named ``store``.

    ``sidecar`` locks ``path + ".lock"`` instead of ``path`` (created if needed);
    otherwise ``path`` itself is created empty if missing. Raises
    :class:`~aiostore.errors.StoreLockedError` if another process holds it;
    ``read_mode`` is how to open the store without writing, for the message.
    """
    lock_path = path + ".lock" if sidecar else path
    key = os.path.realpath(lock_path)
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():
            held.users += 1
            return WriterLock(key, held)
        if fcntl is None:  # pragma: no cover - Windows
            return WriterLock(key, None)
        held = _Held(_locked_fd(lock_path, path, store, read_mode), lock_path, sidecar)
        held.users = 1
        _HELD[key] = held
        return WriterLock(key, held)


def _locked_fd(lock_path: str, path: str, store: str, read_mode: str) -> int:
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(path, store, read_mode) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            # A sidecar removed (by its holder's release) between our open and our
            # lock is not the lock any more: lock the file now at the path instead.
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
