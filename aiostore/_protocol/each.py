"""Batch hooks built from one-key steps, for backends with no batch call of their own.

A blocking backend's hooks take whole batches; where the backend itself works one
key at a time (a dict, a dbm file, a directory of files), these run the step over
the batch with the protocol's rules: a missing key is None or listed as missing,
and a write that fails fails only its own key. Call them inside whatever the
backend holds for a batch (a lock, a transaction). Exported by :mod:`aiostore.abc`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiostore._protocol.checks import Buffer, Request, slice_byte_range
from aiostore.errors import BatchWriteError

__all__ = ["delete_each", "read_each", "write_each"]


def read_each(requests: Sequence[Request], read: Callable[[str], bytes | None]) -> list[bytes | None]:
    """Answer ``(key, byte_range)`` requests with ``read(key)`` (None if missing), in order.

    >>> data = {"a": b"abc"}
    >>> read_each([("a", None), ("a", (-1, None)), ("b", None)], data.get)
    [b'abc', b'c', None]
    """
    out: list[bytes | None] = []
    for key, byte_range in requests:
        value = read(key)
        out.append(value if value is None or byte_range is None else slice_byte_range(value, byte_range))
    return out


def write_each(items: Sequence[tuple[str, Buffer]], write: Callable[[str, Buffer], object]) -> None:
    """``write(key, value)`` for each item; :class:`~aiostore.BatchWriteError` names
    the keys whose write raised (the others are written).

    >>> data = {}
    >>> write_each([("a", b"1")], data.__setitem__); data
    {'a': b'1'}
    """
    failed: dict[str, BaseException] = {}
    for key, value in items:
        try:
            write(key, value)
        except Exception as exc:
            failed[key] = exc
    if failed:
        raise BatchWriteError(failed)


def delete_each(keys: Sequence[str], delete: Callable[[str], object]) -> list[str]:
    """``delete(key)`` for each key, which raises ``KeyError`` for a missing one;
    returns the missing keys.

    >>> data = {"a": b"1"}
    >>> delete_each(["a", "b"], data.__delitem__), data
    (['b'], {})
    """
    missing: list[str] = []
    for key in keys:
        try:
            delete(key)
        except KeyError:
            missing.append(key)
    return missing
