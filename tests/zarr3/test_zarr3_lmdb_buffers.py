"""zarr 3 over ``ZarrStore(LMDBStore(path, buffers=True))``: the LMDB buffers reach
zarr's ``Buffer`` without a copy (they share LMDB's pages), arrays round-trip
(partial writes, sharding's byte ranges), and no reader slot stays taken."""

from __future__ import annotations

import asyncio
import gc
import os
import pathlib

import numpy as np
import pytest
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.codecs import ShardingCodec
from zarr.core.buffer import default_buffer_prototype

from aiostore import LMDBStore
from aiostore.zarr3 import ZarrStore


def reader_slots(backend: LMDBStore) -> int:
    """Reader slots of the database's lock table held by this process."""
    lines = backend.db.readers().splitlines()[1:]
    return sum(1 for line in lines if line.split()[:1] == [str(os.getpid())])


async def settle() -> None:
    """Let the event loop drop its own references to finished reads, then collect."""
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()


@pytest.fixture
def backend(tmp_path: pathlib.Path) -> LMDBStore:
    return LMDBStore(tmp_path / "data.mdb", buffers=True)


async def test_values_reach_zarr_without_a_copy(backend: LMDBStore) -> None:
    store = ZarrStore(backend)
    await backend.set("k", bytes(range(200)))
    view = await backend.get("k")  # no commit since: the same snapshot, the same pages
    assert type(view) is memoryview and view.readonly
    pages = np.frombuffer(view, dtype="B")
    prototype = default_buffer_prototype()
    whole = await store.get("k", prototype)
    part = await store.get("k", prototype, RangeByteRequest(10, 20))
    suffix = await store.get("k", prototype, SuffixByteRequest(5))
    [many] = await store.get_partial_values(prototype, [("k", None)])
    assert whole is not None and part is not None and suffix is not None and many is not None
    for buffer in (whole, part, suffix, many):
        assert np.shares_memory(buffer.as_numpy_array(), pages)  # zarr's Buffer is LMDB's page
    assert part.to_bytes() == bytes(range(10, 20)) and suffix.to_bytes() == bytes(range(195, 200))
    assert whole.to_bytes() == bytes(range(200)) and not whole.as_numpy_array().flags.writeable
    del view, pages, whole, part, suffix, many, buffer
    await settle()
    assert reader_slots(backend) == 0
    backend.close_sync()


async def test_a_held_zarr_buffer_keeps_its_bytes_across_overwrites(backend: LMDBStore) -> None:
    store = ZarrStore(backend)
    prototype = default_buffer_prototype()
    await backend.set("k", b"\x01" * 4096)
    held = await store.get("k", prototype)
    for round_ in range(2, 40):
        await backend.set("k", bytes([round_]) * 4096)
        await backend.delete("k")
    assert held is not None and held.to_bytes() == b"\x01" * 4096
    assert reader_slots(backend) == 1
    del held
    await settle()
    assert reader_slots(backend) == 0
    backend.close_sync()


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "uncompressed"])
def test_arrays_round_trip_through_buffers(backend: LMDBStore, zarr_format: int, compressed: bool) -> None:
    store = ZarrStore(backend)
    data = np.arange(40 * 30, dtype="<f8").reshape(40, 30)
    kwargs: dict[str, object] = {} if compressed else {"compressors": None}
    a = zarr.create_array(store, name="a", shape=data.shape, chunks=(7, 8), dtype=data.dtype,
                          zarr_format=zarr_format, **kwargs)  # fmt: skip
    a[...] = data
    a[2:9, 3:11] = -1  # partial writes: zarr reads each chunk (a read-only view) and copies it
    data[2:9, 3:11] = -1
    again = zarr.open_array(ZarrStore(backend), path="a", mode="r")
    assert (again[...] == data).all() and (again[5:33:3, 1::4] == data[5:33:3, 1::4]).all()
    assert reader_slots(backend) == 0  # zarr keeps no view once it has decoded
    backend.close_sync()


def test_sharded_arrays_read_inner_chunks_as_slices(backend: LMDBStore) -> None:
    store = ZarrStore(backend)
    data = np.arange(64 * 64, dtype="<u2").reshape(64, 64)
    a = zarr.create_array(store, name="s", shape=data.shape, chunks=(8, 8), shards=(32, 32),
                          dtype=data.dtype)  # fmt: skip
    assert any(isinstance(codec, ShardingCodec) for codec in a.metadata.codecs)  # type: ignore[union-attr]
    a[...] = data
    a[10:20, 40:50] = 7
    data[10:20, 40:50] = 7
    again = zarr.open_array(ZarrStore(backend), path="s", mode="r")
    assert (again[3:61, 5:59] == data[3:61, 5:59]).all() and again[12, 45] == 7
    assert reader_slots(backend) == 0
    backend.close_sync()
