"""Every backend runs the conformance suite of :mod:`aiostore.testing`.

Each class opens its store through one ``build(stores, read_only)`` method, where
``stores`` is :mod:`aiostore` for the async tests and :mod:`aiostore.sync` for the
sync ones, so the sync tests run on the real sync twins (same names, same
parameters), not just on ``SyncStore(async_store)``.
"""

from __future__ import annotations

import dbm.dumb
import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest

import aiostore
import aiostore.sync
from aiostore import Store
from aiostore.sync import SyncStore
from aiostore.testing import StoreTests


def known_bug(name: str, reason: str) -> Callable[..., Any]:
    """The inherited test ``name``, marked ``xfail(strict=True)`` for one backend only."""
    inherited = getattr(StoreTests, name)
    if inspect.iscoroutinefunction(inherited):

        @functools.wraps(inherited)
        async def test(self: StoreTests, anyio_backend: str) -> None:
            await inherited(self, anyio_backend)

        test = pytest.mark.anyio(test)
    else:

        @functools.wraps(inherited)
        def test(self: StoreTests) -> None:
            inherited(self)

    marked: Callable[..., Any] = pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)(test)
    return marked


# The aiostore bugs the suite finds; each is marked on the backends it affects.
LOSES_A_KEY_OF_THE_BATCH = (
    "aiostore bug: set_many({'x/y': b'2', 'x': b'1', ...}) raises no BatchWriteError, yet 'x' replaced "
    "the directory that 'x/y' of the same batch was written to: get('x/y') then raises KeyError "
    "(README: every key not in BatchWriteError.failed is fully written)"
)
CACHE_ANSWERS_A_LOST_KEY = (
    "aiostore bug: LRUStoreCache.set_many caches every key of a batch the store accepted, so after "
    "set_many({'x/y': b'2', 'x': b'1', ...}) the cache answers get('x/y') == b'2' and contains('x/y') "
    "is True while the store, read afresh, holds no 'x/y' (that the store itself loses 'x/y' is "
    "the MemoryStore/DirectoryStore bug)"
)
LMDB_LISTDIR_TWICE = (
    "aiostore bug: LMDBStore.listdir names a child twice when it is both a key and a path: with 'x', "
    "'x/y', 'xa' and 'z' stored, listdir() == ['x', 'x', 'xa', 'z'] instead of ['x', 'xa', 'z']"
)


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
    test_set_many_writes_every_key_it_does_not_report = known_bug(
        "test_set_many_writes_every_key_it_does_not_report", LOSES_A_KEY_OF_THE_BATCH
    )

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.MemoryStore(self.root, read_only=read_only)


class TestMappingStore(BackendTests):
    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.MappingStore(self.root, read_only=read_only)


class TestDirectoryStore(BackendTests):
    values_are_leaves = True
    test_set_many_writes_every_key_it_does_not_report = known_bug(
        "test_set_many_writes_every_key_it_does_not_report", LOSES_A_KEY_OF_THE_BATCH
    )

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.DirectoryStore(self.tmp_path / "data.zarr", read_only=read_only)


class TestNestedDirectoryStore(BackendTests):
    values_are_leaves = True
    test_set_many_writes_every_key_it_does_not_report = known_bug(
        "test_set_many_writes_every_key_it_does_not_report", LOSES_A_KEY_OF_THE_BATCH
    )

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.NestedDirectoryStore(self.tmp_path / "data.zarr", read_only=read_only)


class TestTempStore(BackendTests):
    """The first store of a test is a TempStore; later ones open its directory."""

    values_are_leaves = True
    can_reopen = False  # its directory is removed when it is closed
    test_set_many_writes_every_key_it_does_not_report = known_bug(
        "test_set_many_writes_every_key_it_does_not_report", LOSES_A_KEY_OF_THE_BATCH
    )

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
    test_a_name_that_is_a_key_and_a_path = known_bug(
        "test_a_name_that_is_a_key_and_a_path", LMDB_LISTDIR_TWICE
    )

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.LMDBStore(self.tmp_path / "data.mdb", read_only=read_only)


class TestLRUStoreCacheOverMemory(BackendTests):
    values_are_leaves = True
    test_set_many_writes_every_key_it_does_not_report = known_bug(
        "test_set_many_writes_every_key_it_does_not_report", CACHE_ANSWERS_A_LOST_KEY
    )

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        return stores.LRUStoreCache(aiostore.MemoryStore(self.root, read_only=read_only), max_size=2**20)


class TestLRUStoreCacheOverDirectory(BackendTests):
    """A small cache (1 KiB), so that values are evicted and large ones never cached."""

    values_are_leaves = True
    test_set_many_writes_every_key_it_does_not_report = known_bug(
        "test_set_many_writes_every_key_it_does_not_report", CACHE_ANSWERS_A_LOST_KEY
    )

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        inner = aiostore.DirectoryStore(self.tmp_path / "data.zarr", read_only=read_only)
        return stores.LRUStoreCache(inner, max_size=1024)
