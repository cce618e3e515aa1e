"""Reading Zip entries by offset, in parallel, while the file is being appended to.

:class:`EntryReader` keeps its own read-only handle on a Zip file and reads an
entry's local header and data with ``os.pread`` -- one call per entry -- then
checks the CRC (and inflates deflated entries). ``pread`` takes no file
position, so any number of threads read at once, and never wait for the writer
(a ``zipfile.ZipFile``) appending to the same file. Entries it cannot read this
way (encrypted, or another compression method) go to a fallback, ``zipfile``.
A damaged entry (bad CRC, truncated) raises :class:`~aiostore.errors.BackendError`
naming the file, with ``zipfile.BadZipFile`` as its cause.

Examples
--------
>>> import os, tempfile, zipfile
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "x.zip")
>>> with zipfile.ZipFile(path, "w") as zf:
...     zf.writestr("k", b"hello")
>>> with zipfile.ZipFile(path) as zf:
...     info = zf.getinfo("k")
>>> reader = EntryReader(path)
>>> reader.read_ranges(lambda: [(info, None), (info, (1, 3)), (None, None)], fallback=None)
[b'hello', b'el', None]
>>> reader.close_file(); tmp.cleanup()
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO

from aiostore.abc import ByteRange
from aiostore.errors import BackendError, ClosedStoreError
from aiostore.keys import normalize_path

__all__ = ["EntryReader", "newest_entries"]

_LOCAL_HEADER_SIZE = 30
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_NAME_AND_EXTRA_LENGTHS = struct.Struct("<HH")  # at offset 26 of a local header
_ENCRYPTED = 0x1
_FAST_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_HAS_PREAD = hasattr(os, "pread")

#: Reads an entry the slow way (through ``zipfile``); None if every entry is plain.
Fallback = Callable[[zipfile.ZipInfo], bytes] | None


class EntryReader:
    """Reads entries of the Zip file at ``path`` by offset, from many threads at once.

    Parameters
    ----------
    path : str
        The Zip file; opened read-only here, closed by :meth:`close_file`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = open(path, "rb", buffering=0)  # closed by close_file
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._exclusive = False
        #: header offset -> offset of the entry's data, learnt on first read.
        self._data_offsets: dict[int, int] = {}

    def after_fork(self) -> None:
        """In a forked child: a fresh gate (a thread of the parent may have held it;
        the child has none of those threads, so no read is in flight)."""
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._exclusive = False

    # -- the gate: reads share the handle; closing or truncating waits for them ---
    @contextmanager
    def _shared(self) -> Iterator[int]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1
        try:
            if self._file is None:
                raise ClosedStoreError(f"the Zip file {self.path} is closed")
            yield self._file.fileno()
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait for the reads in flight and hold new ones off.

        Needed around closing the handle or truncating the file: a read in
        flight could otherwise ``pread`` a descriptor the OS has already given
        to another file, or an offset that no longer holds its entry.
        """
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()

    def forget_offsets(self) -> None:
        """Drop the learnt data offsets (the file was truncated; hold :meth:`exclusive`)."""
        self._data_offsets.clear()

    def reopen(self) -> None:
        """Open the file again, and forget the offsets (hold :meth:`exclusive`): it may
        have been replaced or rewritten since this reader opened it."""
        file = open(self.path, "rb", buffering=0)
        self.close_file()
        self._file = file
        self._data_offsets.clear()

    def close_file(self) -> None:
        """Close the read handle (hold :meth:`exclusive`, unless nothing else can read)."""
        file, self._file = self._file, None
        if file is not None:
            file.close()

    # -- reads ---------------------------------------------------------------------
    # Each read looks its entries up *inside* the gate: a ``clear`` (which truncates
    # the file and empties the index under :meth:`exclusive`) can then never come
    # between the lookup and the pread, which would read another entry's bytes.
    def read_ranges(
        self,
        lookup: Callable[[], Iterable[tuple[zipfile.ZipInfo | None, ByteRange | None]]],
        fallback: Fallback,
    ) -> list[bytes | None]:
        """Each ``(entry, byte_range)``'s bytes (None for no entry), under one hold of the gate.

        A damaged entry raises :class:`~aiostore.errors.BackendError` naming the file.
        """
        with self._shared() as fd:
            try:
                return [None if info is None else self._read(fd, info, r, fallback) for info, r in lookup()]
            except (zipfile.BadZipFile, EOFError) as exc:
                raise BackendError(self.path, f"cannot read it, the Zip file is damaged: {exc}") from exc

    def _read(
        self, fd: int, info: zipfile.ZipInfo, byte_range: ByteRange | None, fallback: Fallback
    ) -> bytes:
        if info.flag_bits & _ENCRYPTED or info.compress_type not in _FAST_METHODS or not _HAS_PREAD:
            if fallback is None:
                raise zipfile.BadZipFile(f"entry {info.filename!r} needs zipfile to read")
            return _slice(fallback(info), byte_range)
        if info.compress_type == zipfile.ZIP_STORED and byte_range is not None:
            # Stored bytes are the value: read only the range (no CRC to check on a part).
            start, stop, _ = slice(*byte_range).indices(info.file_size)
            return self._read_stored(fd, info, start, max(start, stop))
        data = self._read_stored(fd, info, 0, info.compress_size)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            try:
                data = zlib.decompress(data, -15, info.file_size)
            except zlib.error as exc:
                raise zipfile.BadZipFile(f"entry {info.filename!r} is corrupt: {exc}") from exc
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC-32 or size for entry {info.filename!r}")
        return _slice(data, byte_range)

    def _read_stored(self, fd: int, info: zipfile.ZipInfo, start: int, stop: int) -> bytes:
        """Bytes ``start:stop`` of the entry's stored data."""
        data_offset = self._data_offsets.get(info.header_offset)
        if data_offset is not None:
            return self._pread_exact(fd, stop - start, data_offset + start, info)
        # First read of this entry: guess the local header's length (usually the
        # central one's) and read header and data in one call.
        header_size = _LOCAL_HEADER_SIZE + len(info.filename.encode()) + len(info.extra)
        block = os.pread(fd, header_size + stop, info.header_offset)
        if len(block) < _LOCAL_HEADER_SIZE or block[:4] != _LOCAL_HEADER_SIGNATURE:
            raise zipfile.BadZipFile(f"no local header for entry {info.filename!r}")
        name_length, extra_length = _NAME_AND_EXTRA_LENGTHS.unpack_from(block, 26)
        data_offset = info.header_offset + _LOCAL_HEADER_SIZE + name_length + extra_length
        self._data_offsets[info.header_offset] = data_offset
        if data_offset - info.header_offset == header_size and len(block) == header_size + stop:
            return block[header_size + start :]
        return self._pread_exact(fd, stop - start, data_offset + start, info)

    def _pread_exact(self, fd: int, size: int, offset: int, info: zipfile.ZipInfo) -> bytes:
        data = os.pread(fd, size, offset)
        if len(data) == size:
            return data
        parts = [data]  # one read returns at most ~2 GiB on Linux
        done = len(data)
        while done < size:
            more = os.pread(fd, size - done, offset + done)
            if not more:
                raise zipfile.BadZipFile(f"entry {info.filename!r} is truncated")
            parts.append(more)
            done += len(more)
        return b"".join(parts)


def newest_entries(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Key -> newest entry of an open Zip file.

    Directory entries (``name/``, as ``zip -r`` and 7z write them) and names
    that are not valid keys (e.g. ``../x``) are not values, so not keys.

    >>> import io
    >>> zf = zipfile.ZipFile(io.BytesIO(), "w")
    >>> zf.writestr("dir/", b""); zf.writestr("dir/k", b"1"); zf.writestr("../x", b"2")
    >>> list(newest_entries(zf))
    ['dir/k']
    """
    index: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():  # in file order: a later duplicate wins
        name = info.filename
        if name.endswith("/"):
            continue
        try:
            if normalize_path(name) != name:
                continue
        except ValueError:
            continue
        index[name] = info
    return index


def _slice(data: bytes, byte_range: ByteRange | None) -> bytes:
    return data if byte_range is None else data[byte_range[0] : byte_range[1]]
