"""Exceptions raised by aiostore stores.

Missing keys raise the built-in :class:`KeyError`, bad keys :class:`ValueError`
and bad values :class:`TypeError`; the classes here cover the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ReadOnlyError",
    "BatchWriteError",
    "ClosedStoreError",
    "BadCompressorError",
    "MetadataError",
    "ContainsArrayError",
    "ContainsGroupError",
]


class ReadOnlyError(PermissionError):
    """A write or delete was attempted on a read-only store.

    >>> isinstance(ReadOnlyError("store is read-only"), PermissionError)
    True
    """


class ClosedStoreError(ValueError):
    """An operation was attempted on a closed store (a :class:`ValueError`)."""


class BatchWriteError(OSError):
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


class BadCompressorError(ValueError):
    """The compressor is not a numcodecs codec (has no ``get_config``).

    >>> raise BadCompressorError("zlib")
    Traceback (most recent call last):
    ...
    aiostore.errors.BadCompressorError: bad compressor; expected a numcodecs Codec object, found 'zlib'
    """

    def __init__(self, compressor: object) -> None:
        super().__init__(f"bad compressor; expected a numcodecs Codec object, found {compressor!r}")


class MetadataError(ValueError):
    """Stored metadata is missing a field or is of an unsupported zarr format."""


class ContainsArrayError(ValueError):
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


class ContainsGroupError(ValueError):
    """There is already a group at the path (zarr 2's error of that name).

    >>> str(ContainsGroupError(""))
    "path '' contains a group"
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"path {path!r} contains a group")

    def __reduce__(self) -> tuple[type[ContainsGroupError], tuple[str]]:
        return (type(self), (self.path,))


# -- the store's own methods, or the key listing ---------------------------------
