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
:class:`~aiostore.errors.StoreLockedError`. Stores of one process on one path
(zarr 2 and dask unpickle a copy of the store per task) share one open file --
its writer, reader, index and lock (:mod:`aiostore.stores._zipshared`): each
sees the others' writes at once, ``close()`` of one gives up its share (and
writes the central directory, if it wrote), and the last one closes the file.
``mode="w"`` on a path a store of this process has open is refused with
:class:`~aiostore.errors.StoreLockedError` rather than truncating the file under
it. A pickled copy opens nothing until it is used: it reads without a lock, and
takes the writer lock at its first write, which raises ``StoreLockedError`` if
another process holds it. In a process forked from the one that opened the
store, writes raise ``StoreLockedError`` (the parent holds the file), and reads
of plain entries keep working.

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
import weakref
import zipfile
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from aiostore._runtime.offload import offload
from aiostore.abc import BlockingStore, Buffer, Request, child_name, closing_scope
from aiostore.errors import ClosedStoreError
from aiostore.keys import KeyLimits, parent_prefix
from aiostore.stores._fsops import fs_path
from aiostore.stores._zipfile import ZipMode
from aiostore.stores._zipshared import SharedZip, acquire_zip, registry_lock

__all__ = ["ZipMode", "ZipStore"]

_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


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
    Stores of one process on one path share the open file (see the module);
    ``allowZip64`` must then be the same for the writable ones
    (:class:`~aiostore.errors.SettingsConflictError`). ``getsize`` counts
    stored (compressed) bytes, as zarr 2.

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
        self._setup(path, compression, allowZip64, mode, dimension_separator)
        self._attach(mode)  # opens now: a refused writer fails here
        self._writer = mode != "r"

    def _setup(
        self,
        path: str | os.PathLike[str],
        compression: int,
        allowZip64: bool,
        mode: ZipMode,
        dimension_separator: str | None,
    ) -> None:
        """Everything but opening the file."""
        BlockingStore.__init__(self, read_only=mode == "r", dimension_separator=dimension_separator)
        self.path = fs_path(path, type(self).__name__)
        self.compression = compression
        self.allowZip64 = allowZip64
        self.mode = mode
        #: This store's share of the process's open file; None until first used
        #: (a pickled copy) and once closed.
        self._share: SharedZip | None = None
        self._release: weakref.finalize[[], ZipStore] | None = None
        #: Whether this store opened the file for writing (or wrote through it).
        self._writer = False

    # -- the shared file -------------------------------------------------------------
    def _attach(self, mode: ZipMode) -> SharedZip:
        """Take a share of the process's open file (opening it if needed)."""
        share = acquire_zip(self.path, mode, self.compression, self.allowZip64)
        with registry_lock():
            mine = self._share
            if mine is None and not self._closed:
                self._share = mine = share
                # Also given up if the store is dropped unclosed, or at interpreter exit.
                self._release = weakref.finalize(self, share.release)
                return mine
        share.release()  # another thread of this store attached first, or it was closed
        if mine is None:
            raise ClosedStoreError(f"{self!r} is closed")
        return mine

    def _state(self) -> SharedZip:
        """The open file, opened for reading if this store has not used it yet."""
        share = self._share
        return share if share is not None else self._attach("r")

    async def _ready(self) -> SharedZip:
        share = self._share
        return share if share is not None else await offload(self.resource, self._attach, "r")

    def _writable(self) -> SharedZip:
        """The open file, with the writer lock taken (StoreLockedError if refused)."""
        share = self._share
        if share is None:
            share = self._attach("a")
        share.open_for_writing(self.allowZip64)
        self._writer = True
        return share

    # -- reads ---------------------------------------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        return self._state().read(requests)

    # The index is in memory: these answer from it, with no thread hop on either side.
    def _contains_blocking(self, key: str) -> bool:
        return self._state().lookup(key) is not None

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        return iter(sorted(key for key in self._state().keys() if key.startswith(prefix)))

    def _listdir_blocking(self, path: str) -> list[str]:
        prefix = parent_prefix(path)
        keys = self._state().keys()
        return sorted({child_name(prefix, key) for key in keys if key.startswith(prefix)})

    def _getsize_blocking(self, path: str) -> int:
        return self._state().getsize(path)

    async def _contains(self, key: str) -> bool:
        return (await self._ready()).lookup(key) is not None

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        await self._ready()
        for key in self._list_blocking(prefix):
            yield key

    async def _listdir(self, path: str) -> list[str]:
        await self._ready()
        return self._listdir_blocking(path)

    async def _getsize(self, path: str) -> int:
        return (await self._ready()).getsize(path)

    # -- writes --------------------------------------------------------------
    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        self._writable().write(items, self.compression)

    def _flush_blocking(self) -> None:
        share = self._share
        if share is not None and not self._read_only:
            share.flush()

    def _clear_blocking(self) -> None:
        self._writable().clear()

    def _close_blocking(self) -> None:
        with registry_lock():  # an attach racing the close sees the store closed, or is let go here
            share, release = self._share, self._release
            self._share = self._release = None
        if share is None or release is None:
            return
        try:
            if self._writer and share.users > 1:
                share.flush()  # the last user's close writes it anyway
        finally:
            release()

    async def aclose(self) -> None:
        """Write the central directory and give up the file; later calls are no-ops."""
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
        share = self._state()
        present = [key for key in keys if share.lookup(key) is not None]
        if present:
            raise self._no_deletes(f"delete {present[0]!r}")
        return list(keys)

    def _rmdir_blocking(self, path: str) -> None:
        prefix = parent_prefix(path)
        # Only keys below ``path`` are removed: a plain key there is left alone.
        if any(key.startswith(prefix) for key in self._state().keys()):
            raise self._no_deletes(f"remove {path!r}")

    def _rename_blocking(self, src: str, dst: str) -> None:
        raise self._no_deletes(f"rename {src!r}")

    # -- identity and pickling --------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        share = self._share
        if share is not None and self._writer and not self._closed:
            share.flush()  # so the copy (maybe in another process) sees every entry
        return {
            "path": self.path,
            "compression": self.compression,
            "allowZip64": self.allowZip64,
            "mode": self.mode,
            "dimension_separator": self._dimension_separator,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Opens nothing: a copy may be unpickled where a raise kills the process (a dask
        # worker's comm handler) or where a writer lock would shut every worker out (the
        # scheduler, in the client's process). It reads without a lock, and takes the
        # writer lock at its first write. A copy of a "w" or "x" store must not truncate.
        mode: ZipMode = "a" if state["mode"] in ("w", "x") else state["mode"]
        self._setup(
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
