"""Regression tests for bugs found in review: each test failed before its fix."""

from __future__ import annotations

import dbm.dumb
import pathlib
import zipfile

import anyio
import pytest

from aiostore import (
    DBMStore,
    DirectoryStore,
    LMDBStore,
    LRUStoreCache,
    MemoryStore,
    Store,
    TempStore,
    ZipStore,
)
from aiostore.sync import DirectoryStore as SyncDirectoryStore
from aiostore.sync import MemoryStore as SyncMemoryStore

pytestmark = pytest.mark.anyio


# -- a cancelled aclose still releases everything -------------------------------------
#
# ``async with store:`` left because the surrounding scope was cancelled (a timeout,
# a failing sibling task) runs ``aclose`` inside that cancelled scope. Its first
# thread hop raised the cancellation at once: the store said it was closed while
# the Zip file had no central directory, the DBM file stayed open, the LMDB
# environment kept a user and the temporary directory stayed on disk.


async def _close_cancelled(store: Store) -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await store.aclose()
    assert store.closed


async def test_cancelled_aclose_of_a_zip_store_writes_the_central_directory(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "x.zip")
    store = ZipStore(path, mode="w")
    await store.set("a", b"1")
    await _close_cancelled(store)
    assert zipfile.is_zipfile(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("a") == b"1"


async def test_cancelled_aclose_of_a_dbm_store_closes_the_database(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "x.db")
    store = DBMStore(path, open=dbm.dumb.open)
    await store.set("a", b"1")
    await _close_cancelled(store)
    assert store.db is None
    async with DBMStore(path, "r", open=dbm.dumb.open) as again:
        assert await again.get("a") == b"1"


async def test_cancelled_aclose_of_an_lmdb_store_releases_the_environment(tmp_path: pathlib.Path) -> None:
    store = LMDBStore(str(tmp_path / "x.mdb"))
    shared = store._shared
    assert shared is not None
    await store.set("a", b"1")
    await _close_cancelled(store)
    assert store._shared is None and shared.closed


async def test_cancelled_aclose_of_a_temp_store_removes_its_directory() -> None:
    store = TempStore()
    await store.set("a", b"1")
    await _close_cancelled(store)
    assert not await anyio.Path(store.path).exists()


# -- ZipStore.rmdir of a plain key is a no-op, as for every store ------------------------


async def test_zip_rmdir_of_a_plain_key_leaves_it_alone(tmp_path: pathlib.Path) -> None:
    # DESIGN: "a path that names a single key, or nothing, is left alone"; only
    # keys *below* the path would need removing, which a Zip file cannot do.
    async with ZipStore(str(tmp_path / "x.zip"), mode="w") as store:
        await store.set_many({"c": b"2", "a/b": b"1"})
        await store.rmdir("c")
        assert await store.get_many(["c", "a/b"]) == {"c": b"2", "a/b": b"1"}
        with pytest.raises(NotImplementedError, match="cannot remove 'a'"):
            await store.rmdir("a")


# -- the cache forgets what a directory held when its name is deleted or overwritten ---------
#
# In MemoryStore and DirectoryStore (zarr 2's rules) deleting a directory's name
# removes the directory, and writing a value at it replaces the directory. The
# cache dropped only the name itself, so it went on serving the removed values,
# ``contains`` answers and listings below it.


@pytest.mark.parametrize("backend", ["memory", "directory"])
@pytest.mark.parametrize("change", ["delete", "delete_many", "set", "set_many"])
async def test_cache_drops_what_was_below_a_removed_directory(
    tmp_path: pathlib.Path, backend: str, change: str
) -> None:
    inner: Store = MemoryStore() if backend == "memory" else DirectoryStore(str(tmp_path / "d"))
    cache = LRUStoreCache(inner, max_size=None)
    await cache.set_many({"a/b": b"1", "a/c/d": b"2", "k": b"3"})
    assert await cache.get("a/b") == b"1" and await cache.contains("a/c/d")
    assert await cache.listdir("a") == ["b", "c"] and await cache.listdir("a/c") == ["d"]
    if change == "delete":
        await cache.delete("a")
    elif change == "delete_many":
        await cache.delete_many(["a", "k"])
    elif change == "set":
        await cache.set("a", b"v")
    else:
        await cache.set_many({"a": b"v", "k": b"4"})
    assert await inner.get_many(["a/b", "a/c/d"]) == {}
    assert await cache.get_many(["a/b", "a/c/d"]) == {}
    assert not await cache.contains("a/b") and not await cache.contains("a/c/d")
    assert await cache.listdir("a") == [] and await cache.listdir("a/c") == []
    with pytest.raises(KeyError):
        await cache.get("a/b")


# -- SyncStore.getitems answers under the keys it was asked for ------------------------------
#
# zarr 2 looks each chunk up in getitems' result by its own key. get_many answers
# under the normalized keys, so with normalize_keys=True an array named "Foo"
# (chunk "Foo/0" stored as "foo/0") read back as fill values: written data lost
# from the user's point of view.


def test_sync_getitems_answers_under_the_requested_keys(tmp_path: pathlib.Path) -> None:
    store = SyncDirectoryStore(str(tmp_path / "d"), normalize_keys=True)
    store.setitems({"Foo/0": b"a", "foo/1": b"b"})
    assert store.getitems(["Foo/0", "Foo/1", "Foo/2"], contexts={}) == {"Foo/0": b"a", "Foo/1": b"b"}
    assert store.getitems(["foo/0"], contexts={}) == {"foo/0": b"a"}
    plain = SyncMemoryStore()
    plain["a/b"] = b"1"
    assert plain.getitems(["/a//b", "a/b", "missing"], contexts={}) == {"/a//b": b"1", "a/b": b"1"}


# -- rename onto a directory left empty by deletes -----------------------------------------
#
# Deleting a directory's last key leaves the (empty) directory behind in the
# hierarchical stores. Nothing is stored there -- listdir is empty, contains is
# False, and a flat store renames onto it -- yet rename refused with
# FileExistsError "'x' exists".


@pytest.mark.parametrize("backend", ["memory", "directory"])
@pytest.mark.parametrize("src", ["a", "a/b"])
async def test_rename_onto_an_emptied_directory(tmp_path: pathlib.Path, backend: str, src: str) -> None:
    store: Store = MemoryStore() if backend == "memory" else DirectoryStore(str(tmp_path / "d"))
    await store.set_many({"a/b": b"1", "x/y": b"2"})
    await store.delete("x/y")
    assert await store.listdir("x") == [] and not await store.contains("x")
    await store.rename(src, "x")
    moved = {"a": {"x/b": b"1"}, "a/b": {"x": b"1"}}[src]
    assert {k: await store.get(k) for k in [k async for k in store.list()]} == moved
    # A directory that still holds something is never replaced.
    await store.set_many({"p/q": b"3", "r": b"4"})
    with pytest.raises(FileExistsError):
        await store.rename("r", "p")
    assert await store.get("p/q") == b"3" and await store.get("r") == b"4"
