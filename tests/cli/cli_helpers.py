"""Test data for the ``aiostore`` command, written without zarr, and a way to run it.

``write_v2`` and ``write_v3`` lay out small zarr v2 and v3 hierarchies as files
(metadata JSON and chunks compressed with numcodecs), as zarr would write them.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import numcodecs
import numpy as np

COMMAND = [sys.executable, "-m", "aiostore"]
ENV = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}


def aiostore(*args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aiostore ARGS`` and return what it did (text output)."""
    result = subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def put(root: pathlib.Path, key: str, value: bytes | dict[str, Any]) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(value, indent=4).encode() if isinstance(value, dict) else value)


def v2_array(
    shape: list[int], chunks: list[int], dtype: str, compressor: Any, **extra: Any
) -> dict[str, Any]:
    return {
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": dtype,
        "compressor": None if compressor is None else compressor.get_config(),
        "fill_value": 0,
        "order": "C",
        "filters": None,
        **extra,
    }


def write_v2(root: pathlib.Path) -> None:
    """A zarr v2 hierarchy::

    /            group, attributes {"title": "v2 test"}
    raw          (100, 100) int32, chunks (10, 10), blosc: 100 chunks
    foo/         group
    foo/bar      (50,) float64, chunks (20,), zstd, "/" separator: 3 chunks
    implicit/    no .zgroup: an implicit group
    implicit/baz (4,) uint8, chunks (2,), no compressor: 1 chunk of 2
    """
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    put(root, ".zgroup", {"zarr_format": 2})
    put(root, ".zattrs", {"title": "v2 test"})
    put(root, "raw/.zarray", v2_array([100, 100], [10, 10], "<i4", blosc))
    for i in range(10):
        for j in range(10):
            chunk = np.arange(100, dtype="<i4").reshape(10, 10) + i * 10 + j
            put(root, f"raw/{i}.{j}", blosc.encode(chunk))
    zstd = numcodecs.Zstd(level=3)
    put(root, "foo/.zgroup", {"zarr_format": 2})
    put(root, "foo/bar/.zarray", v2_array([50], [20], "<f8", zstd, dimension_separator="/"))
    put(root, "foo/bar/.zattrs", {"units": "m", "scale": 2})
    for i in range(3):
        put(root, f"foo/bar/{i}", zstd.encode(np.linspace(0, 1, 20)))
    put(root, "implicit/baz/.zarray", v2_array([4], [2], "|u1", None))
    put(root, "implicit/baz/0", bytes([1, 2]))


def v3_array(shape: list[int], chunk_shape: list[int], data_type: str, codecs: list[Any]) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": codecs,
        "attributes": {},
    }


BYTES = {"name": "bytes", "configuration": {"endian": "little"}}
ZSTD = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}


def write_v3(root: pathlib.Path) -> None:
    """A zarr v3 hierarchy::

    /         group
    a         (20, 20) int32, chunks (10, 10), bytes/zstd: 4 chunks
    g/        group
    g/s       (64, 64) uint16, shards (32, 32) of chunks (8, 8): 3 of 4 shards
    """
    put(root, "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": {"v": 3}})
    put(root, "a/zarr.json", v3_array([20, 20], [10, 10], "int32", [BYTES, ZSTD]))
    zstd = numcodecs.Zstd(level=0)
    for i in range(2):
        for j in range(2):
            put(root, f"a/c/{i}/{j}", zstd.encode(np.full((10, 10), i + j, dtype="<i4")))
    put(root, "g/zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": {}})
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": [8, 8],
            "codecs": [BYTES, ZSTD],
            "index_codecs": [BYTES, {"name": "crc32c"}],
            "index_location": "end",
        },
    }
    put(root, "g/s/zarr.json", v3_array([64, 64], [32, 32], "uint16", [sharding]))
    for i, j in [(0, 0), (0, 1), (1, 0)]:
        put(root, f"g/s/c/{i}/{j}", bytes(range(256)) * (i + j + 1))


def file_bytes(root: pathlib.Path, under: str = "") -> int:
    """The bytes of every file below ``root/under``."""
    return sum(p.stat().st_size for p in (root / under).rglob("*") if p.is_file())
