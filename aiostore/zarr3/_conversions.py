"""Conversions between zarr 3's types and aiostore's: byte requests and buffers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zarr.abc.store import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
)
from zarr.core.buffer import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
    Buffer,
    BufferPrototype,
)

from aiostore.abc import ByteRange

__all__ = ["ranges_answer", "raw_value", "to_buffer", "to_byte_range"]


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


def to_buffer(data: bytes | memoryview, prototype: BufferPrototype) -> Buffer:
    """zarr's ``Buffer`` (of ``prototype``) over a value the backend read: no copy for host memory.

    ``data`` is ``bytes``, or a flat ``memoryview`` from a backend that hands out
    zero-copy views (LMDB with ``buffers=True``: read-only views of its memory map).
    zarr's CPU buffer wraps either with ``np.frombuffer``, sharing its memory,
    read-only -- as it does LocalStore's ``bytes``: zarr's codecs only read the
    bytes of a chunk they decode, and copy a chunk before writing into it. Only a
    view that is not contiguous (which no aiostore backend returns) is copied first.

    >>> import numpy as np, pickle
    >>> from zarr.core.buffer import default_buffer_prototype
    >>> view = memoryview(pickle.PickleBuffer(b"abc"))
    >>> buffer = to_buffer(view, default_buffer_prototype())
    >>> buffer.to_bytes(), np.shares_memory(buffer.as_numpy_array(), np.frombuffer(view, "B"))
    (b'abc', True)
    """
    try:
        return prototype.buffer.from_bytes(data)
    except ValueError:
        if isinstance(data, memoryview) and not data.contiguous:
            return prototype.buffer.from_bytes(data.tobytes())
        raise


def ranges_answer(
    key: str, prototype: BufferPrototype, values: Sequence[bytes | None]
) -> list[tuple[int, Buffer | None]]:
    """zarr's answer to ``Store.get_ranges`` for the values of ``key``'s byte ranges:
    ``(index, Buffer)`` pairs -- or, if the key is missing (any value None), the
    error zarr's own raises.

    >>> from zarr.core.buffer import default_buffer_prototype
    >>> [(i, b.to_bytes()) for i, b in ranges_answer("k", default_buffer_prototype(), [b"ab", b""])]
    [(0, b'ab'), (1, b'')]
    >>> ranges_answer("k", default_buffer_prototype(), [b"ab", None])
    Traceback (most recent call last):
    ...
    ExceptionGroup: chunk read failed (1 sub-exception)
    """
    if any(value is None for value in values):
        raise BaseExceptionGroup("chunk read failed", [FileNotFoundError(key)])
    return [(i, to_buffer(value, prototype)) for i, value in enumerate(values)]  # type: ignore[arg-type]
