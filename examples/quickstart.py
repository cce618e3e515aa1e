"""aiostore quickstart: zarr 2 writes through an aiostore sync store, the async API reads it back.

Run it with ``python examples/quickstart.py [DIRECTORY]`` (default ``data/quickstart.zarr``).
"""

from __future__ import annotations

import json
import sys

import anyio
import numcodecs
import numpy as np
import zarr

import aiostore
import aiostore.sync


def write_with_zarr2(path: str) -> None:
    """zarr 2 sees a native store: one setitems call writes all six chunks."""
    store = aiostore.sync.DirectoryStore(path)
    z = zarr.zeros((4, 6), chunks=(2, 3), dtype="i4", store=store, overwrite=True)
    z[...] = np.arange(24, dtype="i4").reshape(4, 6)
    z.attrs["written_by"] = "zarr 2 through aiostore.sync.DirectoryStore"
    print(f"zarr {zarr.__version__} wrote {z.shape} {z.dtype} array, chunks {z.chunks}, to {path}")
    print(f"zarr used the store itself (not a KVStore wrapper): {z.store is store}")


async def read_with_aiostore(path: str) -> None:
    """Read every key back in one concurrent batch and decode a chunk by hand."""
    async with aiostore.DirectoryStore(path, read_only=True) as store:
        keys = sorted([key async for key in store.list()])
        values = await store.get_many(keys)
        print(f"\nawait store.get_many({len(keys)} keys):")
        for key, value in values.items():
            print(f"  {key:8} {len(value):4} bytes")
        meta = json.loads(values[".zarray"])
        print(f"\n.zarray: shape={meta['shape']} chunks={meta['chunks']} dtype={meta['dtype']}")
        print(f".zattrs: {json.loads(values['.zattrs'])}")
        codec = numcodecs.get_codec(meta["compressor"])
        chunk = np.frombuffer(codec.decode(values["1.1"]), dtype=meta["dtype"]).reshape(meta["chunks"])
        print(f"chunk 1.1, decoded with {codec.codec_id}:\n{chunk}")


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "data/quickstart.zarr"
    write_with_zarr2(path)
    anyio.run(read_with_aiostore, path)
    print(f"\nzarr 2 reads it back too:\n{zarr.open(aiostore.sync.DirectoryStore(path), mode='r')[...]}")


if __name__ == "__main__":
    main()
