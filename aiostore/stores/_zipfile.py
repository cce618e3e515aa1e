"""The ``zipfile.ZipFile`` side of a :class:`~aiostore.stores.zip.ZipStore`: opening
it (refusing a file that is not a Zip file, taking the writer lock), writing its
central directory and opening it again, letting go of it in a forked child.
Writing entries is :mod:`._zipwrite`'s.

The ``ZipFile`` works on an unbuffered file object of its own (:class:`io.FileIO`),
which stays open when the ``ZipFile`` is closed and opened again on it: no
buffer holds data the file does not have, and no buffer lock can be held by a
thread that a forked child does not have.
"""

from __future__ import annotations

import errno
import io
import os
import zipfile
from typing import Literal, TypeAlias

from aiostore.errors import BackendError
from aiostore.stores._fsops import unlink_quietly
from aiostore.stores._writerlock import WriterLock, lock_for_writing
from aiostore.stores._zipwrite import close_zip

__all__ = ["ZipMode", "abandon_in_child", "open_zip", "reopen_zip"]

#: The modes of :class:`zipfile.ZipFile`.
ZipMode: TypeAlias = Literal["r", "w", "a", "x"]


def open_zip(
    path: str, mode: ZipMode, compression: int, allowZip64: bool
) -> tuple[zipfile.ZipFile, io.FileIO, WriterLock | None]:
    """The ``ZipFile`` for a store, the file it works on (closed by the caller, after
    the ``ZipFile``), and the writer lock a writable one holds (mode other than ``"r"``).

    A file that is not a Zip file is refused with :class:`BackendError` (in mode
    ``"a"`` too, where ``zipfile`` would append an archive to it), naming what it
    is if it looks like a Zip file whose writer never closed it.
    """
    if mode == "x" and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "ZipStore mode 'x': the file exists", path)
    existed = os.path.lexists(path)
    writer_lock = None if mode == "r" else lock_for_writing(path, "ZipStore", sidecar=False)
    raw: io.FileIO | None = None
    try:
        if mode == "r":
            raw = io.FileIO(path, "r")
        else:
            extra = os.O_CREAT | (os.O_TRUNC if mode in ("w", "x") else 0)
            raw = io.FileIO(path, "r+", opener=lambda name, flags: os.open(name, flags | extra, 0o666))
            if mode == "a" and os.fstat(raw.fileno()).st_size:
                zipfile.ZipFile(raw).close()  # zipfile would append an archive to anything else
                raw.seek(0)
        zf = zipfile.ZipFile(
            raw, mode="w" if mode == "x" else mode, compression=compression, allowZip64=allowZip64
        )
        return zf, raw, writer_lock
    except BaseException as exc:
        if raw is not None:
            raw.close()
        if writer_lock is not None:
            writer_lock.release()
            if not existed:
                unlink_quietly(path)  # made by the lock; nothing was written
        if isinstance(exc, zipfile.BadZipFile):
            raise BackendError(path, _not_a_zip(path, mode)) from exc
        raise


def reopen_zip(
    zf: zipfile.ZipFile, raw: io.FileIO, *, empty: bool, modified: bool, compression: int, allowZip64: bool
) -> zipfile.ZipFile:
    """Close ``zf`` (writing its central directory; see :func:`._zipwrite.close_zip`
    for ``modified``), and open ``raw`` again for appending, or ``empty`` (truncated).
    If closing fails, ``zf`` has let go of the file and later writes say so."""
    close_zip(zf, modified=modified, allowZip64=allowZip64)
    if empty:
        raw.seek(0)
        raw.truncate()
    return zipfile.ZipFile(raw, mode="w" if empty else "a", compression=compression, allowZip64=allowZip64)


def abandon_in_child(zf: zipfile.ZipFile, raw: io.FileIO) -> None:
    """In a forked child: make the parent's open ``ZipFile`` harmless here.

    Closing it (or its finalizer) would write a central directory into the
    parent's file, at the file position the two processes share; a writer
    thread of the parent that did not come along may hold its lock. With no
    ``fp`` its close does nothing, and the descriptor now leads to the null
    device, so that nothing left of a write in flight reaches the file either.
    """
    zf.fp = None
    try:
        fd = raw.fileno()
        null = os.open(os.devnull, os.O_RDWR)
    except (OSError, ValueError):
        return
    try:
        os.dup2(null, fd, inheritable=False)
    except OSError:
        pass
    finally:
        os.close(null)


def _not_a_zip(path: str, mode: ZipMode) -> str:
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError:
        head = b""
    left = "" if mode == "r" else "; it was left unchanged"
    if head == b"PK\x03\x04":
        return (
            "a Zip file without its central directory: its writer has not closed it (it is still "
            "writing, or was killed or crashed before close()), so no Zip reader can list its entries"
            f"{left}"
        )
    return f"not a Zip file (ZipStore mode={mode!r}){left}"
