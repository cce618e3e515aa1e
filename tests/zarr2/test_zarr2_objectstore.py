"""zarr 2.18.7's own store suite (``StoreTests``), run against ``aiostore.sync.ObjectStore``
on moto's S3 server (``moto_s3`` in conftest; a fresh bucket for every store made).

The module is imported (not its classes) so pytest does not also collect zarr's
originals. ``StoreTests`` is the generic suite zarr runs for every store;
zarr's own suite for an object store, ``TestFSStore``, is about fsspec (``file://``
paths, ``simplecache::`` chains, ``FSStore._normalize_key``), so of its tests only
those about store behaviour are carried over here, rewritten for a bucket:
``test_deep_ndim`` (zarr's exact body), ``test_read_only``, ``test_eq`` and the
consolidated-metadata checks. Nothing of ``StoreTests`` is skipped.

Two layouts: the store at a bucket's root, and the store under a prefix of a
bucket that also holds objects beside it (``data.zarr2/...``, ``data.zarr.bak``,
``other``): whatever the suite lists, clears, renames or deletes under the
prefix, those must be neither seen nor touched.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.tests.test_storage as zt

import aiostore.sync

#: Objects put beside the prefixed store's prefix (in the same bucket), and their values.
NEIGHBOURS = {
    "group/data.zarr2/.zgroup": b"{}",
    "group/data.zarr.bak": b"backup",
    "group/data.zarr2/x/0": b"neighbour chunk",
    "other": b"outside",
}


class TestObjectStoreS3(zt.StoreTests):
    """The store at the root of a fresh bucket."""

    prefix = ""

    @pytest.fixture(autouse=True)
    def _server(self, moto_s3: Any) -> Any:
        self.server = moto_s3
        self.buckets: list[str] = []
        yield
        for bucket in self.buckets:  # nothing outside a store's prefix was touched
            if self.prefix:
                outside = self.open(bucket, "")
                assert outside.getitems(list(NEIGHBOURS), contexts={}) == NEIGHBOURS, bucket

    def open(self, bucket: str, prefix: str, **kwargs: Any) -> aiostore.sync.ObjectStore:
        return aiostore.sync.ObjectStore(self.server.url(bucket, prefix), **self.server.options(), **kwargs)

    def new_bucket(self) -> str:
        bucket = self.server.bucket()
        self.buckets.append(bucket)
        if self.prefix:
            self.open(bucket, "").setitems(NEIGHBOURS)
        return str(bucket)

    def create_store(self, **kwargs: Any) -> aiostore.sync.ObjectStore:
        return self.open(self.new_bucket(), self.prefix, **kwargs)

    # -- from zarr's TestFSStore, for a bucket instead of a local path ----------------
    test_deep_ndim = zt.TestFSStore.test_deep_ndim

    def test_read_only(self) -> None:
        store = self.create_store()
        store[self.root + "foo"] = b"bar"
        bucket = self.buckets[-1]
        store = self.open(bucket, self.prefix, read_only=True)
        with pytest.raises(PermissionError):
            store[self.root + "foo"] = b"hex"
        with pytest.raises(PermissionError):
            del store[self.root + "foo"]
        with pytest.raises(PermissionError):
            store.delitems([self.root + "foo"])
        with pytest.raises(PermissionError):
            store.setitems({self.root + "foo": b"baz"})
        with pytest.raises(PermissionError):
            store.clear()
        with pytest.raises(PermissionError):
            store.rmdir(self.root + "anydir")
        assert store[self.root + "foo"] == b"bar"

    def test_eq(self) -> None:
        store1 = self.create_store()
        store2 = self.open(self.buckets[-1], self.prefix)
        assert store1 == store2
        assert store1 != self.create_store()  # another bucket
        assert pickle.loads(pickle.dumps(store1)) == store1

    def test_eq_tells_services_apart(self) -> None:
        store = self.create_store()
        options = self.server.options()
        options["config"] = {**options["config"], "endpoint": "http://127.0.0.1:9"}  # another service
        elsewhere = aiostore.sync.ObjectStore(self.server.url(self.buckets[-1], self.prefix), **options)
        assert store != elsewhere

    @pytest.mark.parametrize("mode,allowed", [("r", False), ("r+", True)])
    def test_modify_consolidated(self, mode: str, allowed: bool) -> None:
        store = self.create_store()
        root = zarr.open_group(store, mode="w")
        root.zeros("baz", shape=(10000, 10000), chunks=(1000, 1000), dtype="i4")
        zarr.consolidate_metadata(store)

        root = zarr.open_consolidated(store, mode=mode)
        if allowed:
            root["baz"][0, 0] = 7
            root = zarr.open_consolidated(self.open(self.buckets[-1], self.prefix), mode="r")
            assert root["baz"][0, 0] == 7
        else:
            with pytest.raises(zarr.errors.ReadOnlyError):
                root["baz"][0, 0] = 7

    @pytest.mark.parametrize("mode", ["r", "r+"])
    def test_modify_consolidated_metadata_raises(self, mode: str) -> None:
        store = self.create_store()
        root = zarr.open_group(store, mode="w")
        root.zeros("baz", shape=(10000, 10000), chunks=(1000, 1000), dtype="i4")
        zarr.consolidate_metadata(store)
        root = zarr.open_consolidated(store, mode=mode)
        with pytest.raises(zarr.errors.ReadOnlyError):
            root["baz"].resize(100, 100)

    # -- an array, end to end ---------------------------------------------------------
    @pytest.mark.parametrize("dimension_separator", [".", "/"])
    def test_array_round_trip(self, dimension_separator: str) -> None:
        data = np.arange(40 * 30, dtype="float32").reshape(40, 30)
        store = self.create_store(dimension_separator=dimension_separator)
        z = zarr.create(shape=data.shape, chunks=(8, 7), dtype=data.dtype, store=store, path="a/b")
        z[:] = data
        z[3:9, 2:5] = -1
        data[3:9, 2:5] = -1
        again = zarr.open_array(self.open(self.buckets[-1], self.prefix), path="a/b", mode="r")
        np.testing.assert_array_equal(again[:], data)
        chunks = sorted(k for k in store.keys() if k.startswith("a/b/") and not k.endswith(".zarray"))
        assert chunks == sorted(f"a/b/{i}{dimension_separator}{j}" for i in range(5) for j in range(5))
        assert sorted(store.listdir("a")) == [".zgroup", "b"]  # zarr made the parent group


class TestObjectStoreS3Prefix(TestObjectStoreS3):
    """The store under ``group/data.zarr`` of a bucket with other objects beside it."""

    prefix = "group/data.zarr"
