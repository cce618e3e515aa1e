"""Normalization of ``init_array``'s arguments, as zarr 2.18 does it (pure, no I/O).

Shapes, chunk shapes (including zarr 2's chunk guess), dtypes (with the
``str``/``bytes``/``"array:<dtype>"`` object-array shortcuts), memory order and
fill values. Each function raises :class:`ValueError` or :class:`TypeError`
naming the bad argument. :mod:`aiostore._zarr2meta.metadata` encodes the results as JSON.

>>> normalize_chunks(True, normalize_shape(1000), np.dtype("f8").itemsize)
(1000,)
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "OBJECT_CODECS",
    "guess_chunks",
    "normalize_chunks",
    "normalize_dtype",
    "normalize_fill_value",
    "normalize_order",
    "normalize_shape",
]

#: ``dtype=str`` / ``"str"`` etc.: object arrays with these numcodecs codecs.
OBJECT_CODECS = {"str": "vlen-utf8", "bytes": "vlen-bytes", "array": "vlen-array"}

# Chunk guessing targets (the h5py heuristic zarr 2 uses): chunks of roughly
# 128 KiB to 64 MiB, growing with the array.
CHUNK_BASE = 256 * 1024
CHUNK_MIN = 128 * 1024
CHUNK_MAX = 64 * 1024 * 1024


def _as_int(value: object, what: str) -> int:
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value):
        # zarr 2 accepts and truncates non-integer sizes, with a warning.
        warnings.warn(f"{what} contains non-integer value(s)", UserWarning, stacklevel=2)
        return int(float(value))
    raise TypeError(f"{what} must contain integers, found {value!r}")


def normalize_shape(shape: object) -> tuple[int, ...]:
    """An int or a sequence of ints as a shape tuple.

    >>> normalize_shape(5), normalize_shape([2, 3]), normalize_shape(())
    ((5,), (2, 3), ())
    """
    if shape is None:
        raise TypeError("shape is None")
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    result = tuple(
        _as_int(s, "shape") for s in _as_sequence(shape, "shape must be an int or a tuple of ints")
    )
    if any(s < 0 for s in result):
        raise ValueError(f"shape must not have negative lengths: {result}")
    return result


def _as_sequence(value: object, message: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{message}, not {value!r}")
    return tuple(value)


def guess_chunks(shape: tuple[int, ...], typesize: int) -> tuple[int, ...]:
    """A chunk shape for an array of ``shape`` with ``typesize``-byte items.

    Halves the axes in turn, first axis first, until a chunk is near a target
    that grows with the array, between 128 KiB and 64 MiB: zarr 2's guess, to
    the same numbers.

    >>> guess_chunks((10000, 10000), 8)
    (313, 625)
    >>> guess_chunks((0,), 1)
    (1,)
    """
    ndim = len(shape)
    chunks = np.maximum(np.array(shape, dtype="=f8"), 1)
    with np.errstate(divide="ignore"):  # typesize 0 ("S0"): no target, keep whole axes
        dataset_size = np.prod(chunks) * typesize
        target = CHUNK_BASE * (2 ** np.log10(dataset_size / (1024.0 * 1024)))
    target = min(max(target, CHUNK_MIN), CHUNK_MAX)
    index = 0
    while True:
        chunk_bytes = np.prod(chunks) * typesize
        near = chunk_bytes < target or abs(chunk_bytes - target) / target < 0.5
        if (near and chunk_bytes < CHUNK_MAX) or np.prod(chunks) == 1:
            break
        chunks[index % ndim] = math.ceil(chunks[index % ndim] / 2.0)
        index += 1
    return tuple(int(c) for c in chunks)


def normalize_chunks(chunks: object, shape: tuple[int, ...], typesize: int) -> tuple[int, ...]:
    """The chunk shape for ``chunks`` as ``init_array`` takes it.

    ``True``/``None`` guess; ``False`` is one chunk; an int applies to every
    axis; a short tuple is completed by whole axes; ``-1``/``None`` in a tuple
    mean the whole axis. A zero-length axis taken whole gets chunk length 1
    (zarr 2 writes 0 there, which it then cannot open).

    >>> normalize_chunks(True, (100,), 8), normalize_chunks(10, (100, 20), 1)
    ((100,), (10, 10))
    >>> normalize_chunks((5,), (100, 20), 1), normalize_chunks((-1, None), (7, 3), 1)
    ((5, 20), (7, 3))
    >>> normalize_chunks(0, (10,), 1)
    Traceback (most recent call last):
    ...
    ValueError: chunk lengths must be at least 1, found (0,)
    """
    if chunks is None or chunks is True:
        return guess_chunks(shape, typesize)
    if chunks is False:
        return tuple(max(s, 1) for s in shape)
    if isinstance(chunks, numbers.Integral):
        chunks = (chunks,) * len(shape)
    chunks = _as_sequence(chunks, "chunks must be True, False, an int or a tuple of ints")
    if len(chunks) > len(shape):
        raise ValueError(f"too many dimensions in chunks {tuple(chunks)!r} for shape {shape}")
    given = list(chunks) + [None] * (len(shape) - len(chunks))
    result = tuple(
        max(length, 1) if c is None or (isinstance(c, numbers.Integral) and c == -1) else _as_int(c, "chunks")
        for c, length in zip(given, shape, strict=True)
    )
    if any(c < 1 for c in result):
        raise ValueError(f"chunk lengths must be at least 1, found {result}")
    return result


def normalize_dtype(dtype: object, object_codec: Any) -> tuple[np.dtype[Any], Any]:
    """The numpy dtype for ``dtype``, and the object codec it implies.

    ``str``, ``bytes`` and ``"array:<dtype>"`` (as classes or names) mean object
    arrays with numcodecs' variable-length codecs.

    >>> normalize_dtype("i4", None)
    (dtype('int32'), None)
    >>> normalize_dtype(str, None)
    (dtype('O'), VLenUTF8())
    >>> normalize_dtype("M8", None)
    Traceback (most recent call last):
    ...
    ValueError: datetime64 and timedelta64 dtypes need units (e.g. "M8[ns]"), found 'M8'
    """
    original = dtype
    if inspect.isclass(dtype) and dtype.__name__ in OBJECT_CODECS:
        dtype = dtype.__name__
    if isinstance(dtype, str):
        name, _, args = dtype.partition(":")
        if name in OBJECT_CODECS:
            if object_codec is None:
                from numcodecs.registry import codec_registry  # type: ignore[import-untyped,unused-ignore]

                codec_cls = codec_registry[OBJECT_CODECS[name]]
                object_codec = codec_cls(*args.split(",")) if args else codec_cls()
            return np.dtype(object), object_codec
    try:
        result = np.dtype(dtype)  # type: ignore[call-overload]
    except Exception as exc:
        raise TypeError(f"invalid dtype {original!r}: {exc}") from None
    if result.base.kind in "mM" and np.datetime_data(result.base)[0] == "generic":
        raise ValueError(f'datetime64 and timedelta64 dtypes need units (e.g. "M8[ns]"), found {original!r}')
    return result, object_codec


def normalize_order(order: object) -> str:
    """``"C"`` or ``"F"`` (either case).

    >>> normalize_order("f")
    'F'
    >>> normalize_order("K")
    Traceback (most recent call last):
    ...
    ValueError: order must be either 'C' or 'F', found: 'K'
    """
    if not isinstance(order, str) or order.upper() not in ("C", "F"):
        raise ValueError(f"order must be either 'C' or 'F', found: {order!r}")
    return order.upper()


def normalize_fill_value(fill_value: Any, dtype: np.dtype[Any]) -> Any:
    """``fill_value`` as a scalar of ``dtype`` (objects and None pass through).

    >>> normalize_fill_value(0, np.dtype("f4")), normalize_fill_value("NaN", np.dtype("f8"))
    (np.float32(0.0), np.float64(nan))
    >>> normalize_fill_value(1.5, np.dtype("U2"))
    Traceback (most recent call last):
    ...
    ValueError: fill_value 1.5 is not valid for dtype <U2: it must be a str
    """
    if fill_value is None or dtype.hasobject:
        return fill_value
    if _is_zero(fill_value):
        # zeros of any dtype, structured ones included
        return np.zeros((), dtype=dtype)[()]
    if dtype.kind == "U":
        # kept as text: numpy's conversion of other objects to str is locale- and version-dependent
        if not isinstance(fill_value, str):
            raise ValueError(f"fill_value {fill_value!r} is not valid for dtype {dtype}: it must be a str")
        return fill_value
    try:
        if isinstance(fill_value, bytes) and dtype.kind == "V":
            return np.array(fill_value, dtype=dtype.str).view(dtype)[()]
        return np.array(fill_value, dtype=dtype)[()]
    except Exception as exc:
        raise ValueError(f"fill_value {fill_value!r} is not valid for dtype {dtype}: {exc}") from None


def _is_zero(value: Any) -> bool:
    if isinstance(value, np.void):
        return False
    try:
        return bool(value == 0)
    except Exception:  # an array, or a type that refuses comparison with 0
        return False
