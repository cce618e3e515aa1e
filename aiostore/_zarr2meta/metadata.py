"""zarr v2 array and group metadata documents, encoded as zarr 2.18 writes them (pure, no I/O).

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
import json
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from aiostore._zarr2meta.arrayargs import (
    normalize_chunks,
    normalize_dtype,
    normalize_fill_value,
    normalize_order,
    normalize_shape,
)
from aiostore.errors import BadCompressorError, MetadataError

__all__ = [
    "array_metadata",
    "default_compressor",
    "encode_dtype",
    "encode_fill_value",
    "group_metadata",
    "json_dumps",
    "v1_to_v2_metadata",
]

ZARR_FORMAT = 2


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
    # importing the registry imports numcodecs, which registers every built-in codec
    from numcodecs.registry import codec_registry  # type: ignore[import-untyped,unused-ignore]

    try:
        codec_cls = codec_registry[compression]
    except KeyError:
        raise MetadataError(f"unknown version-1 compression {compression!r}") from None
    codec = codec_cls(**options) if isinstance(options, dict) else codec_cls(options)
    return dict(codec.get_config())
