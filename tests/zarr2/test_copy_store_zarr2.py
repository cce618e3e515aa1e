"""zarr 2's ``zarr.copy_store`` between aiostore sync stores runs aiostore's batch copy,
and zarr 2 reads what aiostore.copy_store wrote."""

from __future__ import annotations

import io
import pathlib
from typing import Any

import numpy as np
import pytest
import zarr

import aiostore
import aiostore.sync


def make_source(tmp_path: pathlib.Path) -> aiostore.sync.SyncStore:
    store = aiostore.sync.DirectoryStore(str(tmp_path / "example.zarr"))
    root = zarr.group(store, overwrite=True)
    baz = root.create_group("foo").create_group("bar").create_dataset("baz", shape=100, chunks=50, dtype="i8")
    baz[:] = np.arange(100)
    return store


def test_zarr_copy_store_between_sync_stores_uses_their_batches(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path)
    dest = aiostore.sync.ZipStore(str(tmp_path / "example.zip"), mode="w")
    batches: list[int] = []
    get_many_sync = source.async_store.get_many_sync

    def counted(keys: Any) -> Any:
        keys = list(keys)
        batches.append(len(keys))
        return get_many_sync(keys)

    monkeypatch.setattr(source.async_store, "get_many_sync", counted)
    out = io.StringIO()
    # The seed's example of zarr.copy_store, with the same lines and result.
    assert zarr.copy_store(source, dest, log=out) == (6, 0, 566)
    assert out.getvalue().splitlines() == [
        "copy .zgroup",
        "copy foo/.zgroup",
        "copy foo/bar/.zgroup",
        "copy foo/bar/baz/.zarray",
        "copy foo/bar/baz/0",
        "copy foo/bar/baz/1",
        "all done: 6 copied, 0 skipped, 566 bytes copied",
    ]
    assert batches and sum(batches) == 6 and len(batches) < 6  # read in batches, not key by key
    assert zarr.convenience.copy_store is zarr.copy_store
    with pytest.raises(zarr.errors.CopyError, match="exists in destination"):
        zarr.copy_store(source, dest)
    dest.close()
    new_root = zarr.group(aiostore.sync.ZipStore(str(tmp_path / "example.zip"), mode="r"))
    np.testing.assert_array_equal(new_root["foo/bar/baz"][:], np.arange(100))


def test_zarr_copy_store_of_zarrs_own_stores_is_zarrs(tmp_path: pathlib.Path) -> None:
    aiostore.sync.MemoryStore()  # registers the route
    source, dest = zarr.MemoryStore(), zarr.MemoryStore()
    zarr.group(source)
    assert zarr.copy_store(source, dest) == (1, 0, len(source[".zgroup"]))
    with pytest.raises(zarr.errors.CopyError):
        zarr.copy_store(source, dest)


@pytest.mark.parametrize("target", ["zip", "lmdb", "directory"])
def test_zarr_reads_the_copies(tmp_path: pathlib.Path, target: str) -> None:
    source = make_source(tmp_path)
    url = {
        "zip": f"zip://{tmp_path}/copy.zip",
        "lmdb": f"lmdb://{tmp_path}/copy.mdb",
        "directory": f"{tmp_path}/copy.zarr",
    }[target]
    assert aiostore.sync.copy_store(source, url) == (6, 0, 566)
    copy = aiostore.sync.open_store(url, mode="r")
    np.testing.assert_array_equal(zarr.open_array(copy, path="foo/bar/baz", mode="r")[:], np.arange(100))
    copy.close()
