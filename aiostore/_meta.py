"""zarr v2 array and group metadata: normalization and JSON encoding (pure, no I/O).

:func:`array_metadata` turns the arguments of ``init_array`` into the bytes of a
``.zarray`` document exactly as zarr 2.18 writes them (keys sorted, indent 4,
ASCII), checking everything first, so a bad argument raises before a store is
touched. :func:`v1_to_v2_metadata` converts a zarr version-1 ``meta`` document.

Examples
--------
>>> print(array_metadata(shape=4, chunks=2, dtype="u1", compressor=None).decode())
{
    "chunks": [
        2
    ],
    "compressor": null,
    "dtype": "|u1",
    "fill_value": null,
    "filters": null,
    "order": "C",
    "shape": [
        4
    ],
    "zarr_format": 2
}
"""

from __future__ import annotations

import base64
import inspect
import json
import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BadCompressorError",
    "MetadataError",
    "array_metadata",
    "group_metadata",
    "guess_chunks",
    "json_dumps",
    "normalize_chunks",
    "normalize_dtype",
    "normalize_fill_value",
    "normalize_order",
    "normalize_shape",
    "v1_to_v2_metadata",
]

ZARR_FORMAT = 2

#: ``dtype=str`` / ``"str"`` etc.: object arrays with these numcodecs codecs.
OBJECT_CODECS = {"str": "vlen-utf8", "bytes": "vlen-bytes", "array": "vlen-array"}

# Chunk guessing targets (the h5py heuristic zarr 2 uses): chunks of roughly
# 128 KiB to 64 MiB, growing with the array.
CHUNK_BASE = 256 * 1024
CHUNK_MIN = 128 * 1024
CHUNK_MAX = 64 * 1024 * 1024


class BadCompressorError(ValueError):
    """The compressor is not a numcodecs codec (has no ``get_config``).

    >>> raise BadCompressorError("zlib")
    Traceback (most recent call last):
    ...
    aiostore._meta.BadCompressorError: bad compressor; expected a numcodecs Codec object, found 'zlib'
    """

    def __init__(self, compressor: object) -> None:
        super().__init__(f"bad compressor; expected a numcodecs Codec object, found {compressor!r}")


class MetadataError(ValueError):
    """Stored metadata is missing a field or is of an unsupported zarr format."""


class _NumberEncoder(json.JSONEncoder):
    # numpy integers and floats (in codec configs, shapes) as JSON numbers.
    def default(self, o: Any) -> Any:
        if isinstance(o, numbers.Integral):
            return int(o)
        if isinstance(o, numbers.Real):
            return float(o)
        return super().default(o)


def json_dumps(document: Any) -> bytes:
    """JSON as zarr 2 writes it: sorted keys, indent 4, ASCII only.

    >>> json_dumps({"b": 1, "a": "é"})
    b'{\\n    "a": "\\\\u00e9",\\n    "b": 1\\n}'
    """
    text = json.dumps(
        document, indent=4, sort_keys=True, ensure_ascii=True, separators=(",", ": "), cls=_NumberEncoder
    )
    return text.encode("ascii")


def group_metadata() -> bytes:
    """The ``.zgroup`` document.

    >>> group_metadata()
    b'{\\n    "zarr_format": 2\\n}'
    """
    return json_dumps({"zarr_format": ZARR_FORMAT})


# -- normalization ---------------------------------------------------------------


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


# -- encoding --------------------------------------------------------------------


def encode_fill_value(value: Any, dtype: np.dtype[Any], object_codec: Any = None) -> Any:
    """The JSON form of a normalized fill value, as zarr 2 writes it.

    >>> encode_fill_value(np.float64("nan"), np.dtype("f8")), encode_fill_value(b"ab", np.dtype("S2"))
    ('NaN', 'YWI=')
    >>> encode_fill_value(np.complex64(1 - 2j), np.dtype("c8"))
    (1.0, -2.0)
    """
    if value is None:
        return None
    kind = dtype.kind
    if kind == "V" and dtype.hasobject:
        if object_codec is None:
            raise ValueError("missing object_codec for object array")
        return base64.standard_b64encode(object_codec.encode(value)).decode("ascii")
    if kind == "f":
        if np.isnan(value):
            return "NaN"
        if np.isposinf(value):
            return "Infinity"
        if np.isneginf(value):
            return "-Infinity"
        return float(value)
    if kind in "ui":
        return int(value)
    if kind == "b":
        return bool(value)
    if kind == "c":
        # both parts encoded as float64, whatever the complex type
        part = np.dtype("f8")
        return (encode_fill_value(value.real, part), encode_fill_value(value.imag, part))
    if kind in "SV":
        return base64.standard_b64encode(value).decode("ascii")
    if kind in "mM":
        return int(value.view("i8"))
    return value


def encode_dtype(dtype: np.dtype[Any]) -> Any:
    """``dtype.str``, or the field list of a structured dtype.

    >>> encode_dtype(np.dtype("<i2")), encode_dtype(np.dtype([("a", "u1"), ("b", "<f4", (2,))]))
    ('<i2', [('a', '|u1'), ('b', '<f4', (2,))])
    """
    return dtype.str if dtype.fields is None else dtype.descr


def _codec_config(codec: Any, what: str) -> dict[str, Any]:
    get_config = getattr(codec, "get_config", None)
    if not callable(get_config):
        if what == "compressor":
            raise BadCompressorError(codec)
        raise TypeError(f"each {what} must be a numcodecs Codec object, found {codec!r}")
    return dict(get_config())


