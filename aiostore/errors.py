"""Exceptions raised by aiostore stores.

Missing keys raise the built-in :class:`KeyError`, bad keys :class:`ValueError`
and bad values :class:`TypeError`; the classes here cover the rest. Every one
of them is a :class:`StoreError`, and also the built-in type a caller would
catch for that kind of failure (``ReadOnlyError`` is a :class:`PermissionError`,
``KeyConflictError`` a :class:`KeyError`, ...), so both ways of catching work.

Errors of a backend library (``lmdb.Error``, ``dbm.error``,
``zipfile.BadZipFile``) reach the caller as a :class:`BackendError` naming the
path, with the library's exception as ``__cause__``.

>>> import aiostore
>>> try:
...     aiostore.MemoryStore(read_only=True).set_sync("a", b"x")
... except StoreError as exc:
...     print(type(exc).__name__, isinstance(exc, PermissionError))
ReadOnlyError True
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "StoreError",
    "ReadOnlyError",
    "KeyConflictError",
    "BackendError",
    "SettingsConflictError",
    "StoreLockedError",
    "BatchWriteError",
    "ClosedStoreError",
    "BadCompressorError",
    "MetadataError",
    "ContainsArrayError",
    "ContainsGroupError",
    "CopyError",
]


class StoreError(Exception):
    """Base class of every error of aiostore's own.

    >>> issubclass(ClosedStoreError, StoreError) and issubclass(BackendError, StoreError)
    True
    """


class ReadOnlyError(StoreError, PermissionError):
    """A write or delete was attempted on a read-only store.

    >>> isinstance(ReadOnlyError("store is read-only"), PermissionError)
    True
    """


class ClosedStoreError(StoreError, ValueError):
    """An operation was attempted on a closed store (a :class:`ValueError`)."""


class BatchWriteError(StoreError, OSError):
    """Some keys of a ``set_many`` (or ``delete_many``) failed.

    The keys that were written are fully written; the keys in :attr:`failed`
    are unchanged. ``failed`` maps each failed key to its exception.

    >>> err = BatchWriteError({"a": OSError(28, "No space left on device")})
    >>> sorted(err.failed)
    ['a']
    """

    def __init__(self, failed: Mapping[str, BaseException]) -> None:
        self.failed: dict[str, BaseException] = dict(failed)
        keys = sorted(self.failed)
        shown = ", ".join(repr(k) for k in keys[:10])
        more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
        first = self.failed[keys[0]] if keys else None
        super().__init__(
            f"{len(keys)} key(s) failed to write: {shown}{more}"
            + (f" (first error: {first!r})" if first is not None else "")
        )

    def __reduce__(self) -> tuple[type[BatchWriteError], tuple[dict[str, BaseException]]]:
        return (type(self), (self.failed,))


class BadCompressorError(StoreError, ValueError):
    """The compressor is not a numcodecs codec (has no ``get_config``).

    >>> raise BadCompressorError("zlib")
    Traceback (most recent call last):
    ...
    aiostore.errors.BadCompressorError: bad compressor; expected a numcodecs Codec object, found 'zlib'
    """

    def __init__(self, compressor: object) -> None:
        super().__init__(f"bad compressor; expected a numcodecs Codec object, found {compressor!r}")


class MetadataError(StoreError, ValueError):
    """Stored metadata is missing a field or is of an unsupported zarr format."""


class ContainsArrayError(StoreError, ValueError):
    """There is already an array at the path (zarr 2's error of that name).

    >>> raise ContainsArrayError("foo")
    Traceback (most recent call last):
    ...
    aiostore.errors.ContainsArrayError: path 'foo' contains an array
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"path {path!r} contains an array")

    def __reduce__(self) -> tuple[type[ContainsArrayError], tuple[str]]:
        return (type(self), (self.path,))


