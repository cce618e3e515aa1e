"""The seed's DirectoryStore and NestedDirectoryStore examples, with zarr 2.18 and
aiostore's sync stores: the files on disk must be exactly the seed's ``os.listdir``
results (each test runs in its own scratch directory, see conftest.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from aiostore.sync import DirectoryStore, NestedDirectoryStore


def test_directory_store_array() -> None:
    store = DirectoryStore("data/array.zarr")
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
    z[...] = 42
    assert sorted(os.listdir("data/array.zarr")) == [".zarray", "0.0", "0.1", "1.0", "1.1"]
    again = zarr.open_array(DirectoryStore("data/array.zarr"), mode="r")
    assert np.array_equal(again[...], np.full((10, 10), 42.0))


def test_directory_store_group() -> None:
    store = DirectoryStore("data/group.zarr")
    root = zarr.group(store=store, overwrite=True)
    foo = root.create_group("foo")
    bar = foo.zeros("bar", shape=(10, 10), chunks=(5, 5))
    bar[...] = 42
    assert sorted(os.listdir("data/group.zarr")) == [".zgroup", "foo"]
    assert sorted(os.listdir("data/group.zarr/foo")) == [".zgroup", "bar"]
    assert sorted(os.listdir("data/group.zarr/foo/bar")) == [".zarray", "0.0", "0.1", "1.0", "1.1"]
    again = zarr.open_group(DirectoryStore("data/group.zarr"), mode="r")
    assert np.array_equal(again["foo/bar"][...], np.full((10, 10), 42.0))


def test_nested_directory_store_array() -> None:
    store = NestedDirectoryStore("data/array.zarr")
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
    z[...] = 42
    assert sorted(os.listdir("data/array.zarr")) == [".zarray", "0", "1"]
    assert sorted(os.listdir("data/array.zarr/0")) == ["0", "1"]
    assert sorted(os.listdir("data/array.zarr/1")) == ["0", "1"]
    assert z.nchunks_initialized == 4  # zarr counts chunks through the store's nested listdir
    again = zarr.open_array(NestedDirectoryStore("data/array.zarr"), mode="r")
    assert np.array_equal(again[...], np.full((10, 10), 42.0))


def test_nested_directory_store_group() -> None:
    store = NestedDirectoryStore("data/group.zarr")
    root = zarr.group(store=store, overwrite=True)
    foo = root.create_group("foo")
    bar = foo.zeros("bar", shape=(10, 10), chunks=(5, 5))
    bar[...] = 42
    assert sorted(os.listdir("data/group.zarr")) == [".zgroup", "foo"]
    assert sorted(os.listdir("data/group.zarr/foo")) == [".zgroup", "bar"]
    assert sorted(os.listdir("data/group.zarr/foo/bar")) == [".zarray", "0", "1"]
    assert sorted(os.listdir("data/group.zarr/foo/bar/0")) == ["0", "1"]
    assert sorted(os.listdir("data/group.zarr/foo/bar/1")) == ["0", "1"]
    again = zarr.open_group(NestedDirectoryStore("data/group.zarr"), mode="r")
    assert np.array_equal(again["foo/bar"][...], np.full((10, 10), 42.0))


def test_overwrite_replaces_what_was_there() -> None:
    # The seed's examples pass overwrite=True: a second run over the same
    # directory must leave exactly the same files, nothing stale.
    for fill in (1, 42):
        store = DirectoryStore("data/array.zarr")
        z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
        z[...] = fill
    assert sorted(os.listdir("data/array.zarr")) == [".zarray", "0.0", "0.1", "1.0", "1.1"]
    assert zarr.open_array(DirectoryStore("data/array.zarr"), mode="r")[0, 0] == 42


@pytest.mark.filterwarnings("ignore:The NestedDirectoryStore is deprecated:FutureWarning")
def test_zarr2_reads_what_aiostore_wrote_and_back() -> None:
    z = zarr.zeros((10, 10), chunks=(5, 5), store=NestedDirectoryStore("data/a.zarr"))
    z[...] = np.arange(100).reshape(10, 10)
    theirs = zarr.open_array(zarr.NestedDirectoryStore("data/a.zarr"), mode="r+")
    assert np.array_equal(theirs[...], np.arange(100).reshape(10, 10))
    theirs[0, 0] = -1
    assert zarr.open_array(NestedDirectoryStore("data/a.zarr"), mode="r")[0, 0] == -1
