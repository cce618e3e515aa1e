"""ZipStore: a zarr hierarchy in a single Zip file, written with :mod:`zipfile`.

Writes go through the standard library's :class:`zipfile.ZipFile`, one writer
at a time. Reads do not: the store keeps the newest :class:`zipfile.ZipInfo`
of every key and a second, read-only file handle, and reads an entry's local
header and data with one ``os.pread`` (then checks the CRC, and inflates
deflated entries). So reads run in parallel, never wait for a writer, and see
every value as soon as its write returns, while the file is open for appending.
Encrypted entries and other compression methods are read through ``zipfile``.

A Zip file cannot remove or replace an entry: writing a key again appends a
second entry (the standard library warns about the duplicate name) and reads
return the newest one. Deleting and renaming are not supported.

The central directory -- the file's table of contents -- is written by
``close()`` (and ``flush()``); an entry written after it goes over the old one.
So a writer killed or crashing before ``close()`` (``SIGKILL``, power loss)
loses the *whole file* for every Zip reader, not only its last writes: the
entries' bytes are still in it, but nothing lists them. Reopening such a file
raises :class:`~aiostore.errors.BackendError` that says so (and leaves it
unchanged), never an empty store. ``flush()`` after a batch of writes makes
everything so far safe. On normal interpreter exit an unclosed store is closed
for you.

One process writes a Zip file at a time: a writable store takes an exclusive
lock on the file at open, and a writer in another process is refused with
:class:`~aiostore.errors.StoreLockedError` (stores of one process share it).

Examples
--------
>>> import anyio, os, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "example.zip")
>>> async def main():
...     async with ZipStore(path, mode="w") as store:
...         await store.set_many({"a/0": b"x", "a/1": b"yz"})
...     async with ZipStore(path, mode="r") as store:
...         print(await store.get_many(["a/0", "a/1"]), await store.listdir("a"))
>>> anyio.run(main)
{'a/0': b'x', 'a/1': b'yz'} ['0', '1']
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
import threading
import time
import weakref
import zipfile
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from aiostore._runtime.offload import offload
from aiostore.abc import BlockingStore, Buffer, ByteRange, Request, child_name, closing_scope
from aiostore.errors import BatchWriteError, ClosedStoreError
from aiostore.keys import KeyLimits, parent_prefix
from aiostore.stores._fsops import fs_path
from aiostore.stores._writerlock import WriterLock
from aiostore.stores._zipfile import ZipMode, open_zip, undo_failed_write
from aiostore.stores._zipread import EntryReader, newest_entries

__all__ = ["ZipMode", "ZipStore"]

_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


class _Handles:
    """The open ``ZipFile`` (the writer), the entry reader and the writer lock; closed
    by the store, or by a finalizer if the store is dropped or the interpreter exits."""

    def __init__(self, zf: zipfile.ZipFile, reader: EntryReader, writer_lock: WriterLock | None) -> None:
        self.zf = zf
        self.reader = reader
        self.writer_lock = writer_lock
        self.closed = False

    def close(self) -> None:
        self.closed = True
        try:
            self.zf.close()  # writes the central directory
        finally:
            self.reader.close_file()
            if self.writer_lock is not None:
                self.writer_lock.release()


class ZipStore(BlockingStore):
    """Store keeping every key as an entry of one Zip file.

    Parameters
    ----------
    path : str or os.PathLike
        Location of the file (made absolute).
    compression : int
        Compression method for new entries, e.g. ``zipfile.ZIP_STORED`` (the
        default) or ``zipfile.ZIP_DEFLATED``.
    allowZip64 : bool
        Use the ZIP64 extensions when the file grows past 2 GiB; if False that
        raises :class:`zipfile.LargeZipFile` instead.
    mode : {"a", "r", "w", "x"}
        ``"r"`` read an existing file (the store is read-only), ``"w"`` truncate
        or create, ``"a"`` append to an existing file or create one, ``"x"``
        create a new file, failing if it exists.
    dimension_separator : {".", "/"}, optional

    Notes
    -----
    Writing a key that is already stored appends a new entry; the standard
    library warns ``Duplicate name``, and reads return the newest value. To
    avoid duplicates, write each chunk once (align writes with chunk
    boundaries). Deletes and renames raise :class:`NotImplementedError`;
    ``clear()`` (and ``rmdir()`` of the root) empties the whole file.

    ``close()`` must be called after writing (or use ``with``/``async with``):
    it writes the central directory, without which the file is not a Zip file.
    ``flush()`` writes it too and re-opens the file for appending. Safe to use
    from many threads (one writer at a time, reads in parallel); a second
    process opening the file for writing is refused with
    :class:`~aiostore.errors.StoreLockedError`, readers (``mode="r"``) are not.
    ``getsize`` counts stored (compressed) bytes, as zarr 2.

    Examples
    --------
    >>> import anyio, os, tempfile, warnings
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = ZipStore(os.path.join(tmp.name, "data.zip"), mode="w")
    >>> async def main():
    ...     await store.set("a", b"old")
    ...     with warnings.catch_warnings(record=True) as caught:
    ...         warnings.simplefilter("always")
    ...         await store.set("a", b"new")
    ...     print(caught[0].message, await store.get("a"))
    ...     await store.aclose()
    >>> anyio.run(main)
    Duplicate name: 'a' b'new'
    >>> tmp.cleanup()
    """

    supports_deletes = False
    #: Zip entry names are UTF-8 text.
    key_limits = KeyLimits(utf8=True)
    #: One writer at a time: splitting a batch over threads would only queue the parts.
    split_writes = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        compression: int = zipfile.ZIP_STORED,
        allowZip64: bool = True,
        mode: ZipMode = "a",
        dimension_separator: str | None = None,
    ) -> None:
        if mode not in ("r", "w", "a", "x"):
            raise ValueError(f"ZipStore mode must be 'r', 'w', 'a' or 'x', not {mode!r}")
        if compression not in _COMPRESSIONS:
            raise ValueError(
                "ZipStore compression must be zipfile.ZIP_STORED, ZIP_DEFLATED, ZIP_BZIP2 "
                f"or ZIP_LZMA, not {compression!r}"
            )
        super().__init__(read_only=mode == "r", dimension_separator=dimension_separator)
        self.path = fs_path(path, type(self).__name__)
        self.compression = compression
        self.allowZip64 = allowZip64
        self.mode = mode
        self._lock = threading.RLock()  # the one writer; also guards replacing the ZipFile
        self._index_lock = threading.Lock()
        zf, writer_lock = open_zip(self.path, mode, compression, allowZip64)
        try:
            reader = EntryReader(self.path)
        except BaseException:
            zf.close()
            if writer_lock is not None:
                writer_lock.release()
            raise
        self._handles = _Handles(zf, reader, writer_lock)
        self._reader = reader
        weakref.finalize(self, self._handles.close)
        # A new file ("w", "x") must get a central directory even if nothing is written.
        self._dirty = mode in ("w", "x")
        self._index = newest_entries(zf)

    # -- handles -------------------------------------------------------------
    def _zip(self) -> zipfile.ZipFile:
        if self._handles.closed:
            raise ClosedStoreError(f"{self!r} is closed")
        return self._handles.zf

    def _lookup(self, key: str) -> zipfile.ZipInfo | None:
        with self._index_lock:
            return self._index.get(key)

    def _keys(self) -> list[str]:
        with self._index_lock:
            return list(self._index)

    # -- reads ---------------------------------------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        # The entries are looked up inside the reader's gate (see EntryReader).
        return self._reader.read_ranges(lambda: self._lookup_all(requests), self._read_with_zipfile)

    def _lookup_all(
        self, requests: Sequence[Request]
    ) -> list[tuple[zipfile.ZipInfo | None, ByteRange | None]]:
        with self._index_lock:
            return [(self._index.get(key), byte_range) for key, byte_range in requests]

    def _read_with_zipfile(self, info: zipfile.ZipInfo) -> bytes:
        with self._lock, self._zip().open(info) as entry:
            return entry.read()

    # The index is in memory: these answer from it, with no thread hop on either side.
    def _contains_blocking(self, key: str) -> bool:
        return self._lookup(key) is not None

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        return iter(sorted(key for key in self._keys() if key.startswith(prefix)))

    def _listdir_blocking(self, path: str) -> list[str]:
        prefix = parent_prefix(path)
        return sorted({child_name(prefix, key) for key in self._keys() if key.startswith(prefix)})

    def _getsize_blocking(self, path: str) -> int:
        with self._index_lock:
            info = self._index.get(path) if path else None
            if info is not None:
                return info.compress_size
            prefix = parent_prefix(path)
            return sum(
                entry.compress_size
                for key, entry in self._index.items()
                if key.startswith(prefix) and "/" not in key[len(prefix) :]
            )

    async def _contains(self, key: str) -> bool:
        return self._contains_blocking(key)

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        for key in self._list_blocking(prefix):
            yield key

    async def _listdir(self, path: str) -> list[str]:
        return self._listdir_blocking(path)

    async def _getsize(self, path: str) -> int:
        return self._getsize_blocking(path)

    # -- writes --------------------------------------------------------------
    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        failed: dict[str, BaseException] = {}
        written: list[zipfile.ZipInfo] = []
        with self._lock:
            zf = self._zip()
            now = time.localtime()
            date_time = (now.tm_year, now.tm_mon, now.tm_mday, now.tm_hour, now.tm_min, now.tm_sec)
            try:
                for key, value in items:
                    info = zipfile.ZipInfo(key, date_time)
                    info.compress_type = self.compression
                    info.external_attr = 0o644 << 16  # zipfile's default 0o600 is too strict
                    previous = zf.NameToInfo.get(key)
                    try:
                        zf.writestr(info, value)  # warns "Duplicate name" if key is stored
                    except BaseException as exc:
                        undo_failed_write(zf, info, previous)
                        if not isinstance(exc, Exception):
                            raise
                        failed[key] = exc
                    else:
                        written.append(info)
            finally:
                if written:
                    self._dirty = True
                    # Readers use another handle: the data must be in the file first.
                    if zf.fp is not None:
                        zf.fp.flush()
                    with self._index_lock:
                        for info in written:
                            self._index[info.filename] = info
        if failed:
            raise BatchWriteError(failed)

    def _flush_blocking(self) -> None:
        with self._lock:
            zf = self._zip()
            if not self._dirty:
                return
            zf.close()  # if this fails, zipfile has let go of the file and later writes say so
            # Re-open for appending whatever the original mode was ("w" would truncate).
            self._handles.zf = zipfile.ZipFile(
                self.path, mode="a", compression=self.compression, allowZip64=self.allowZip64
            )
            self._dirty = False

    def _clear_blocking(self) -> None:
        with self._reader.exclusive(), self._lock:  # no read may see the file truncated
            self._zip().close()
            self._handles.zf = zipfile.ZipFile(
                self.path, mode="w", compression=self.compression, allowZip64=self.allowZip64
            )
            self._dirty = True
            with self._index_lock:
                self._index.clear()
            self._reader.forget_offsets()

    def _close_blocking(self) -> None:
        # The gate before the writer's lock, as reads (whose fallback takes the lock) do.
        with self._reader.exclusive(), self._lock:
            self._handles.close()

    async def aclose(self) -> None:
        """Write the central directory and close the file; later calls are no-ops."""
        if self._closed:
            return
        self._closed = True  # new operations fail at once; reads in flight finish first
        with closing_scope():  # a cancelled close must still write the central directory
            await offload(self.resource, self._close_blocking)

    def close_sync(self) -> None:
        """Blocking :meth:`aclose`."""
        if not self._closed:
            self._closed = True
            self._close_blocking()

    # -- deletes: not possible in a Zip file ----------------------------------
    def _no_deletes(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"{self!r} cannot {what}: a Zip file has no way to remove or rename entries "
            "(clear() empties the whole file)"
        )

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        # Missing keys are ignored, as for every store; only real deletes fail.
        present = [key for key in keys if self._lookup(key) is not None]
        if present:
            raise self._no_deletes(f"delete {present[0]!r}")
        return list(keys)

    def _rmdir_blocking(self, path: str) -> None:
        prefix = parent_prefix(path)
        # Only keys below ``path`` are removed: a plain key there is left alone.
        if any(key.startswith(prefix) for key in self._keys()):
            raise self._no_deletes(f"remove {path!r}")

    def _rename_blocking(self, src: str, dst: str) -> None:
        raise self._no_deletes(f"rename {src!r}")

    # -- identity and pickling --------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if not self._closed and not self._read_only:
            self._flush_blocking()  # so the copy (maybe in another process) sees every entry
        return {
            "path": self.path,
            "compression": self.compression,
            "allowZip64": self.allowZip64,
            "mode": self.mode,
            "dimension_separator": self._dimension_separator,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A copy of a "w" or "x" store must not truncate (or refuse) the file it refers to.
        mode = "a" if state["mode"] in ("w", "x") else state["mode"]
        self.__init__(  # type: ignore[misc]
            state["path"],
            state["compression"],
            state["allowZip64"],
            mode,
            dimension_separator=state["dimension_separator"],
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ZipStore)
            and self.path == other.path
            and self.compression == other.compression
            and self.allowZip64 == other.allowZip64
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ZipStore({self.path!r}, mode={self.mode!r})"