class ContainsGroupError(StoreError, ValueError):
    """There is already a group at the path (zarr 2's error of that name).

    >>> str(ContainsGroupError(""))
    "path '' contains a group"
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"path {path!r} contains a group")

    def __reduce__(self) -> tuple[type[ContainsGroupError], tuple[str]]:
        return (type(self), (self.path,))


class KeyConflictError(StoreError, KeyError):
    """A hierarchical store cannot hold both a key and a key below it (``0`` and ``0/0``).

    Memory and directory stores keep keys as a tree, where a name is either a
    value or a folder of other keys; writing the second of two such keys is
    refused with this error, and nothing is written. It is a :class:`KeyError`,
    as zarr 2's stores raise there; :attr:`key` is the refused key and
    :attr:`existing` the stored key it conflicts with.

    >>> err = KeyConflictError("0/0", "0")
    >>> print(err)
    cannot store '0/0': the key '0' holds a value, and a key cannot also have keys below it
    >>> isinstance(err, KeyError), err.existing
    (True, '0')
    >>> print(KeyConflictError("0", "0/0"))
    cannot store '0': there are keys below it, such as '0/0', and a key cannot also hold a value
    """

    def __init__(self, key: str, existing: str) -> None:
        self.key = key
        self.existing = existing
        super().__init__(key, existing)

    def __str__(self) -> str:
        if self.existing.startswith(self.key + "/"):
            return (
                f"cannot store {self.key!r}: there are keys below it, such as {self.existing!r}, "
                "and a key cannot also hold a value"
            )
        return (
            f"cannot store {self.key!r}: the key {self.existing!r} holds a value, "
            "and a key cannot also have keys below it"
        )

    def __reduce__(self) -> tuple[type[KeyConflictError], tuple[str, str]]:
        return (type(self), (self.key, self.existing))


class BackendError(StoreError, OSError):
    """The file or database behind a store failed, or is not what the store expects.

    Raised instead of a backend library's own error (``lmdb.Error``,
    ``dbm.error``, ``zipfile.BadZipFile``), which is kept as ``__cause__``.
    :attr:`path` is the store's path; the message names it and says what went wrong.

    >>> err = BackendError("/data/x.zip", "not a Zip file")
    >>> print(err)
    /data/x.zip: not a Zip file
    >>> err.path
    '/data/x.zip'
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"

    def __reduce__(self) -> tuple[type[BackendError], tuple[str, str]]:
        return (type(self), (self.path, self.problem))


class SettingsConflictError(StoreError, ValueError):
    """A store was opened on a path already open in this process with other settings.

    LMDB opens a database once per process, so a second ``LMDBStore`` on a path
    shares the first one's environment: settings that differ cannot take
    effect, and are refused instead of silently ignored.

    >>> err = SettingsConflictError("/data/db", {"map_size": (2**20, 2**30)})
    >>> print(str(err).replace("; ", ";\\n"))
    /data/db is already open in this process with other settings: map_size=1048576 there, 1073741824 here;
    close the other stores on it first, or open it with the same settings
    """

    def __init__(self, path: str, differences: Mapping[str, tuple[object, object]]) -> None:
        self.path = path
        self.differences = dict(differences)
        shown = ", ".join(
            f"{name}={old!r} there, {new!r} here" for name, (old, new) in self.differences.items()
        )
        super().__init__(
            f"{path} is already open in this process with other settings: {shown}; "
            "close the other stores on it first, or open it with the same settings"
        )

    def __reduce__(self) -> tuple[type[SettingsConflictError], tuple[str, dict[str, tuple[object, object]]]]:
        return (type(self), (self.path, self.differences))


class StoreLockedError(StoreError, OSError):
    """Another process (or store) has the file open for writing, and the format takes one writer.

    Zip files and DBM databases cannot be written by several processes at
    once (each writer keeps its own index, and the last to close wins), so a
    writable store takes an exclusive lock on its file at open and a second
    writer is refused with this error rather than corrupting the file.

    >>> print(str(StoreLockedError("/data/x.zip", "ZipStore")).replace("; ", ";\\n"))
    /data/x.zip is open for writing elsewhere (another process or store holds its lock);
    ZipStore takes one writer at a time: close the other writer, or open this one with mode='r'
    """

    def __init__(self, path: str, store: str, read_mode: str = "mode='r'") -> None:
        self.path = path
        self.store = store
        self.read_mode = read_mode
        super().__init__(
            f"{path} is open for writing elsewhere (another process or store holds its lock); "
            f"{store} takes one writer at a time: close the other writer, or open this one with {read_mode}"
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[type[StoreLockedError], tuple[str, str, str]]:
        return (type(self), (self.path, self.store, self.read_mode))


class CopyError(StoreError, RuntimeError):
    """:func:`aiostore.copy_store` found a key already in the destination (``if_exists="raise"``).

    A :class:`RuntimeError`, as zarr 2's ``CopyError`` is.

    >>> print(CopyError("key 'a/0' exists in destination"))
    key 'a/0' exists in destination
    """
