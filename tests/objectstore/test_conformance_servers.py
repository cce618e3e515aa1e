"""aiostore.testing's conformance suite on ObjectStore, against real servers on 127.0.0.1.

S3 is moto's server (a fresh bucket per test), Azure Blob is Azurite (a fresh
container per test), and obstore's own in-memory and local stores run without a
server. Every store a test opens is built anew over the same bucket (or
container, or obstore store), as the suite's ``open_store`` hook asks; the sync
tests run on the real sync twin, :class:`aiostore.sync.ObjectStore`.

Object stores are flat: a key and a "directory" of the same name coexist, so
``values_are_leaves`` is False (obstore's local store, over a file system, is
the exception).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import pytest
from servers import Azurite, MotoS3

import aiostore
import aiostore.sync
from aiostore import Store
from aiostore.sync import SyncStore
from aiostore.testing import StoreTests

obstore_store = pytest.importorskip("obstore.store")

# Why some of the suite's tests fail on some of these stores: aiostore bugs, each
# test marked xfail(strict=True) in the classes it fails in (``xfails``; see conftest.py).
LOCAL_EMPTY_DIRECTORIES = (
    "aiostore bug: on obstore's LocalStore, delete/clear/rename leave empty directories behind, "
    "and listdir reports them ('b', 'd' after clear())"
)
LOCAL_VALUES_OVER_DIRECTORIES = (
    "aiostore bug: on obstore's LocalStore, writing a value where keys are below fails (EISDIR) "
    "instead of replacing them, and set_many({'x', 'x/y'}) races: which key fails depends on timing"
)


class ObjectStoreTests(StoreTests):
    """Opens every store of a test through :meth:`build`, async and sync alike."""

    values_are_leaves = False  # an object and a "directory" of the same name coexist

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        raise NotImplementedError

    async def open_store(self, **kwargs: Any) -> Store:
        store = self.build(aiostore, **kwargs)
        assert isinstance(store, aiostore.ObjectStore)
        return store

    def open_store_sync(self, **kwargs: Any) -> SyncStore[Any]:
        store = self.build(aiostore.sync, **kwargs)
        assert isinstance(store, aiostore.sync.ObjectStore)
        return store

    def once(self, name: str, make: Any) -> Any:
        """A value made on the test's first call and reused by its later ones (one bucket per test)."""
        if name not in self.__dict__:
            self.__dict__[name] = make()
        return self.__dict__[name]


class TestS3(ObjectStoreTests):
    """moto's S3 server; a fresh bucket per test, the store at the bucket's root."""

    prefix = ""

    @pytest.fixture(autouse=True)
    def _server(self, moto_s3: MotoS3) -> None:
        self.server = moto_s3

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        bucket = self.once("bucket", self.server.bucket)
        url = self.server.url(bucket, self.prefix)
        return stores.ObjectStore(url, read_only=read_only, **self.server.options())


