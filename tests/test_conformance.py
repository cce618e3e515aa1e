"""Every backend runs the conformance suite of :mod:`aiostore.testing`.

Each class opens its store through one ``build(stores, read_only)`` method, where
``stores`` is :mod:`aiostore` for the async tests and :mod:`aiostore.sync` for the
sync ones, so the sync tests run on the real sync twins (same names, same
parameters), not just on ``SyncStore(async_store)``.
"""

from __future__ import annotations

import dbm.dumb
from types import ModuleType
from typing import Any

import anyio
import pytest

import aiostore
import aiostore.sync
from aiostore import Store
from aiostore.sync import SyncStore
from aiostore.testing import StoreTests


class BackendTests(StoreTests):
    """Opens a store through :meth:`build`, for the async and the sync tests alike."""

    def build(self, stores: ModuleType, read_only: bool) -> Any:
        raise NotImplementedError

    async def open_store(self, **kwargs: Any) -> Store:
        store = self.build(aiostore, **kwargs)
        assert isinstance(store, Store)
        return store

    def open_store_sync(self, **kwargs: Any) -> SyncStore:
        store = self.build(aiostore.sync, **kwargs)
        assert isinstance(store, SyncStore)
        return store

    @property
    def root(self) -> dict[str, Any]:
        """One in-memory hierarchy per test, shared by every store the test opens."""
        root: dict[str, Any] = self.__dict__.setdefault("_root", {})
        return root


class TestMemoryStore(BackendTests):
    values_are_leaves = True

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.MemoryStore(self.root, read_only=read_only)


class TestMappingStore(BackendTests):
    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.MappingStore(self.root, read_only=read_only)


class TestDirectoryStore(BackendTests):
    values_are_leaves = True

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.DirectoryStore(self.tmp_path / "data.zarr", read_only=read_only)


class TestNestedDirectoryStore(BackendTests):
    values_are_leaves = True

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.NestedDirectoryStore(self.tmp_path / "data.zarr", read_only=read_only)


class TestTempStore(BackendTests):
    """The first store of a test is a TempStore; later ones open its directory."""

    values_are_leaves = True
    can_reopen = False  # its directory is removed when it is closed

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        path = self.__dict__.get("_path")
        if path is None:
            store = stores.TempStore(dir=self.tmp_path)
            self._path = store.path
            return store
        return stores.DirectoryStore(path, read_only=read_only)

    @pytest.mark.anyio
    async def test_close_removes_the_directory(self, anyio_backend: str) -> None:
        store = await self.open_store()
        await store.set("a/b", b"1")
        assert await anyio.Path(self._path, "a", "b").is_file()
        await store.aclose()
        assert not await anyio.Path(self._path).exists()


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
class TestZipStore(BackendTests):
    """A Zip file: no deletes. Writes reach other readers once flushed or closed."""

    supports_deletes = False

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.ZipStore(self.tmp_path / "data.zip", mode="r" if read_only else "a")


class TestDBMStore(BackendTests):
    """``dbm.dumb``: the dbm this Python has; its index is written on flush and close."""

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.DBMStore(self.tmp_path / "data.db", flag="r" if read_only else "c", open=dbm.dumb.open)


class TestLMDBStore(BackendTests):
    """``buffers=False``: values are ``bytes`` copied out of the map."""

    buffers = False

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.LMDBStore(self.tmp_path / "data.mdb", buffers=self.buffers, read_only=read_only)


class TestLMDBStoreBuffers(TestLMDBStore):
    """``buffers=True`` (the default): values are read-only memoryviews into the map."""

    buffers = True
    returns_buffers = True


class TestLRUStoreCacheOverMemory(BackendTests):
    values_are_leaves = True

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.LRUStoreCache(aiostore.MemoryStore(self.root, read_only=read_only), max_size=2**20)


class TestLRUStoreCacheOverDirectory(BackendTests):
    """A small cache (1 KiB), so that values are evicted and large ones never cached."""

    values_are_leaves = True

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        inner = aiostore.DirectoryStore(self.tmp_path / "data.zarr", read_only=read_only)
        return stores.LRUStoreCache(inner, max_size=1024)
