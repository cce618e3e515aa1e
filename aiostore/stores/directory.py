"""DirectoryStore, NestedDirectoryStore and TempStore: one file per key.

Each key is a file below the store's root and each ``/`` in a key a directory level,
exactly as in zarr 2, so zarr 2 and 3 read arrays written here (and vice versa).

How the files are handled, and why:

* **Atomic writes.** A value is written to a temporary file in the target's
  directory, closed, then moved into place with :func:`os.replace`, so a reader
  sees the old value or the new one, never a torn one -- also across threads,
  processes, a full disk or an interrupted write. Temporary files are named
  ``.aiostore-tmp-*``; key segments with that prefix are refused, so a temporary
  file is never listed as a key. The thread-side code removes its temporary file
  on *any* exception: a cancelled task cannot interrupt a running thread, but
  the thread never leaves anything behind.
* **Lean I/O.** Batches run raw ``os.open``/``os.read``/``os.close`` (``os.pread``
  for byte ranges) in a few worker threads: a thread hop costs ten small reads,
  and ``open()``'s file objects cost more than the read itself.
* **Directories on demand.** A write opens its temporary file optimistically and
  creates missing directories (and the root) only when that fails, so a batch
  of writes into one directory makes it once and an existing one costs nothing.
  Nothing is cached, so a directory removed by another process is simply made
  again.
* **Confinement.** Keys pass :mod:`aiostore.keys` (no ``.``/``..`` segments, no
  NUL; leading slashes are dropped, so ``/etc/passwd`` is ``etc/passwd`` *below
  the root*), so no file outside the root is ever created, read or removed.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from aiostore._runtime.offload import offload
from aiostore.abc import BlockingStore, Buffer, ByteRange, Request, check_writable, write_each
from aiostore.errors import BatchWriteError
from aiostore.keys import check_key_collection, key_to_fs_path, normalize_keys
from aiostore.stores._fsops import MISSING as _MISSING
from aiostore.stores._fsops import (
    TEMP_PREFIX,
    empty_dir,
    fs_key_limits,
    fs_path,
    is_plain_path,
    move,
    prune_empty_dirs,
    refuse_temp_names,
    remove_stale_temp_files,
    size_of,
    walk,
    write_atomically,
)

__all__ = ["DirectoryStore", "TEMP_PREFIX"]

# O_NONBLOCK: opening a FIFO someone left in the tree must not hang a worker thread.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
_ARRAY_META_KEY, _CHUNK_INDEX = ".zarray", re.compile(r"^\d+$")
# On POSIX a normalized key is already a relative file-system path.
_SLASH_PATHS = os.sep == "/" and os.altsep is None


def _read_whole(fd: int) -> bytes | None:
    """The contents of an open file, or None if it is not a regular file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return None
    size = st.st_size
    data = os.read(fd, size)
    if len(data) < size:  # a read returns at most ~2 GiB
        parts = [data]
        got = len(data)
        while got < size:
            part = os.read(fd, size - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
    return data


#: Size guesses of :func:`_read_guessing_size`: at least a page, at most 64 MiB (a read of
#: more than ~2 GiB comes back short, which must not pass for the end of the file).
_MIN_GUESS, _MAX_GUESS = 4096, 1 << 26
_HAS_PREAD = hasattr(os, "pread")  # not on Windows


def _read_guessing_size(fd: int, guess: int) -> bytes | None:
    """:func:`_read_whole`, in one syscall when the file holds 1 to ``guess`` bytes.

    A batch of zarr chunks repeats a few sizes, so the ``fstat`` that :func:`_read_whole`
    needs first is mostly wasted: skipping it is ~8% of a warm-cache batch, and one GIL
    hand-off less per key in each worker thread. A batch starts from the last one's guess.
    ``pread`` (unlike ``read``) fails on FIFOs, sockets and terminals, and an
    empty or longer-than-guessed result goes the checked way, so non-regular
    files are still never values.
    """
    if guess >= _MAX_GUESS or not _HAS_PREAD:
        return _read_whole(fd)
    try:
        data = os.pread(fd, guess + 1, 0)
    except OSError:
        return _read_whole(fd)  # ESPIPE, EISDIR, ...: fstat decides, or the error is real
    if 0 < len(data) <= guess:
        return data  # a short positioned read of a file is its end
    return _read_whole(fd)  # pread leaves the offset at 0 for this


def _pread_range(fd: int, byte_range: ByteRange | None, size: int) -> bytes:
    """Bytes ``byte_range`` (None: all) of a regular file of ``size`` bytes."""
    start, stop = (0, None) if byte_range is None else byte_range
    if start < 0:
        start = max(0, size + start)
    end = size if stop is None else min(stop, size)
    parts = []
    while start < end:
        part = os.pread(fd, end - start, start)
        if not part:
            break
        parts.append(part)
        start += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class DirectoryStore(BlockingStore):
    """Store using directories and files on a standard file system.

    Parameters
    ----------
    path : str or os.PathLike
        Root directory of the store; made (with its parents) on the first write.
        :attr:`path` holds it absolute.
    normalize_keys : bool
        Lower-case every key, for case-insensitive file systems.
    dimension_separator : {".", "/"}, optional
        Chunk key separator for zarr 2. With ``"/"``, :meth:`listdir` of an
        array's directory lists its nested chunk files as ``"0/1"`` keys, as
        zarr 2 does.
    read_only : bool
        Refuse writes and deletes.

    Notes
    -----
    A name is a file or a directory, never both: writing a key below a key that
    holds a value (``0/0`` where ``0`` is one) raises
    :class:`~aiostore.errors.KeyConflictError` (a :class:`KeyError`) naming both
    keys, and writes nothing. zarr 2's other rules apply (its store suite checks
    them): writing a key where a directory is replaces the directory, deleting a
    directory's name removes it, and :meth:`rmdir` of a plain key leaves it alone. A failed write raises
    the :class:`OSError` naming the key, and the key keeps its old value. Safe to
    use from many threads and processes; files are open only while read or written.

    A writer killed mid-write (``SIGKILL``, a crash, a power cut) can leave a
    temporary ``.aiostore-tmp-*`` file next to the key; it is never listed or read
    as a key, and :meth:`remove_temp_files` removes those older than the store's open.

    Examples
    --------
    >>> import anyio, tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> async def main():
    ...     store = DirectoryStore(os.path.join(root, "data.zarr"))
    ...     await store.set_many({"a/0.0": b"xy", "a/0.1": b"z", ".zgroup": b"{}"})
    ...     print(await store.listdir(), await store.listdir("a"), await store.getsize("a"))
    ...     print(await store.get("a/0.0", byte_range=(1, None)))
    >>> anyio.run(main)
    ['.zgroup', 'a'] ['0.0', '0.1'] 3
    b'y'
    >>> sorted(os.listdir(os.path.join(root, "data.zarr", "a")))
    ['0.0', '0.1']
    >>> import shutil; shutil.rmtree(root)
    """

    #: A name is a file or a directory, never both.
    hierarchical = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        normalize_keys: bool = False,
        dimension_separator: str | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(
            read_only=read_only, dimension_separator=dimension_separator, normalize_keys=normalize_keys
        )
        root = fs_path(path, type(self).__name__)
        if os.path.exists(root) and not os.path.isdir(root):
            raise ValueError(f"path exists but is not a directory: {root!r}")
        #: The store's root directory, absolute.
        self.path = root
        #: When the store was opened (:func:`time.time`): older temporary files are stale.
        self.opened_at = time.time()
        self._root_slash = os.path.join(root, "")
        self.key_limits = fs_key_limits(self._root_slash)
        self._read_guess = _MIN_GUESS  # the largest value the last batch read (a hint)

    # -- keys ------------------------------------------------------------------
    def check_key(self, key: object) -> str:
        """The key gate, plus: no segment may start with :data:`TEMP_PREFIX`."""
        normalized = super().check_key(key)
        refuse_temp_names(normalized, key)
        return normalized

    def check_keys(self, keys: Iterable[object]) -> list[str]:
        """The fast batch check of :mod:`aiostore.keys`, plus one C-level scan for temp names."""
        check_key_collection(keys)
        batch = keys if isinstance(keys, list) else list(keys)
        normalized = normalize_keys(batch, lower=self.normalize_keys, limits=self.key_limits)
        if TEMP_PREFIX in "\x00".join(normalized):
            return list(dict.fromkeys(self.check_key(k) for k in batch))  # names the bad key
        return normalized

    def check_path(self, path: object) -> str:
        """The path gate, plus: no segment may start with :data:`TEMP_PREFIX`."""
        normalized = super().check_path(path)
        refuse_temp_names(normalized, path)
        return normalized

    def _fs_path(self, key: str) -> str:
        """File-system path of a normalized key (or path; ``""`` is the root)."""
        if not key:
            return self.path
        if _SLASH_PATHS:
            # Same result as key_to_fs_path for a normalized key, without its cost
            # (a tenth of a small read): every segment is already a plain name.
            return self._root_slash + key
        return key_to_fs_path(self.path, key)  # pragma: no cover - Windows

    def dir_path(self, path: str | None = None) -> str:
        """File-system path of the store path ``path`` (the root for None), as in zarr 2.

        >>> DirectoryStore("/data/x.zarr").dir_path("a/b")
        '/data/x.zarr/a/b'
        """
        return self._fs_path(self.check_path(path))

    # -- reads -----------------------------------------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        out: list[bytes | None] = []
        append = out.append
        ranged: dict[str, list[int]] = {}
        fs_path, open_, close, missing = self._fs_path, os.open, os.close, _MISSING
        guess = self._read_guess  # a read of the largest value so far gets most values whole
        for key, byte_range in requests:
            if byte_range is not None:
                ranged.setdefault(key, []).append(len(out))
                append(None)
                continue
            try:
                fd = open_(fs_path(key), _READ_FLAGS)
            except OSError as exc:
                if exc.errno in missing:
                    append(None)
                    continue
                raise
            try:
                data = _read_guessing_size(fd, guess)
            finally:
                close(fd)
            append(data)
            if data is not None and len(data) > guess:
                guess = len(data)
        self._read_guess = guess
        if ranged:
            self._read_ranges(requests, ranged, out)
        return out

    def _read_ranges(
        self, requests: Sequence[Request], by_key: dict[str, list[int]], out: list[bytes | None]
    ) -> None:
        # Ranges of one key (a zarr 3 shard's index and inner chunks) share one
        # open and one fstat: they are read from one consistent file.
        for key, indices in by_key.items():
            try:
                fd = os.open(self._fs_path(key), _READ_FLAGS)
            except OSError as exc:
                if exc.errno in _MISSING:
                    continue
                raise
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    for i in indices:
                        out[i] = _pread_range(fd, requests[i][1], st.st_size)
            finally:
                os.close(fd)

    def _contains_blocking(self, key: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self._fs_path(key)).st_mode)
        except OSError as exc:
            if exc.errno in _MISSING:
                return False
            raise

    # -- writes ----------------------------------------------------------------
    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        batch = os.urandom(6).hex()  # unique per batch; a counter makes it per key
        tokens = itertools.count()
        write_each(
            items,
            lambda key, value: write_atomically(
                self.path, self._fs_path(key), key, value, f"{batch}-{next(tokens)}"
            ),
        )

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        missing: list[str] = []
        failed: dict[str, BaseException] = {}
        emptied: dict[str, None] = {}  # the directories deletes may have emptied, each once
        for key in keys:
            path = self._fs_path(key)
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
                    missing.append(key)
                    continue
                if not (os.path.isdir(path) and not os.path.islink(path)):
                    failed[key] = exc
                    continue
                try:
                    shutil.rmtree(path)  # zarr 2: deleting a directory's name removes it
                except Exception as rm_exc:
                    failed[key] = rm_exc
                    continue
            emptied[os.path.dirname(path)] = None
        for directory in emptied:
            prune_empty_dirs(self.path, directory)
        if failed:
            if len(keys) == 1:
                raise failed[keys[0]]
            raise BatchWriteError(failed)
        return missing

    # -- listing ---------------------------------------------------------------
    def _list_blocking(self, prefix: str) -> Iterator[str]:
        dir_part, _, start = prefix.rpartition("/")
        if dir_part and not is_plain_path(dir_part):
            return iter(())  # no key can start with "../", "a//" or a temp name
        return walk(self._fs_path(dir_part), f"{dir_part}/" if dir_part else "", start)

    def _listdir_blocking(self, path: str) -> list[str]:
        dir_path = self._fs_path(path)
        try:
            with os.scandir(dir_path) as entries:
                # A directory with no key below it (a killed writer's, holding only its
                # temporary file, or emptied) is no name: list() finds nothing there.
                names = [
                    e.name
                    for e in entries
                    if not e.name.startswith(TEMP_PREFIX)
                    and (not e.is_dir(follow_symlinks=False) or next(walk(e.path, "", ""), None))
                ]
        except OSError as exc:
            if exc.errno in _MISSING:
                return []
            raise
        if self._dimension_separator == "/" and _ARRAY_META_KEY in names:
            # zarr 2: an array's nested chunk directories are listed as chunk keys.
            nested: list[str] = []
            for name in names:
                child = os.path.join(dir_path, name)
                if _CHUNK_INDEX.match(name) and os.path.isdir(child):
                    nested.extend(walk(child, f"{name}/", ""))
                else:
                    nested.append(name)
            names = nested
        return sorted(names)

    # -- hierarchy -------------------------------------------------------------
    def _rmdir_blocking(self, path: str) -> None:
        target = self._fs_path(path)
        if os.path.islink(target):
            if os.path.isdir(target):
                os.unlink(target)  # the link only: its target may be outside the root
        elif os.path.isdir(target):
            shutil.rmtree(target)
            prune_empty_dirs(self.path, os.path.dirname(target))

    def _rename_blocking(self, src: str, dst: str) -> None:
        move(self.path, self._fs_path(src), self._fs_path(dst), src, dst)

    def _getsize_blocking(self, path: str) -> int:
        return size_of(self._fs_path(path))

    # -- maintenance -------------------------------------------------------------
    async def remove_temp_files(self) -> int:
        """Remove the temporary files that killed writers left; returns how many.

        Only files older than the store's open (by a second, as file times are
        coarse) are removed, and the directories left empty; a write in flight
        in another process that started before it and is still running then
        fails cleanly rather than tearing a value.

        >>> import anyio, os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> with open(os.path.join(root, TEMP_PREFIX + "left-by-a-crash"), "wb") as f:
        ...     _ = f.write(b"half a val")
        >>> os.utime(os.path.join(root, TEMP_PREFIX + "left-by-a-crash"), (0, 0))
        >>> store = DirectoryStore(root)
        >>> anyio.run(store.remove_temp_files), os.listdir(root)
        (1, [])
        """
        return await offload(self.resource, self.remove_temp_files_sync)

    def remove_temp_files_sync(self) -> int:
        """:meth:`remove_temp_files`, blocking the calling thread."""
        check_writable(self)
        return remove_stale_temp_files(self.path, self.opened_at)

    def _clear_blocking(self) -> None:
        empty_dir(self.path)  # the root stays: it may be a mount point or a symlink

    # -- identity and pickling ---------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, DirectoryStore) and self.path == other.path

    def __hash__(self) -> int:
        return hash((DirectoryStore, self.path))

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "normalize_keys": self._normalize_keys,
            "dimension_separator": self._dimension_separator,
            "read_only": self._read_only,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        DirectoryStore.__init__(
            self,
            state["path"],
            state["normalize_keys"],
            state["dimension_separator"],
            read_only=state["read_only"],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"
