"""The ``zipfile.ZipFile`` side of a :class:`~aiostore.stores.zip.ZipStore`: opening
it (refusing a file that is not a Zip file, taking the writer lock) and undoing a
write that failed part-way.
"""

from __future__ import annotations

import errno
import os
import zipfile
from typing import Literal, TypeAlias

from aiostore.errors import BackendError
from aiostore.stores._fsops import unlink_quietly
from aiostore.stores._writerlock import WriterLock, lock_for_writing

__all__ = ["ZipMode", "open_zip", "undo_failed_write"]

#: The modes of :class:`zipfile.ZipFile`.
ZipMode: TypeAlias = Literal["r", "w", "a", "x"]


def open_zip(
    path: str, mode: ZipMode, compression: int, allowZip64: bool
) -> tuple[zipfile.ZipFile, WriterLock | None]:
    """The ``ZipFile`` for a store, and the writer lock a writable one holds.

    A file that is not a Zip file is refused with :class:`BackendError` (in mode
    ``"a"`` too, where ``zipfile`` would append an archive to it), naming what it
    is if it looks like a Zip file whose writer never closed it.
    """
    if mode == "x" and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "ZipStore mode 'x': the file exists", path)
    existed = os.path.lexists(path)
    writer_lock = None if mode == "r" else lock_for_writing(path, "ZipStore", sidecar=False)
    try:
        if mode == "a" and os.path.getsize(path):
            zipfile.ZipFile(path).close()  # zipfile would append an archive to anything else
        return zipfile.ZipFile(
            path, mode="w" if mode == "x" else mode, compression=compression, allowZip64=allowZip64
        ), writer_lock
    except BaseException as exc:
        if writer_lock is not None:
            writer_lock.release()
            if not existed:
                unlink_quietly(path)  # made by the lock; nothing was written
        if isinstance(exc, zipfile.BadZipFile):
            raise BackendError(path, _not_a_zip(path, mode)) from exc
        raise


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


def undo_failed_write(zf: zipfile.ZipFile, info: zipfile.ZipInfo, previous: zipfile.ZipInfo | None) -> None:
    """Keep a failed write from becoming an entry and from leaving junk at the end.

    ``zipfile`` registers an entry whose data write failed part-way if rewriting
    its header still works; that torn entry would be listed at ``close()``.
    """
    if zf.filelist and zf.filelist[-1] is info:
        zf.filelist.pop()
        if previous is None:
            zf.NameToInfo.pop(info.filename, None)
        else:
            zf.NameToInfo[info.filename] = previous
        zf.start_dir = info.header_offset  # the next entry overwrites the torn one
    try:  # a partial entry past the end would hide the end record from readers
        if zf.fp is not None:
            zf.fp.seek(zf.start_dir)
            zf.fp.truncate()
    except (OSError, ValueError):
        pass
