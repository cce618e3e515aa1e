"""zarr 2.18.7's own store suites, run against aiostore's in-memory sync stores.

The module is imported (not its classes) so pytest does not also collect
zarr's originals. Nothing is skipped: zarr's ``TestMemoryStore`` skips its
nested-chunk (``dimension_separator="/"``) case for zarr's own store, but
aiostore's MemoryStore supports it, so that case runs here.
"""

from __future__ import annotations

from typing import Any

import zarr.tests.test_storage as zt

import aiostore.sync


class TestMemoryStore(zt.TestMemoryStore):
    def create_store(self, **kwargs: Any) -> aiostore.sync.MemoryStore:
        return aiostore.sync.MemoryStore(**kwargs)


class TestDictStore(zt.StoreTests):
    """``DictStore`` is the seed's name for MemoryStore; aiostore does not deprecate it,
    so zarr's ``TestDictStore`` checks for a DeprecationWarning do not apply: this runs
    the generic suite plus the MemoryStore-specific checks instead."""

    def create_store(self, **kwargs: Any) -> aiostore.sync.DictStore:
        return aiostore.sync.DictStore(**kwargs)

    test_store_contains_bytes = zt.TestMemoryStore.test_store_contains_bytes
    test_setdel = zt.TestMemoryStore.test_setdel

    def test_is_memory_store(self) -> None:
        assert isinstance(self.create_store(), aiostore.sync.MemoryStore)


class TestMappingStore(zt.TestMappingStore):
    """zarr's suite for ``KVStore(dict())``, with ``aiostore.sync.MappingStore(dict())``.

    zarr's version turns ``test_set_invalid_content`` into a no-op because a plain
    mapping accepts any value; aiostore checks values before they reach the mapping,
    so the generic check (``TypeError`` for a list) runs here.
    """

    def create_store(self, **kwargs: Any) -> aiostore.sync.MappingStore:
        return aiostore.sync.MappingStore(dict(), **kwargs)

    test_set_invalid_content = zt.StoreTests.test_set_invalid_content
