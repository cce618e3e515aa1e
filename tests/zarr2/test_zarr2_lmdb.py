"""zarr 2.18.7's LMDBStore suite and the seed's LMDBStore examples, on aiostore's sync LMDBStore."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import zarr
import zarr.tests.test_storage as zt

import aiostore.sync


class TestLMDBStore(zt.TestLMDBStore):
    def create_store(self, **kwargs: Any) -> aiostore.sync.LMDBStore:
        return aiostore.sync.LMDBStore(zt.mktemp(suffix=".lmdb"), buffers=True, **kwargs)


# -- the seed's examples ------------------------------------------------------------


def test_seed_single_array() -> None:
    store = aiostore.sync.LMDBStore("data/array.mdb")
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
    z[...] = 42
    store.close()  # don't forget to call this when you're done
    with aiostore.sync.LMDBStore("data/array.mdb", read_only=True) as store:
        assert (zarr.open_array(store, mode="r")[...] == 42).all()


def test_seed_group() -> None:
    store = aiostore.sync.LMDBStore("data/group.mdb")
    root = zarr.group(store=store, overwrite=True)
    foo = root.create_group("foo")
    bar = foo.zeros("bar", shape=(10, 10), chunks=(5, 5))
    bar[...] = 42
    store.close()  # don't forget to call this when you're done
    with aiostore.sync.LMDBStore("data/group.mdb") as store:
        assert (zarr.open_group(store, mode="r")["foo/bar"][...] == 42).all()
        assert sorted(store.listdir("foo/bar")) == [".zarray", "0.0", "0.1", "1.0", "1.1"]


def test_seed_context_manager() -> None:
    with aiostore.sync.LMDBStore("data/array.mdb") as store:
        z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
        z[...] = 42
        # no need to call store.close()
    assert store.async_store.closed
    with aiostore.sync.LMDBStore("data/array.mdb") as store:
        assert (zarr.open_array(store, mode="r")[...] == 42).all()


def test_pickled_array_reopens_and_reads() -> None:
    with aiostore.sync.LMDBStore("data/array.mdb") as store:
        z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True, dtype="i4")
        z[...] = np.arange(100, dtype="i4").reshape(10, 10)
        dump = pickle.dumps(z)
    z2 = pickle.loads(dump)
    try:
        assert (z2[...] == np.arange(100).reshape(10, 10)).all()
    finally:
        z2.store.close()
