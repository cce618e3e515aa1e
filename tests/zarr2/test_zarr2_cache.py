"""zarr 2.18's own LRUStoreCache suite, run with aiostore's sync cache.

``zt.TestLRUStoreCache`` counts what reaches the underlying store (a
``CountingDict``): gets, ``contains`` checks and key listings. The class is
reached through its module so pytest does not collect zarr's original too.
"""

from __future__ import annotations

import numpy as np
import zarr
import zarr.tests.test_storage as zt
from zarr.tests.util import CountingDict

from aiostore import MappingStore
from aiostore.sync import LRUStoreCache


class TestAiostoreLRUStoreCache(zt.TestLRUStoreCache):
    LRUStoreClass = LRUStoreCache

    def create_store(self, **kwargs: object) -> LRUStoreCache:
        # zarr's version skips nested chunks ("a wrapper has no dimension_separator
        # argument"); aiostore's cache takes its store's, so those tests run too.
        return LRUStoreCache(MappingStore(dict(), **kwargs), max_size=2**27)


def _getitem_calls(store: CountingDict) -> int:
    return sum(n for key, n in store.counter.items() if isinstance(key, tuple) and key[0] == "__getitem__")


def test_seed_example_second_read_from_memory() -> None:
    # The seed's example with a counting dict in place of S3: the second read of
    # the array is served by the cache.
    remote = CountingDict()
    root = zarr.group(store=remote)
    root.create_dataset("foo/bar/baz", data=np.arange(100), chunks=10)
    remote.counter.clear()

    cache = LRUStoreCache(remote, max_size=2**28)
    z = zarr.group(store=cache)["foo/bar/baz"]
    assert (z[:] == np.arange(100)).all()
    first = _getitem_calls(remote)
    assert first >= 10  # every chunk came from the store
    assert (z[:] == np.arange(100)).all()
    assert _getitem_calls(remote) == first
    assert cache.hits >= 10


def test_array_writes_through_cache() -> None:
    remote: dict[str, bytes] = {}
    cache = LRUStoreCache(remote, max_size=2**20)
    z = zarr.zeros((20,), chunks=(5,), dtype="i4", store=cache)
    z[:] = np.arange(20)
    assert sorted(k for k in remote if not k.startswith(".")) == ["0", "1", "2", "3"]
    assert (zarr.open_array(remote, mode="r")[:] == np.arange(20)).all()
    assert (z[:] == np.arange(20)).all()
