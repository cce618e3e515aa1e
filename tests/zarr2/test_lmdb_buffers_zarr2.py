"""zarr 2.18 over the sync LMDBStore with ``buffers=True``: chunks arrive as read-only
memoryviews that keep their LMDB snapshot open, and zarr reads, writes and
partially rewrites arrays through them; no reader slot stays taken afterwards."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import zarr

import aiostore.sync


def reader_slots(store: aiostore.sync.LMDBStore) -> int:
    """Reader slots of the database's lock table held by this process."""
    lines = store.db.readers().splitlines()[1:]
    return sum(1 for line in lines if line.split()[:1] == [str(os.getpid())])


@pytest.fixture
def store() -> Any:
    with aiostore.sync.LMDBStore("data/buffers.mdb", buffers=True) as s:
        yield s


@pytest.mark.parametrize("compressor", ["default", None], ids=["blosc", "uncompressed"])
@pytest.mark.parametrize("dtype", ["u1", "<i4", ">f8", "<c16"])
def test_arrays_read_and_write_through_buffers(store: Any, compressor: Any, dtype: str) -> None:
    kwargs = {} if compressor == "default" else {"compressor": None}
    data = (np.arange(40 * 30) % 251).astype(dtype).reshape(40, 30)
    z = zarr.create(shape=data.shape, chunks=(7, 8), dtype=dtype, store=store, overwrite=True, **kwargs)
    z[...] = data
    assert type(store["0.0"]) is memoryview and store["0.0"].readonly
    found = store.getitems(["0.0", "5.3", "missing"], contexts={})
    assert sorted(found) == ["0.0", "5.3"] and all(type(v) is memoryview for v in found.values())
    del found
    assert (z[...] == data).all()
    # Partial chunk writes: zarr reads each chunk (a read-only buffer), copies and rewrites it.
    z[3:11, 5:9] = -1 if dtype != "u1" else 255
    data[3:11, 5:9] = -1 if dtype != "u1" else 255
    z[::3, -1] = 7
    data[::3, -1] = 7
    reopened = zarr.open_array(store, mode="r")
    assert (reopened[...] == data).all() and (reopened[2:30:4, 1::2] == data[2:30:4, 1::2]).all()
    assert reader_slots(store) == 0  # zarr holds no buffer once it has decoded


def test_groups_attributes_and_consolidated_metadata(store: Any) -> None:
    root = zarr.group(store=store, overwrite=True)
    root.attrs["title"] = "buffers"
    arr = root.create_group("foo").zeros("bar", shape=(10, 10), chunks=(5, 5), dtype="i2")
    arr[...] = 42
    zarr.consolidate_metadata(store)
    again = zarr.open_consolidated(store, mode="r")
    assert again.attrs["title"] == "buffers" and (again["foo/bar"][...] == 42).all()
    assert sorted(store.listdir("foo/bar")) == [".zarray", "0.0", "0.1", "1.0", "1.1"]
    assert store.getsize("foo/bar") > 0 and reader_slots(store) == 0


def test_object_arrays(store: Any) -> None:
    import numcodecs

    z = zarr.empty(5, dtype=object, object_codec=numcodecs.VLenUTF8(), store=store, overwrite=True)
    z[:] = np.array(["a", "bb", "ccc", "", "e"], dtype=object)
    assert list(zarr.open_array(store, mode="r")[...]) == ["a", "bb", "ccc", "", "e"]


def test_a_held_chunk_keeps_its_bytes_while_the_array_is_rewritten(store: Any) -> None:
    z = zarr.zeros((100,), chunks=(10,), dtype="u1", store=store, overwrite=True, compressor=None)
    z[...] = 1
    held = store["3"]  # the raw chunk, as zarr 2's own LMDBStore(buffers=True) hands out
    for round_ in range(2, 30):
        z[...] = round_
        del store["3"]
    assert held == bytes([1]) * 10  # zarr 2's own buffers would have changed here
    assert (z[:30] == 29).all() and (z[30:40] == 0).all()  # chunk 3 deleted: the fill value
    del held
    assert reader_slots(store) == 0


def test_copy_store_between_buffer_and_bytes_stores() -> None:
    with (
        aiostore.sync.LMDBStore("data/src.mdb") as src,
        aiostore.sync.LMDBStore("data/dst.mdb", buffers=False) as dst,
    ):
        z = zarr.zeros((20, 20), chunks=(5, 5), dtype="f4", store=src, overwrite=True)
        z[...] = np.eye(20, dtype="f4")
        zarr.copy_store(src, dst)
        assert (zarr.open_array(dst, mode="r")[...] == np.eye(20)).all()
        assert type(dst["0.0"]) is bytes and type(src["0.0"]) is memoryview
