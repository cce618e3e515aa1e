"""The directory stores' read path: whole files and byte ranges, in as few syscalls as possible.

Used by :class:`aiostore.stores.directory.DirectoryStore` inside its batch loop;
plain functions of a file descriptor, so a read costs one call per step.
"""

from __future__ import annotations

import os
import stat

from aiostore.abc import ByteRange

__all__ = ["READ_FLAGS", "pread_range", "read_guessing_size", "read_whole"]

# O_NONBLOCK: opening a FIFO someone left in the tree must not hang a worker thread.
READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


def read_whole(fd: int) -> bytes | None:
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


#: Largest size guess :func:`read_guessing_size` reads with (a read of more
#: than ~2 GiB comes back short, which must not pass for the end of the file).
_MAX_GUESS = 1 << 26
_HAS_PREAD = hasattr(os, "pread")  # not on Windows


def read_guessing_size(fd: int, guess: int) -> bytes | None:
    """:func:`read_whole`, in one syscall when the file holds 1 to ``guess`` bytes.

    A batch of zarr chunks repeats a few sizes, so the ``fstat`` that
    :func:`read_whole` needs first is mostly wasted: skipping it is ~8% of a
    warm-cache batch, and one GIL hand-off less per key in each worker thread.
    ``pread`` (unlike ``read``) fails on FIFOs, sockets and terminals, and an
    empty or longer-than-guessed result goes the checked way, so non-regular
    files are still never values.
    """
    if guess >= _MAX_GUESS or not _HAS_PREAD:
        return read_whole(fd)
    try:
        data = os.pread(fd, guess + 1, 0)
    except OSError:
        return read_whole(fd)  # ESPIPE, EISDIR, ...: fstat decides, or the error is real
    if 0 < len(data) <= guess:
        return data  # a short positioned read of a file is its end
    return read_whole(fd)  # pread leaves the offset at 0 for this


def pread_range(fd: int, byte_range: ByteRange | None, size: int) -> bytes:
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
