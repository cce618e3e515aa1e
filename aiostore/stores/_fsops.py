"""File-system helpers of the directory stores: writing, removing, walking.

The read path lives in :mod:`aiostore.stores.directory` itself, so that a read
passes through as few layers as possible.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from collections.abc import Iterator

from aiostore.abc import Buffer
from aiostore.errors import KeyConflictError
from aiostore.keys import KeyLimits, normalize_path

__all__ = [
    "MISSING",
    "fs_key_limits",
    "fs_path",
    "TEMP_PREFIX",
    "TEMP_FILE_GRACE",
    "below_value",
    "naming_key",
    "remove_stale_temp_files",
    "size_of",
    "empty_dir",
    "move",
    "prune_empty_dirs",
    "remove",
    "refuse_temp_names",
    "is_plain_path",
    "remove_tree",
    "unlink_quietly",
    "walk",
    "write_all",
    "write_atomically",
]

#: Name prefix of in-flight temporary files; key segments may not start with it.
TEMP_PREFIX = ".aiostore-tmp-"
#: errnos meaning "no value can be at this path".
MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_all(fd: int, value: Buffer) -> None:
    written = os.write(fd, value)
    if written < len(value):
        view = memoryview(value)
        while written < len(view):
            written += os.write(fd, view[written:])


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def remove(path: str) -> None:
    """Remove a file, a symlink (never its target) or a whole directory tree."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def below_value(path: str, key: str) -> Exception:
    """The error for writing ``key`` (at ``path``) where a file is in the way.

    Called after the write failed with ``ENOTDIR``/``EEXIST``: a
    :class:`KeyConflictError` (a KeyError, as zarr 2) naming the highest parent
    key that holds a value, or, if none does, a ``NotADirectoryError`` naming the
    store's root, which is then below a file.
    """
    parents: list[tuple[str, str]] = []  # (key, path), deepest first
    prefix, parent = key, path
    while "/" in prefix:
        prefix = prefix.rpartition("/")[0]
        parent = os.path.dirname(parent)
        parents.append((prefix, parent))
    for parent_key, parent_path in reversed(parents):
        if os.path.lexists(parent_path) and not os.path.isdir(parent_path):
            return KeyConflictError(key, parent_key)
    root = os.path.dirname(parent)
    return NotADirectoryError(
        errno.ENOTDIR, f"the store's root is not a directory (writing key {key!r})", root
    )


def naming_key(exc: OSError, key: str, path: str) -> OSError:
    """``exc`` (raised writing a temporary file) as the same error naming ``key`` and
    its final ``path``: the temporary file is an internal detail."""
    if exc.errno is None:
        return exc
    named = type(exc)(exc.errno, f"{exc.strerror} (writing key {key!r})", path)
    named.__cause__ = exc
    return named


def write_atomically(root: str, path: str, key: str, value: Buffer, token: str) -> None:
    """Write ``key``'s value to ``path`` (below ``root``) atomically: a temp file in the
    same directory, then :func:`os.replace`; on any failure the temp file is removed,
    the old value stays, and directories made for it (and left empty) are removed.

    A key below a value (``0/0`` where ``0`` is one) is refused with
    :class:`~aiostore.errors.KeyConflictError`; a value where a directory is
    replaces it (zarr 2's rule); any other :class:`OSError` is raised as the same
    error naming the key and its path.
    """
    try:
        _write_atomically(root, path, key, value, token)
    except KeyConflictError:
        raise
    except OSError as exc:
        raise naming_key(exc, key, path) from exc


def _write_atomically(root: str, path: str, key: str, value: Buffer, token: str) -> None:
    dir_path = os.path.dirname(path)
    temp = os.path.join(dir_path, TEMP_PREFIX + token)
    made_dirs = False
    try:
        for attempt in range(3):
            try:
                fd = os.open(temp, _WRITE_FLAGS, 0o666)
                break
            except FileNotFoundError:
                # The directory is missing: made here, unless a concurrent delete's
                # pruning removes it again before the open (then try once more).
                try:
                    os.makedirs(dir_path, exist_ok=True)
                except (FileExistsError, NotADirectoryError):
                    raise below_value(path, key) from None
                made_dirs = True
                if attempt == 2:
                    raise
            except NotADirectoryError:
                raise below_value(path, key) from None
        try:
            try:
                write_all(fd, value)
            finally:
                os.close(fd)
            try:
                os.replace(temp, path)
            except OSError as exc:
                if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise
                if not os.path.isdir(path) or os.path.islink(path):
                    raise
                shutil.rmtree(path)  # zarr 2: a value replaces a directory at its key
                os.replace(temp, path)
        except BaseException:
            # Any failure, KeyboardInterrupt included: the key keeps its old value.
            unlink_quietly(temp)
            raise
    except BaseException:
        if made_dirs:  # a name with no key below it must not be listed
            prune_empty_dirs(root, dir_path)
        raise


#: Seconds a temporary file must predate the store's open to count as stale: file
#: times are coarse (a file made just after the open can carry an earlier time).
TEMP_FILE_GRACE = 1.0