class TestS3UnderAPrefix(TestS3):
    """The store's keys live below ``some/prefix/`` in the bucket; nothing else is touched.

    The suite's concurrency tests (hundreds of requests each, to moto's Python
    server) run in :class:`TestS3`: a prefix changes the paths, not the way
    requests are run. Everything about paths, listing (past a page of 1,000
    keys too) and the hierarchy runs here.
    """

    prefix = "some/prefix"
    skips: ClassVar[dict[str, str]] = dict.fromkeys(
        [
            "test_concurrent_gets",
            "test_concurrent_writes",
            "test_cancelled_set_many_leaves_keys_old_or_new",
            "test_sync_threads",
        ],
        "a concurrency test: TestS3 runs it on the same server; a prefix changes only the paths",
    )

    @pytest.mark.anyio
    async def test_keys_live_below_the_prefix(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many({"a": b"1", "b/c": b"22"})
            assert sorted([key async for key in store.list()]) == ["a", "b/c"]
        # The bucket's root, seen through a store without the prefix.
        bucket = self.server.url(self.__dict__["bucket"])
        async with aiostore.ObjectStore(bucket, **self.server.options()) as root:
            assert sorted([key async for key in root.list()]) == ["some/prefix/a", "some/prefix/b/c"]
            assert await root.listdir() == ["some"]
            await root.set("outside", b"x")
        async with await self._open() as store:
            assert sorted([key async for key in store.list()]) == ["a", "b/c"]
            await store.clear()
        async with aiostore.ObjectStore(bucket, **self.server.options()) as root:
            assert [key async for key in root.list()] == ["outside"]  # clear() stays below the prefix


class TestAzure(ObjectStoreTests):
    """Azurite's Blob service; a fresh container per test."""

    @pytest.fixture(autouse=True)
    def _server(self, azurite: Azurite) -> None:
        self.server = azurite

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        container = self.once("container", self.server.container)
        return stores.ObjectStore(self.server.url(container), read_only=read_only, **self.server.options())

    @pytest.mark.anyio
    async def test_use_emulator_config(self, anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """obstore's ``use_emulator`` finds Azurite through $AZURITE_BLOB_STORAGE_URL."""
        monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", self.server.endpoint)
        container = self.server.container()
        config = {"use_emulator": "true", "account_name": "devstoreaccount1"}
        async with aiostore.ObjectStore(f"az://{container}/p", config=config, allow_http=True) as store:
            await store.set_many({"a": b"1", "b/c": b"2"})
            assert await store.get_many(["a", "b/c", "x"]) == {"a": b"1", "b/c": b"2"}
            assert await store.listdir() == ["a", "b"]
            assert repr(store) == f"ObjectStore('az://{container}/p')"


class TestObstoreMemory(ObjectStoreTests):
    """obstore's in-memory store: one ``MemoryStore`` instance per test, shared by its stores.

    ``ObjectStore("memory:///")`` would be a new, empty store each time; an obstore
    store passed in is used as it is, so every store of a test sees the same data.
    An obstore ``MemoryStore`` cannot be pickled, so neither can the store.
    """

    supports_pickle = False

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        memory = self.once("memory", obstore_store.MemoryStore)
        return stores.ObjectStore(memory, read_only=read_only)

    def test_pickle_is_refused(self) -> None:
        import pickle

        store = aiostore.ObjectStore(obstore_store.MemoryStore())
        with pytest.raises(TypeError, match="MemoryStore"):
            pickle.dumps(store)

    @pytest.mark.anyio
    async def test_a_memory_url_is_a_new_store(self, anyio_backend: str) -> None:
        async with aiostore.ObjectStore("memory:///") as first, aiostore.ObjectStore("memory:///") as second:
            await first.set("a", b"1")
            assert await first.get("a") == b"1"
            assert not await second.contains("a")

    def test_memory_url_repr(self) -> None:
        assert repr(aiostore.ObjectStore("memory:///")) == "ObjectStore('memory:///')"


class TestObstoreLocal(ObjectStoreTests):
    """obstore's local store over ``file:///<tmp_path>/data`` (``mkdir=True`` creates the folder).

    A file cannot also be a directory: ``values_are_leaves``, as for DirectoryStore.
    """

    values_are_leaves = True
    xfails: ClassVar[dict[str, str]] = {
        "test_rename": LOCAL_EMPTY_DIRECTORIES,
        "test_rmdir": LOCAL_EMPTY_DIRECTORIES,
        "test_clear": LOCAL_EMPTY_DIRECTORIES,
        "test_listdir_matches_list": LOCAL_EMPTY_DIRECTORIES,
        "test_sync_listdir_matches_keys": LOCAL_EMPTY_DIRECTORIES,
        "test_writing_below_a_value": LOCAL_VALUES_OVER_DIRECTORIES,
    }

    def build(self, stores: ModuleType, read_only: bool = False) -> Any:
        url = (self.tmp_path / "data").as_uri()
        return stores.ObjectStore(url, read_only=read_only, mkdir=True)
