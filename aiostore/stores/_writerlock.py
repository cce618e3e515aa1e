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
while the parent holds it. The lock is an ``flock`` on the file itself
(:func:`lock_for_writing`, Zip files).

A DBM database also keeps readers in other processes out while it is written
(they would read the index on disk, which the writer has not written yet):
:class:`FileLock` is an ``flock`` on a ``<path>.lock`` file next to it (a new
DBM database is written to new files), *shared* by readers, *exclusive* for a
writer, and refused with an error that says which of them holds it
(:class:`WriterHoldsLockError`, :class:`ReadersHoldLockError`, both
:class:`~aiostore.errors.StoreLockedError`). A writer removes that file again
when it lets go. Where ``fcntl`` is missing (Windows) no lock is taken.

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
import time

from aiostore.errors import StoreLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FileLock",
    "ForkedWriterError",
    "ReadersHoldLockError",
    "WriterHoldsLockError",
    "WriterLock",
    "lock_for_writing",
]


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


def _renew_after_fork() -> None:
    """In a forked child: a thread of the parent may have held the lock at the fork."""
    global _HELD_LOCK
    _HELD_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_after_fork)


# -- a shared or exclusive lock on <path>.lock: one writer, or any number of readers -------


class WriterHoldsLockError(StoreLockedError):
    """Refused: a writer in another process holds the file's lock.

    >>> print(str(WriterHoldsLockError("/d/x.db", "DBMStore")).split("; ")[0])
    /d/x.db is open for writing elsewhere (another process holds its lock)
    """

    def __init__(self, path: str, store: str, read_mode: str = "mode='r'") -> None:
        super().__init__(path, store, read_mode)
        self.args = (
            f"{path} is open for writing elsewhere (another process holds its lock); {store} takes "
            "one writer at a time, and no readers in other processes while it writes (the writer "
            "keeps its index in memory, so they would read stale data): close that writer first",
        )


class ReadersHoldLockError(StoreLockedError):
    """Refused a writer: readers in other processes hold the file's shared lock.

    >>> print(str(ReadersHoldLockError("/d/x.db", "DBMStore")).split("; ")[0])
    /d/x.db is open for reading elsewhere (other processes hold its read lock)
    """

    def __init__(self, path: str, store: str, read_mode: str = "mode='r'") -> None:
        super().__init__(path, store, read_mode)
        self.args = (
            f"{path} is open for reading elsewhere (other processes hold its read lock); {store} "
            "takes one writer at a time, and no readers in other processes while it writes: close "
            f"those readers first, or open this one with {read_mode} too",
        )


class ForkedWriterError(StoreLockedError):
    """Refused a write in a forked child through a store its parent opened.

    >>> print(str(ForkedWriterError("/d/x.db", "DBMStore")).split("; ")[0])
    /d/x.db was opened by the process this one was forked from
    """

    def __init__(self, path: str, store: str, read_mode: str = "mode='r'") -> None:
        super().__init__(path, store, read_mode)
        self.args = (
            f"{path} was opened by the process this one was forked from; {store} takes one writer "
            "at a time, and a forked child cannot write through its parent's store (the parent "
            "holds the database and its lock): write in the parent, or open a store in this "
            "process once the parent has closed its own",
        )


#: How often, and how far apart (seconds), a refused ``flock`` is tried again: a
#: holder letting go holds the lock exclusively for a moment to remove its file.
_TRIES = 5
_PAUSE = 0.002


def _flock(fd: int, exclusive: bool, tries: int = _TRIES) -> bool:
    """Lock ``fd`` without waiting for a holder (a few quick tries); False if refused."""
    for attempt in range(tries):
        if attempt:
            time.sleep(_PAUSE)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
    return False


class FileLock:
    """An ``flock`` on ``<path>.lock``: shared while the process only reads, exclusive
    once it writes, on a descriptor of its own (the caller shares it between the
    stores of its process; two descriptors of one process would lock each other out).

    Raises :class:`WriterHoldsLockError` (a writer elsewhere) or
    :class:`ReadersHoldLockError` (an exclusive lock, and readers elsewhere).

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> reader = FileLock(os.path.join(tmp.name, "x.db"), "DBMStore", exclusive=False)
    >>> reader.upgrade(); reader.exclusive, reader.held
    (True, True)
    >>> reader.release(); tmp.cleanup()
    """

    def __init__(self, path: str, store: str, *, exclusive: bool, read_mode: str = "mode='r'") -> None:
        self.path = path
        self.lock_path = path + ".lock"
        self.store = store
        self.read_mode = read_mode
        self.pid = os.getpid()
        self.exclusive = exclusive
        #: False once this process lost its lock (a failed upgrade let a writer in).
        self.held = True
        self.fd = self._take(exclusive)

    def _current(self, fd: int) -> bool:
        """Whether ``fd`` is the file at the lock's path (a releasing writer removes it)."""
        try:
            at_path, mine = os.stat(self.lock_path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (at_path.st_dev, at_path.st_ino) == (mine.st_dev, mine.st_ino)

    def _open(self, exclusive: bool) -> int | None:
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            return None  # no such directory: opening the database says so
        except OSError:
            if exclusive:
                raise
        try:  # a reader in a place it cannot write: lock the file if a writer made one
            return os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return None

    def _refusal(self, fd: int, exclusive: bool) -> StoreLockedError:
        """The error for a refused lock: who holds it (``fd`` holds nothing)."""
        if exclusive and _flock(fd, exclusive=False, tries=1):
            return ReadersHoldLockError(self.path, self.store, self.read_mode)
        return WriterHoldsLockError(self.path, self.store, self.read_mode)

    def _take(self, exclusive: bool) -> int | None:
        if fcntl is None:  # pragma: no cover - Windows
            return None
        while True:
            fd = self._open(exclusive)
            if fd is None:
                return None
            try:
                if _flock(fd, exclusive):
                    if self._current(fd):
                        return fd
                elif self._current(fd):
                    raise self._refusal(fd, exclusive)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed by its holder meanwhile: lock the file now at the path

    def upgrade(self) -> None:
        """Shared to exclusive, or :class:`ReadersHoldLockError` / :class:`WriterHoldsLockError`."""
        fd = self.fd
        if fd is None:  # no lock file could be made for reading: one is needed to write
            self.fd = self._take(exclusive=True)
            self.exclusive = True
            return
        if self.exclusive:
            return
        if not _flock(fd, exclusive=True):
            # A refused conversion drops the shared lock (Linux): take it back.
            self.held = _flock(fd, exclusive=False) and self._current(fd)
            if self.held:
                raise ReadersHoldLockError(self.path, self.store, self.read_mode)
            raise WriterHoldsLockError(self.path, self.store, self.read_mode)
        if not self._current(fd):  # the file was replaced while the lock was converting
            self.fd = None
            os.close(fd)
            self.held = False
            self.fd = self._take(exclusive=True)
            self.held = True
        self.exclusive = True

    def downgrade(self) -> None:
        """Exclusive back to shared (after a failed switch to writing)."""
        if self.fd is not None and self.exclusive:
            self.held = _flock(self.fd, exclusive=False) and self._current(self.fd)
        self.exclusive = False

    def release(self) -> None:
        """Let go (once). A writer removes the file first, still locked, so that no one
        locks the old file after; a reader that finds no other holder does too."""
        fd, self.fd = self.fd, None
        if fd is None or self.pid != os.getpid():
            return  # inherited through fork: the parent's to release
        try:
            if _flock(fd, exclusive=True, tries=1) and self._current(fd):
                os.unlink(self.lock_path)
        except OSError:
            pass
        finally:
            os.close(fd)