def default_compressor() -> Any:
    """zarr 2's default compressor: ``Blosc(cname="lz4", clevel=5, shuffle=1, blocksize=0)``.

    >>> default_compressor().get_config()["cname"]
    'lz4'
    """
    from numcodecs import Blosc  # type: ignore[import-untyped,unused-ignore]

    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0)


def array_metadata(
    shape: object,
    chunks: object = True,
    dtype: object = None,
    compressor: Any = "default",
    fill_value: Any = None,
    order: object = "C",
    filters: Sequence[Any] | None = None,
    object_codec: Any = None,
    dimension_separator: str | None = None,
) -> bytes:
    """Normalize ``init_array``'s arguments and encode the ``.zarray`` document.

    Raises :class:`ValueError` or :class:`TypeError` naming the bad argument;
    nothing is written anywhere.
    """
    np_dtype, object_codec = normalize_dtype(dtype, object_codec)
    full_shape = normalize_shape(shape) + np_dtype.shape  # a subarray dtype adds axes
    np_dtype = np_dtype.base
    chunk_shape = normalize_chunks(chunks, full_shape, np_dtype.itemsize)
    order = normalize_order(order)
    fill_value = normalize_fill_value(fill_value, np_dtype)
    if dimension_separator not in (None, ".", "/"):
        raise ValueError(f"dimension_separator must be either '.' or '/', found: {dimension_separator!r}")

    # ``compressor=[]``, ``0``... mean none, as in zarr 2; a 0-d array is one value.
    if not compressor or (isinstance(compressor, str) and compressor == "none") or full_shape == ():
        compressor_config = None
    elif isinstance(compressor, str) and compressor == "default":
        compressor_config = _codec_config(default_compressor(), "compressor")
    else:
        compressor_config = _codec_config(compressor, "compressor")

    filter_configs = [_codec_config(f, "filter") for f in filters] if filters else []
    if np_dtype.hasobject:
        if object_codec is not None:
            filter_configs.insert(0, _codec_config(object_codec, "object_codec"))
        elif not filter_configs:
            raise ValueError(
                f"missing object_codec for object array (dtype {np_dtype}): pass object_codec=, "
                "e.g. numcodecs.VLenUTF8(), or dtype=str / bytes / 'array:<dtype>'"
            )
        # else: zarr 2 reads the first filter as the object codec
    elif object_codec is not None:
        warnings.warn("an object_codec is only needed for object arrays", UserWarning, stacklevel=2)

    codec_for_fill = object_codec
    if np_dtype.kind == "V" and np_dtype.hasobject and codec_for_fill is None:
        from numcodecs import get_codec

        codec_for_fill = get_codec(filter_configs[0])  # what zarr 2 decodes the fill value with
    document: dict[str, Any] = {
        "zarr_format": ZARR_FORMAT,
        "shape": list(full_shape),
        "chunks": list(chunk_shape),
        "dtype": encode_dtype(np_dtype),
        "compressor": compressor_config,
        "fill_value": encode_fill_value(fill_value, np_dtype, codec_for_fill),
        "order": order,
        "filters": filter_configs or None,
    }
    if dimension_separator:
        document["dimension_separator"] = dimension_separator
    try:
        return json_dumps(document)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"array metadata cannot be encoded as JSON ({exc}): {document!r}") from None


def v1_to_v2_metadata(v1_document: bytes) -> bytes:
    """Convert a zarr version-1 ``meta`` document into a ``.zarray`` document.

    >>> v1 = b'{"zarr_format": 1, "shape": [4], "chunks": [2], "dtype": "<f4", "compression": "zlib",'
    >>> v1 += b' "compression_opts": 1, "fill_value": null, "order": "C"}'
    >>> json.loads(v1_to_v2_metadata(v1))["compressor"]
    {'id': 'zlib', 'level': 1}
    """
    try:
        meta = json.loads(bytes(v1_document).decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataError(f"version-1 metadata is not ASCII JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 1:
        found = meta.get("zarr_format") if isinstance(meta, dict) else meta
        raise MetadataError(f"expected zarr format 1 metadata, found format {found!r}")
    try:
        dtype = np.dtype(_descr_from_json(meta["dtype"]))
        compression, options = meta["compression"], meta["compression_opts"]
        document = {
            "zarr_format": ZARR_FORMAT,
            "shape": list(meta["shape"]),
            "chunks": list(meta["chunks"]),
            "dtype": encode_dtype(dtype),
            "compressor": _v1_compressor(compression, options),
            "fill_value": encode_fill_value(meta["fill_value"], dtype),
            "order": meta["order"],
            "filters": None,
        }
    except MetadataError:
        raise
    except Exception as exc:
        raise MetadataError(f"cannot convert version-1 metadata ({type(exc).__name__}: {exc})") from None
    return json_dumps(document)


def _descr_from_json(descr: Any) -> Any:
    # JSON turned the (name, dtype) pairs of a structured dtype into lists.
    if isinstance(descr, list):
        return [(field[0], _descr_from_json(field[1]), *(tuple(s) for s in field[2:])) for field in descr]
    return descr


def _v1_compressor(compression: Any, options: Any) -> dict[str, Any] | None:
    if compression is None or compression == "none":
        return None
    import numcodecs  # noqa: F401  (registers every built-in codec)
    from numcodecs.registry import codec_registry

    try:
        codec_cls = codec_registry[compression]
    except KeyError:
        raise MetadataError(f"unknown version-1 compression {compression!r}") from None
    codec = codec_cls(**options) if isinstance(options, dict) else codec_cls(options)
    return dict(codec.get_config())
