"""Exceptions raised by aiostore stores.

Missing keys raise the built-in :class:`KeyError`, bad keys :class:`ValueError`
and bad values :class:`TypeError`; the classes here cover the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ReadOnlyError", "BatchWriteError", "ClosedStoreError"]


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