def remove_stale_temp_files(root: str, older_than: float) -> int:
    """Remove the temporary files below ``root`` last changed more than
    :data:`TEMP_FILE_GRACE` before ``older_than`` (a :func:`time.time` value), those a
    killed writer left, and the directories that leaves empty; returns how many files."""
    removed = 0
    emptied: list[str] = []
    for dir_path, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                path = os.path.join(dir_path, name)
                try:
                    if os.lstat(path).st_mtime < older_than - TEMP_FILE_GRACE:
                        os.unlink(path)
                        removed += 1
                        emptied.append(dir_path)
                except FileNotFoundError:
                    continue  # gone: its write finished
    for dir_path in reversed(emptied):  # deepest last seen first
        prune_empty_dirs(root, dir_path)
    return removed


def size_of(target: str) -> int:
    """zarr 2's ``getsize`` of a path: a file's size, or the sum of the files directly in a directory."""
    try:
        st = os.stat(target)
    except OSError as exc:
        if exc.errno in MISSING:
            return 0
        raise
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if not stat.S_ISDIR(st.st_mode):
        return 0
    size = 0
    with os.scandir(target) as entries:
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX) and entry.is_file():
                size += entry.stat().st_size
    return size


def empty_dir(root: str) -> None:
    """Remove everything in the directory ``root`` (not ``root`` itself); none there is fine."""
    try:
        with os.scandir(root) as scan:
            entries = list(scan)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            remove(entry.path)
        except FileNotFoundError:
            pass


def walk(top: str, key_prefix: str, start: str) -> Iterator[str]:
    """Keys below ``top`` (whose names start with ``start`` at the first level).

    Depth first with an explicit stack; symlinked directories are not
    descended (no loops), as zarr 2's ``os.walk`` does.
    """
    stack = [(top, key_prefix, start)]
    while stack:
        dir_path, prefix, first = stack.pop()
        subdirs = []
        try:
            entries = os.scandir(dir_path)
        except OSError as exc:
            if exc.errno in MISSING:
                continue
            raise
        with entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(first) or name.startswith(TEMP_PREFIX):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append((entry.path, f"{prefix}{name}/", ""))
                    elif entry.is_file():
                        yield prefix + name
                except OSError:
                    continue  # removed while listed
        stack.extend(reversed(subdirs))


def move(root: str, src_path: str, dst_path: str, src: str, dst: str) -> None:
    """Move the file or tree of key ``src`` (at ``src_path``) to ``dst`` (at ``dst_path``),
    both below ``root``; an empty directory at ``dst`` is replaced, anything else refused.
    Directories the move leaves empty are removed, never ``root``."""
    if not os.path.lexists(src_path):
        raise KeyError(src)
    if os.path.lexists(dst_path):
        try:
            # An empty directory (left by deleting its last key) holds nothing:
            # rmdir removes it only if it is one, atomically.
            if os.path.islink(dst_path):
                raise OSError(errno.EEXIST, "a symbolic link")
            os.rmdir(dst_path)
        except OSError:
            raise FileExistsError(f"cannot rename {src!r} to {dst!r}: {dst!r} exists") from None
    try:
        os.makedirs(os.path.dirname(dst_path), exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise below_value(dst_path, dst) from None
    os.rename(src_path, dst_path)
    prune_empty_dirs(root, os.path.dirname(src_path))  # as os.renames does


# A scheme of two letters or more, then ":/" (a drive letter "C:/" is a path).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def fs_path(path: str | os.PathLike[str], store: str) -> str:
    """``path`` made absolute; a path that looks like a URL (``scheme://``) is
    refused, pointing to :func:`aiostore.open_store` (a file store would otherwise
    make a local folder named ``s3:``).

    >>> fs_path("s3://bucket/x", "DirectoryStore")
    Traceback (most recent call last):
    ...
    ValueError: DirectoryStore takes a file-system path, not the URL 's3://bucket/x': use aiostore.open_store('s3://bucket/x')
    """
    text = os.fspath(path)
    if isinstance(text, str) and _URL.match(text):
        raise ValueError(
            f"{store} takes a file-system path, not the URL {text!r}: use aiostore.open_store({text!r})"
        )
    return os.path.abspath(text)


def fs_key_limits(root: str) -> KeyLimits:
    """The keys a file system can hold below ``root``: names of at most 255 bytes
    (NAME_MAX), paths of at most 4095 (PATH_MAX, less its NUL).

    >>> fs_key_limits("/data/")[:2]
    (4089, 255)
    """
    return KeyLimits(max_key_bytes=4095 - len(os.fsencode(root)), max_segment_bytes=255)


def prune_empty_dirs(root: str, directory: str) -> None:
    """Remove ``directory`` and those above it while they are empty, up to ``root`` (kept).

    A name whose last key was deleted is then gone from listings, as it is from
    every other store; ``os.rmdir`` removes only an empty directory, atomically, so a
    concurrent write into one keeps it.
    """
    root_slash = os.path.join(root, "")
    parent = directory
    while parent != root and parent.startswith(root_slash):
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


def refuse_temp_names(normalized: str, original: object) -> None:
    """Refuse a key or path with a segment starting with :data:`TEMP_PREFIX` (a ValueError naming it)."""
    if TEMP_PREFIX in normalized and any(s.startswith(TEMP_PREFIX) for s in normalized.split("/")):
        raise ValueError(
            f"invalid key {original!r}: names starting with {TEMP_PREFIX!r} are reserved "
            "for the temporary files of atomic writes"
        )


def is_plain_path(path: str) -> bool:
    """True if ``path`` is a normalized path that a key could start with."""
    try:
        if normalize_path(path) != path:
            return False
        refuse_temp_names(path, path)
    except ValueError:
        return False
    return True
