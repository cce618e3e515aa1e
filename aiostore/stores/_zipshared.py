"""One open Zip file per path per process, shared by the :class:`~aiostore.stores.zip.ZipStore`
objects on it.

A Zip file keeps its table of contents (the central directory) in its writer's
memory until it is closed, so two ``ZipFile`` writers on one file lose each
other's entries or tear them. Stores of one process on one path -- zarr 2 and
dask unpickle a copy of the store per task in the same worker process -- share
one :class:`SharedZip` instead: the writer (a ``zipfile.ZipFile``), the entry
reader, the index of the newest entry of every key, the writer's lock, and
whether the central directory is due. It counts its users; the last to let go
writes the central directory and closes the file.

A :class:`SharedZip` opened for reading only (by ``mode="r"`` stores, or a
pickled copy before its first write) takes no lock; the first write through it
takes the writer lock and opens the file for appending (:meth:`SharedZip.open_for_writing`).

After ``fork`` the child gets fresh locks, and cannot write through what it
inherited: its writes raise :class:`ForkedZipWriterError` (the parent holds the
file and its lock), and nothing it does reaches the parent's file. Reads of
plain entries keep working.

>>> import os, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "x.zip")
>>> first = acquire_zip(path, "w", 0, True)
>>> first.write([("k", b"v")], 0)
>>> second = acquire_zip(path, "r", 0, True)
>>> second is first, first.users, first.read([("k", None)])
(True, 2, [b'v'])
>>> first.release(); second.release(); first.closed
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Sequence

from aiostore._runtime.forks import renew_after_fork
from aiostore.abc import Buffer, ByteRange, Request
from aiostore.errors import (
    BackendError,
    BatchWriteError,
    ClosedStoreError,
    SettingsConflictError,
    StoreLockedError,
)
from aiostore.keys import parent_prefix
from aiostore.stores._zipfile import ZipMode, abandon_in_child, open_zip, reopen_zip
from aiostore.stores._zipread import EntryReader, newest_entries
from aiostore.stores._zipwrite import close_zip, write_entries

__all__ = ["ForkedZipWriterError", "SharedZip", "acquire_zip", "registry_lock"]


class ForkedZipWriterError(StoreLockedError):
    """A write in a forked child through a ZipStore its parent opened.

    >>> print(str(ForkedZipWriterError("/d/x.zip")).split("; ")[0])
    /d/x.zip was opened by the process this one was forked from
    """

    def __init__(self, path: str, store: str = "ZipStore", read_mode: str = "mode='r'") -> None:
        super().__init__(path, store, read_mode)
        self.args = (
            f"{path} was opened by the process this one was forked from; {store} takes one writer "
            "at a time, and a forked child cannot write through its parent's store (the parent "
            "holds the file, its lock and its central directory): write in the parent, or open "
            "a store in this process once the parent has closed its own",
        )


class SharedZip:
    """A Zip file open in this process, and what its stores share (see the module)."""

    def __init__(self, path: str, mode: ZipMode, compression: int, allowZip64: bool) -> None:
        self.path = path
        self.key = os.path.realpath(path)
        self.compression = compression
        #: The writer's setting; every store writing through it must ask for the same.
        self.allowZip64 = allowZip64
        self.pid = os.getpid()
        self.users = 0
        self.closed = False
        #: The last user let go: it is closing (a new open waits for :attr:`done`).
        self.closing = False
        self.done = threading.Event()
        self.lock = threading.RLock()  # the one writer; also guards replacing the ZipFile
        self.index_lock = threading.Lock()
        before = _stamp_of(path)  # before reading it: a change meanwhile reads it again
        self.zf, self.raw, self.writer_lock = open_zip(path, mode, compression, allowZip64)
        self.writing = mode != "r"
        # A new file ("w", "x") must get a central directory even if nothing is written.
        self.dirty = mode in ("w", "x")
        try:
            self.reader = EntryReader(path)
            self.stamp = before if before is not None else _stamp(os.fstat(self.raw.fileno()))
            self.index = newest_entries(self.zf)
        except BaseException:
            self._let_go()
            raise
        renew_after_fork(self, type(self)._after_fork)

    # -- the file ------------------------------------------------------------------------
    def same_file(self) -> bool:
        """Whether this is open, in this process, on the file now at its path."""
        if self.closed or self.pid != os.getpid():
            return False
        now = _stamp_of(self.path)
        return now is not None and now[:2] == self.stamp[:2]

    def _check_owner(self) -> None:
        if self.pid != os.getpid():
            raise ForkedZipWriterError(self.path)

    def _writer(self) -> zipfile.ZipFile:
        """The writer (hold :attr:`lock`)."""
        if self.closed:
            raise ClosedStoreError(f"the Zip file {self.path} is closed")
        self._check_owner()
        return self.zf

    def refresh(self) -> None:
        """Read the file again if it changed since it was read (while this process only
        reads it: another process may have written it, or put another file there)."""
        if self.writing or _stamp_of(self.path) == self.stamp:
            return
        with self.reader.exclusive(), self.lock:
            if not (self.closed or self.writing or _stamp_of(self.path) == self.stamp):
                self._reopen("r", self.allowZip64)

    def open_for_writing(self, allowZip64: bool) -> None:
        """Take the writer lock and open the file for appending, if not done yet.

        Raises :class:`~aiostore.errors.StoreLockedError` if another process holds
        the lock (or this is a forked child), and
        :class:`~aiostore.errors.SettingsConflictError` if the writer was opened
        with another ``allowZip64``. The file is read again: another process may
        have written it since it was opened for reading.
        """
        self._check_owner()
        if not self.writing:
            with self.reader.exclusive(), self.lock:
                if self.closed:
                    raise ClosedStoreError(f"the Zip file {self.path} is closed")
                if not self.writing:
                    self._reopen("a", allowZip64)
        if allowZip64 != self.allowZip64:
            raise SettingsConflictError(self.path, {"allowZip64": (self.allowZip64, allowZip64)})

    def _reopen(self, mode: ZipMode, allowZip64: bool) -> None:
        """Open the file at the path again, in ``mode`` "r" or "a" (hold the gate and the lock)."""
        before = _stamp_of(self.path)
        zf, raw, writer_lock = open_zip(self.path, mode, self.compression, allowZip64)
        try:
            stamp = before if before is not None else _stamp(os.fstat(raw.fileno()))
            index = newest_entries(zf)
            self.reader.reopen()
        except BaseException:
            zf.close()
            raw.close()
            if writer_lock is not None:
                writer_lock.release()
            raise
        old_zf, old_raw = self.zf, self.raw
        self.zf, self.raw, self.stamp = zf, raw, stamp
        if writer_lock is not None:
            self.writer_lock, self.writing, self.allowZip64 = writer_lock, True, allowZip64
        with self.index_lock:
            self.index = index
        try:
            old_zf.close()  # opened for reading: writes nothing
        finally:
            old_raw.close()

    # -- the index -----------------------------------------------------------------------
    def lookup(self, key: str) -> zipfile.ZipInfo | None:
        with self.index_lock:
            return self.index.get(key)

    def keys(self) -> list[str]:
        with self.index_lock:
            return list(self.index)

    def getsize(self, path: str) -> int:
        """zarr 2's ``getsize``: stored (compressed) bytes of a key, or of a path's children."""
        with self.index_lock:
            info = self.index.get(path) if path else None
            if info is not None:
                return info.compress_size
            prefix = parent_prefix(path)
            return sum(
                entry.compress_size
                for key, entry in self.index.items()
                if key.startswith(prefix) and "/" not in key[len(prefix) :]
            )

    # -- reads ---------------------------------------------------------------------------
    def read(self, requests: Sequence[Request]) -> list[bytes | None]:
        """The value (or byte range) of each request, None for a missing key."""
        # The entries are looked up inside the reader's gate (see EntryReader).
        return self.reader.read_ranges(lambda: self._lookup_all(requests), self._read_with_zipfile)

    def _lookup_all(
        self, requests: Sequence[Request]
    ) -> list[tuple[zipfile.ZipInfo | None, ByteRange | None]]:
        with self.index_lock:
            return [(self.index.get(key), byte_range) for key, byte_range in requests]

    def _read_with_zipfile(self, info: zipfile.ZipInfo) -> bytes:
        if self.pid != os.getpid():
            raise BackendError(
                self.path,
                f"entry {info.filename!r} is encrypted or compressed in a way only zipfile reads, "
                "and the ZipFile belongs to the process this one was forked from: open a new "
                "ZipStore in this process to read it",
            )
        with self.lock:
            if self.closed:
                raise ClosedStoreError(f"the Zip file {self.path} is closed")
            with self.zf.open(info) as entry:
                return entry.read()

    # -- writes --------------------------------------------------------------------------
    def write(self, items: Sequence[tuple[str, Buffer]], compression: int) -> None:
        """Append an entry per item (call :meth:`open_for_writing` first); raises
        :class:`~aiostore.errors.BatchWriteError` naming the keys that failed."""
        failed: dict[str, BaseException] = {}
        written: list[zipfile.ZipInfo] = []
        with self.lock:
            zf = self._writer()
            try:
                write_entries(zf, items, compression, self.allowZip64, written, failed)
            finally:
                if written:
                    self.dirty = True
                    # Readers use another handle: the data must be in the file first
                    # (the ZipFile's file is unbuffered; a wrapped one may not be).
                    if zf.fp is not None:
                        zf.fp.flush()
                    with self.index_lock:
                        for info in written:
                            self.index[info.filename] = info
        if failed:
            raise BatchWriteError(failed)

    def flush(self) -> None:
        """Write the central directory, if there is something new to list, and open the
        file for appending again. Nothing to do in a forked child, or if not writing."""
        with self.lock:
            if self.closed or not self.writing or not self.dirty or self.pid != os.getpid():
                return
            self.zf = reopen_zip(
                self.zf,
                self.raw,
                empty=False,
                modified=True,
                compression=self.compression,
                allowZip64=self.allowZip64,
            )
            self.dirty = False

    def clear(self) -> None:
        """Truncate the file to an empty Zip file (call :meth:`open_for_writing` first)."""
        with self.reader.exclusive(), self.lock:  # no read may see the file truncated
            zf = self._writer()
            self.zf = reopen_zip(
                zf,
                self.raw,
                empty=True,
                modified=self.dirty,
                compression=self.compression,
                allowZip64=self.allowZip64,
            )
            self.dirty = True
            with self.index_lock:
                self.index.clear()
            self.reader.forget_offsets()

    # -- users ---------------------------------------------------------------------------
    def release(self) -> None:
        """Give up one store's share; the last one writes the central directory and closes."""
        with _REGISTRY.lock:
            self.users -= 1
            if self.users > 0:
                return
            self.closing = True
        try:
            # The gate before the writer's lock, as reads (whose fallback takes the lock) do.
            with self.reader.exclusive(), self.lock:
                if not self.closed:
                    self.closed = True
                    self._let_go()
        finally:
            with _REGISTRY.lock:
                if _REGISTRY.states.get(self.key) is self:
                    del _REGISTRY.states[self.key]
            self.done.set()

    def _let_go(self) -> None:
        try:
            # Writes the central directory (nothing in a forked child: no fp).
            close_zip(self.zf, modified=self.dirty, allowZip64=self.allowZip64)
        finally:
            self.raw.close()
            reader = getattr(self, "reader", None)
            if reader is not None:
                reader.close_file()
            if self.writer_lock is not None:
                self.writer_lock.release()  # in a forked child: the parent's to release

    def _after_fork(self) -> None:
        self.lock = threading.RLock()
        self.index_lock = threading.Lock()
        self.done = threading.Event()
        if self.closing:
            self.done.set()
        self.reader.after_fork()
        abandon_in_child(self.zf, self.raw)


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a file from another, and a changed file from itself."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stamp_of(path: str) -> tuple[int, int, int, int] | None:
    try:
        return _stamp(os.stat(path))
    except OSError:
        return None


