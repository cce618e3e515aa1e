"""Conversions between zarr 3's types and aiostore's: byte requests and buffers."""

from __future__ import annotations

from typing import Any

from zarr.abc.store import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer  # type: ignore[import-not-found,import-untyped,unused-ignore]

from aiostore.abc import ByteRange

__all__ = ["raw_value", "to_byte_range"]


def to_byte_range(byte_range: object) -> ByteRange | None:
    """Translate a zarr 3 ``ByteRequest`` into an aiostore ``byte_range``.

    ``SuffixByteRequest(0)`` has no aiostore spelling (``(-0, None)`` would be
    the whole value); it becomes ``(0, 0)``, the empty range.

    >>> from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    >>> to_byte_range(RangeByteRequest(1, 4)), to_byte_range(OffsetByteRequest(2))
    ((1, 4), (2, None))
    >>> to_byte_range(SuffixByteRequest(3)), to_byte_range(None)
    ((-3, None), None)
    >>> to_byte_range((0, 2))
    Traceback (most recent call last):
    ...
    TypeError: Unexpected byte_range, got (0, 2).
    """
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        if byte_range.start < 0 or byte_range.end < byte_range.start:
            raise ValueError(f"invalid byte range {byte_range!r}: need 0 <= start <= end")
        return (byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        if byte_range.offset < 0:
            raise ValueError(f"invalid byte range {byte_range!r}: the offset must be >= 0")
        return (byte_range.offset, None)
    if isinstance(byte_range, SuffixByteRequest):
        if byte_range.suffix < 0:
            raise ValueError(f"invalid byte range {byte_range!r}: the suffix must be >= 0")
        return (-byte_range.suffix, None) if byte_range.suffix else (0, 0)
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}.")


def raw_value(value: Buffer, key: str) -> Any:
    """The bytes-like object inside zarr's ``value`` (for the backend to write under ``key``)."""
    if not isinstance(value, Buffer):
        raise TypeError(
            f"ZarrStore.set(): value for key {key!r} must be a zarr Buffer, not {type(value).__name__}"
        )
    return value.as_buffer_like()
