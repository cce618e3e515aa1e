"""The data the conformance tests share: keys, values and byte ranges, with small helpers."""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import numpy as np

from aiostore.abc import Store

__all__ = [
    "BAD_BYTE_RANGES",
    "BAD_KEYS",
    "BYTES_LIKE",
    "BYTE_RANGES",
    "NOT_BYTES_LIKE",
    "ODD_KEYS",
    "sorted_keys",
    "value_for",
]

#: Keys a store must refuse with ``ValueError`` (the README's "bad key" rule).
BAD_KEYS = ["..", "../x", "a/../b", ".", "./a", "a/./b", "a/.", "a\x00b", "\x00", "", "/", "//"]

#: Keys with characters that must round-trip unchanged through every store.
ODD_KEYS = [
    ".zgroup",
    "a.b/.zarray",
    "with space/x y",
    "grüße/数据",
    "a-b_c/0.0.0",
    "~tilde/=eq",
    "..hidden/x.",  # starts with "..", ends with ".": plain names all the same
    "e./..f",
]


def value_for(i: int, size: int = 10) -> bytes:
    """A value that differs from key to key (and is easy to recognize)."""
    return (f"<{i}>".encode() * size)[:size]


def _spread(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A view of ``a``'s values that is neither C- nor Fortran-contiguous."""
    big = np.zeros((4, 4), dtype=a.dtype)
    big[::2, ::2] = a
    return big[::2, ::2]


#: Bytes-like values that all store ``b"\x01\x02\x03\x04"`` (memory order).
BYTES_LIKE: dict[str, Callable[[], object]] = {
    "bytes": lambda: b"\x01\x02\x03\x04",
    "bytearray": lambda: bytearray(b"\x01\x02\x03\x04"),
    "memoryview": lambda: memoryview(b"\x00\x01\x02\x03\x04\x05")[1:5],
    "memoryview-strided": lambda: memoryview(bytes([1, 0, 2, 0, 3, 0, 4, 0]))[::2],
    "array.array": lambda: array.array("B", [1, 2, 3, 4]),
    "numpy-u1": lambda: np.array([1, 2, 3, 4], dtype="u1"),
    "numpy-u2": lambda: np.array([0x0201, 0x0403], dtype="<u2"),
    "numpy-2d": lambda: np.array([[1, 2], [3, 4]], dtype="u1"),
    "numpy-strided": lambda: np.array([1, 9, 2, 9, 3, 9, 4, 9], dtype="u1")[::2],
    "numpy-fortran": lambda: np.asfortranarray(np.array([[1, 3], [2, 4]], dtype="u1")),
    "numpy-transposed": lambda: np.array([[1, 2], [3, 4]], dtype="u1").T,
    "numpy-2d-strided": lambda: _spread(np.array([[1, 2], [3, 4]], dtype="u1")),
}

#: Values without the buffer protocol: ``TypeError``, nothing of the call written.
NOT_BYTES_LIKE: dict[str, Callable[[], object]] = {
    "list": lambda: [1, 2],
    "str": lambda: "text",
    "int": lambda: 3,
    "None": lambda: None,
    "dict": lambda: {"a": 1},
    "object-array": lambda: np.array([object()]),
}

#: ``(byte_range, expected)`` over the value ``b"0123456789"``.
BYTE_RANGES: list[tuple[Any, bytes]] = [
    (None, b"0123456789"),
    ((0, None), b"0123456789"),
    ((2, 5), b"234"),
    ((7, None), b"789"),
    ((-3, None), b"789"),
    ((-1, None), b"9"),
    ((-10, None), b"0123456789"),
    ((-20, None), b"0123456789"),  # a suffix longer than the value is the whole value
    ((0, 0), b""),
    ((4, 4), b""),
    ((9, 10), b"9"),
    ((8, 50), b"89"),  # a stop past the end stops at the end
    ((10, None), b""),
    ((20, None), b""),  # a start past the end is empty, not an error
    ((20, 30), b""),
    ([1, 3], b"12"),  # any pair is accepted
]

#: Byte ranges that are refused, with the error.
BAD_BYTE_RANGES: list[tuple[Any, type[Exception]]] = [
    ((-3, 5), ValueError),  # a suffix has no stop
    ((5, 2), ValueError),
    ((1.5, None), TypeError),
    ((True, None), TypeError),
    ((0, "3"), TypeError),
    ((1, 2, 3), TypeError),
    (5, TypeError),
]


async def sorted_keys(store: Store, prefix: str = "") -> list[str]:
    """Every key of ``store`` under ``prefix``, sorted."""
    return sorted([key async for key in store.list(prefix)])