class _Registry:
    """The open files of this process, by real path."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.states: dict[str, SharedZip] = {}

    def after_fork(self) -> None:
        """In a forked child: the parent's files are not the child's to share (a new
        store opens its own), and a thread of the parent may have held the lock."""
        self.lock = threading.RLock()
        self.states = {}


_REGISTRY = _Registry()
renew_after_fork(_REGISTRY, _Registry.after_fork)


def registry_lock() -> threading.RLock:
    """The lock of the process's table of open Zip files (held briefly: no waits under it)."""
    return _REGISTRY.lock


def acquire_zip(path: str, mode: ZipMode, compression: int, allowZip64: bool) -> SharedZip:
    """A share of the process's open file at ``path`` (call :meth:`SharedZip.release` once).

    ``"r"``: to read (opened for reading if it is not open). ``"a"``: to write
    (opened for appending, or taking the writer lock now). ``"w"``/``"x"``: a new
    file, refused with :class:`~aiostore.errors.StoreLockedError` while it is open
    in this process (truncating it would pull it from under the stores using it).
    """
    key = os.path.realpath(path)
    while True:
        with _REGISTRY.lock:
            state = _REGISTRY.states.get(key)
            if state is not None and state.pid != os.getpid():
                state = None  # inherited through fork: the parent's
            if state is not None and state.closing:
                done = state.done  # being closed: its central directory may not be written yet
            else:
                if state is not None and state.writing and not state.same_file():
                    # Its file was deleted or replaced (it writes on): the path holds another.
                    # One that only reads is read again instead (refresh), so that one
                    # path never has two writers in this process.
                    state = None
                if state is not None and mode in ("w", "x"):
                    if mode == "x":
                        raise FileExistsError(f"ZipStore mode 'x': {path} exists")
                    raise StoreLockedError(
                        path,
                        "ZipStore",
                        "mode='a' to share it (a store of this process has it open, and mode='w' "
                        "would truncate it under that store)",
                    )
                if state is None:
                    state = SharedZip(path, mode, compression, allowZip64)
                    _REGISTRY.states[key] = state
                state.users += 1
                break
        done.wait()
    try:
        if mode == "a":
            state.open_for_writing(allowZip64)
        elif mode == "r":
            state.refresh()
    except BaseException:
        state.release()
        raise
    return state
