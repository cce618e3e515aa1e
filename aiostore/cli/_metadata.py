"""zarr v2 and v3 metadata, read for display: what ``ls``, ``tree`` and ``info`` show.

This module reads the JSON itself (the cli layer never imports zarr): a v2 node is
a ``.zarray`` or ``.zgroup`` document (``.zattrs`` beside it), a v3 node a
``zarr.json`` with ``node_type`` ``"array"`` or ``"group"``.

>>> array = parse_node({".zarray": b'{"zarr_format": 2, "shape": [100, 100], "chunks": [10, 10], '
...                     b'"dtype": "<i4", "compressor": {"id": "blosc", "cname": "lz4"}, '
...                     b'"fill_value": 0, "order": "C", "filters": null}'}, "a")
>>> array.summary()
'array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc'
>>> parse_node({"zarr.json": b'{"zarr_format": 3, "node_type": "group"}'}, "g").summary()
'group'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiostore.errors import MetadataError

__all__ = [
    "ATTRS_V2",
    "METADATA_NAMES",
    "NODE_KEYS",
    "ArrayNode",
    "GroupNode",
    "Node",
    "format_shape",
    "parse_node",
]

ARRAY_V2, GROUP_V2, ATTRS_V2, NODE_V3, CONSOLIDATED = (
    ".zarray",
    ".zgroup",
    ".zattrs",
    "zarr.json",
    ".zmetadata",
)
#: The names whose documents say what a path is, in the order they are looked at.
NODE_KEYS = (ARRAY_V2, GROUP_V2, NODE_V3)
#: Names that are metadata, never a child node.
METADATA_NAMES = frozenset({ARRAY_V2, GROUP_V2, ATTRS_V2, NODE_V3, CONSOLIDATED})


def format_shape(shape: Sequence[int]) -> str:
    """A shape as Python writes a tuple.

    >>> format_shape([100, 100]), format_shape([5]), format_shape([])
    ('(100, 100)', '(5,)', '()')
    """
    return repr(tuple(shape))


@dataclass(frozen=True)
class GroupNode:
    """A group: explicit (a ``.zgroup`` or ``zarr.json``), or implicit (only keys below it)."""

    path: str
    zarr_format: int | None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    kind = "group"

    @property
    def implicit(self) -> bool:
        """True if no metadata document says this is a group."""
        return self.zarr_format is None

    def summary(self) -> str:
        """One line: ``group`` (or ``group (implicit)``)."""
        return "group (implicit)" if self.implicit else "group"


@dataclass(frozen=True)
class ArrayNode:
    """An array, as its metadata describes it."""

    path: str
    zarr_format: int
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    #: The shard shape of a v3 array with the sharding codec, else None.
    shards: tuple[int, ...] | None
    #: v2: the compressor id (``blosc``) or ``none``; v3: codec names (``bytes/zstd``).
    compressor: str
    #: v2: the compressor's whole configuration; v3: each codec with its configuration.
    compressor_detail: str
    filters: str
    fill_value: Any
    order: str | None
    itemsize: int | None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: The names under the array that are metadata, not chunks.
    metadata_names: tuple[str, ...] = ()
    kind = "array"

    @property
    def stored_chunk_shape(self) -> tuple[int, ...]:
        """The shape of one stored object: the shard if sharded, else the chunk."""
        return self.shards if self.shards is not None else self.chunks

    @property
    def chunk_count(self) -> int:
        """How many chunks (shards, if sharded) the whole array spans."""
        grid = self.stored_chunk_shape
        if len(grid) != len(self.shape):
            return 0
        return math.prod(math.ceil(s / c) if c else 0 for s, c in zip(self.shape, grid, strict=True))

    @property
    def nbytes(self) -> int | None:
        """The array's size in memory, or None when the data type's size is unknown."""
        return None if self.itemsize is None else self.itemsize * math.prod(self.shape)

    def summary(self) -> str:
        """One line: shape, dtype, chunks (and shards) and the compressor or codecs."""
        parts = [
            f"array shape={format_shape(self.shape)} dtype={self.dtype} chunks={format_shape(self.chunks)}"
        ]
        if self.shards is not None:
            parts.append(f"shards={format_shape(self.shards)}")
        if self.zarr_format == 2:
            parts.append(f"compressor={self.compressor}")
            if self.filters != "none":
                parts.append(f"filters={self.filters}")
        else:
            parts.append(f"codecs={self.compressor}")
        return " ".join(parts)


Node = GroupNode | ArrayNode


def _load(name: str, path: str, raw: bytes | Mapping[str, Any]) -> dict[str, Any]:
    where = f"{path}/{name}" if path else name
    if isinstance(raw, Mapping):  # already parsed: a consolidated ``.zmetadata`` entry
        return dict(raw)
    try:
        doc = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{where}: not valid JSON metadata ({exc})") from None
    if not isinstance(doc, dict):
        raise MetadataError(f"{where}: metadata must be a JSON object, not {type(doc).__name__}")
    return doc


def parse_node(documents: Mapping[str, bytes | Mapping[str, Any]], path: str) -> Node | None:
    """The node at ``path`` from its metadata documents (``{".zarray": bytes, ...}``),
    or None if there is none; :class:`~aiostore.MetadataError` naming the key if one is bad.

    >>> parse_node({}, "x") is None
    True
    >>> parse_node({".zgroup": b'{"zarr_format": 2}', ".zattrs": b'{"a": 1}'}, "").attributes
    {'a': 1}
    """
    attributes: dict[str, Any] = {}
    if ATTRS_V2 in documents:
        attributes = _load(ATTRS_V2, path, documents[ATTRS_V2])
    try:
        if ARRAY_V2 in documents:
            return _v2_array(_load(ARRAY_V2, path, documents[ARRAY_V2]), path, attributes)
        if GROUP_V2 in documents:
            _load(GROUP_V2, path, documents[GROUP_V2])
            return GroupNode(path, 2, attributes)
        if NODE_V3 in documents:
            return _v3_node(_load(NODE_V3, path, documents[NODE_V3]), path)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MetadataError):
            raise
        where = f"{path}/" if path else ""
        raise MetadataError(f"{where}{_which(documents)}: unexpected metadata ({_reason(exc)})") from None
    return None


def _which(documents: Mapping[str, object]) -> str:
    return next(name for name in NODE_KEYS if name in documents)


def _reason(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{what} must be a list of integers, not {value!r}")
    return tuple(value)


def _numpy_dtype(descr: Any) -> np.dtype[Any] | None:
    def as_tuples(value: Any) -> Any:
        if isinstance(value, list):
            return [tuple(as_tuples(v) for v in field) for field in value]
        return value

    try:
        dtype: np.dtype[Any] = np.dtype(as_tuples(descr))
    except (TypeError, ValueError):
        return None
    return dtype


def _codec_config(codec: Mapping[str, Any], skip: str) -> str:
    options = ", ".join(f"{k}={v!r}" for k, v in codec.items() if k != skip)
    return f"({options})" if options else ""


def _v2_array(doc: dict[str, Any], path: str, attributes: dict[str, Any]) -> ArrayNode:
    if doc.get("zarr_format", 2) != 2:
        raise MetadataError(f"{path}/{ARRAY_V2}: zarr_format {doc.get('zarr_format')!r}, expected 2")
    dtype = _numpy_dtype(doc["dtype"])
    compressor = doc.get("compressor")
    filters = doc.get("filters") or []
    return ArrayNode(
        path=path,
        zarr_format=2,
        shape=_ints(doc["shape"], "shape"),
        dtype=str(dtype) if dtype is not None else json.dumps(doc["dtype"]),
        chunks=_ints(doc["chunks"], "chunks"),
        shards=None,
        compressor=str(compressor["id"]) if compressor else "none",
        compressor_detail=f"{compressor['id']}{_codec_config(compressor, 'id')}" if compressor else "none",
        filters="/".join(str(f.get("id")) for f in filters) if filters else "none",
        fill_value=doc.get("fill_value"),
        order=doc.get("order"),
        itemsize=dtype.itemsize if dtype is not None else None,
        attributes=attributes,
        metadata_names=(ARRAY_V2, ATTRS_V2),
    )


def _codec_name(codec: Any) -> str:
    return codec if isinstance(codec, str) else str(codec["name"])


def _codec_names(codecs: Sequence[Any]) -> str:
    names = []
    for codec in codecs:
        name = _codec_name(codec)
        if name == "sharding_indexed" and isinstance(codec, Mapping):
            inner = codec.get("configuration", {}).get("codecs", [])
            name = f"{name}({_codec_names(inner)})"
        names.append(name)
    return "/".join(names) or "none"


def _codec_details(codecs: Sequence[Any]) -> str:
    parts = []
    for codec in codecs:
        if isinstance(codec, str):
            parts.append(codec)
            continue
        config = dict(codec.get("configuration") or {})
        if codec["name"] == "sharding_indexed":
            inner = _codec_details(config.pop("codecs", []))
            index = _codec_details(config.pop("index_codecs", []))
            rest = "".join(f", {k}={v!r}" for k, v in config.items() if k != "chunk_shape")
            parts.append(f"sharding_indexed(codecs=[{inner}], index_codecs=[{index}]{rest})")
        else:
            parts.append(f"{codec['name']}{_codec_config(config, '')}")
    return ", ".join(parts)


_V3_ITEMSIZES = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2}
_V3_ITEMSIZES.update({"int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8})
_V3_ITEMSIZES.update({"complex64": 8, "complex128": 16})


def _v3_itemsize(name: str) -> int | None:
    if name in _V3_ITEMSIZES:
        return _V3_ITEMSIZES[name]
    if name.startswith("r") and name[1:].isdigit() and int(name[1:]) % 8 == 0:
        return int(name[1:]) // 8  # raw bits, "r16"
    return None


def _v3_node(doc: dict[str, Any], path: str) -> Node:
    if doc.get("zarr_format") != 3:
        raise MetadataError(f"{path}/{NODE_V3}: zarr_format {doc.get('zarr_format')!r}, expected 3")
    attributes = doc.get("attributes") or {}
    if doc["node_type"] == "group":
        return GroupNode(path, 3, attributes)
    if doc["node_type"] != "array":
        raise ValueError(f"node_type {doc['node_type']!r} is neither 'array' nor 'group'")
    data_type = doc["data_type"]
    dtype = data_type if isinstance(data_type, str) else str(data_type["name"])
    grid = doc["chunk_grid"]
    if grid.get("name") != "regular":
        raise ValueError(f"chunk grid {grid.get('name')!r} is not 'regular'")
    chunks = _ints(grid["configuration"]["chunk_shape"], "chunk_shape")
    codecs = doc.get("codecs") or []
    shards = None
    sharding = [c for c in codecs if isinstance(c, Mapping) and c.get("name") == "sharding_indexed"]
    if sharding:
        shards, chunks = chunks, _ints(sharding[0]["configuration"]["chunk_shape"], "chunk_shape")
    return ArrayNode(
        path=path,
        zarr_format=3,
        shape=_ints(doc["shape"], "shape"),
        dtype=dtype,
        chunks=chunks,
        shards=shards,
        compressor=_codec_names(codecs),
        compressor_detail=_codec_details(codecs) or "none",
        filters="none",
        fill_value=doc.get("fill_value"),
        order=None,
        itemsize=_v3_itemsize(dtype),
        attributes=attributes,
        metadata_names=(NODE_V3,),
    )
