"""MemoryStore: a hierarchy of dicts with zarr 2's level rules, safe from many threads."""

from __future__ import annotations

import collections
import os
import threading
from typing import Any

import anyio
import pytest
from forking import in_forked_child

import aiostore.sync
from aiostore import DictStore, MemoryStore
from aiostore.abc import Buffer
from aiostore.errors import KeyConflictError

pytestmark = pytest.mark.anyio


async def test_values_live_in_nested_mappings_of_cls() -> None:
    store = MemoryStore(cls=collections.OrderedDict)
    await store.set_many({"a/b/c": b"1", "a/d": b"2", "e": b"3"})
    root = store.root
    assert type(root) is collections.OrderedDict
    assert type(root["a"]) is collections.OrderedDict and type(root["a"]["b"]) is collections.OrderedDict
    assert root == {"a": {"b": {"c": b"1"}, "d": b"2"}, "e": b"3"}
    assert DictStore is MemoryStore


async def test_an_existing_root_is_used_not_copied() -> None:
    root: dict[str, Any] = {"x": {"y": b"1"}}
    store = MemoryStore(root)
    assert await store.get("x/y") == b"1"
    await store.set("x/z", b"2")
    assert root == {"x": {"y": b"1", "z": b"2"}}


async def test_zarr2_level_rules() -> None:
    store = MemoryStore()
    await store.set("a/b", b"aaa")
    with pytest.raises(KeyConflictError, match=r"'a/b/c'.*'a/b' holds a value") as caught:
        await store.set("a/b/c", b"x")  # below a value: refused, nothing changed
    assert isinstance(caught.value, KeyError) and caught.value.existing == "a/b"
    with pytest.raises(KeyError):
        await store.delete("a/b/c")
    assert store.root == {"a": {"b": b"aaa"}}

    await store.set("x/y/z", b"1")
    await store.set("x/y", b"2")  # a value replaces the directory at its name (zarr 2)
    assert store.root["x"] == {"y": b"2"}
    await store.set("x", b"3")
    assert store.root["x"] == b"3"

    await store.set("r/s/t", b"1")
    await store.delete("r/s")  # deleting a directory's name removes the directory
    assert not await store.contains("r/s/t")
    assert "r" not in store.root  # and the parent it leaves empty: nothing is below "r" any more
    with pytest.raises(KeyError):
        await store.delete("r")


async def test_rename_moves_a_subtree_and_refuses_to_overwrite() -> None:
    store = MemoryStore()
    await store.set_many({"a/b": b"1", "a/c/d": b"2", "z": b"3"})
    await store.rename("a", "n/m")
    assert store.root == {"n": {"m": {"b": b"1", "c": {"d": b"2"}}}, "z": b"3"}
    with pytest.raises(FileExistsError):
        await store.rename("n/m", "z")
    with pytest.raises(KeyError):
        await store.rename("missing", "elsewhere")
    assert await store.get_many(["n/m/b", "z"]) == {"n/m/b": b"1", "z": b"3"}


async def test_equality_and_hash() -> None:
    one, two = MemoryStore(), MemoryStore()
    await one.set("a", b"1")
    assert one != two
    await two.set("a", b"1")
    assert one == two
    with pytest.raises(TypeError):
        hash(one)


def test_safe_from_many_threads() -> None:
    store = aiostore.sync.MemoryStore()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(200):
                store[f"t{n}/k{i}"] = bytes([n, i % 256])
                store.setitems({f"shared/{n}-{i}": b"x"})
                assert store[f"t{n}/k{i}"] == bytes([n, i % 256])
                if i % 2:
                    del store[f"t{n}/k{i}"]
                if i % 50 == 0:
                    store.listdir("shared")
                    len(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.listdir("shared")) == 8 * 200
    for n in range(8):
        assert store.listdir(f"t{n}") == sorted(f"k{i}" for i in range(0, 200, 2))


async def test_async_tasks_and_threads_together() -> None:
    store = MemoryStore()

    async def task(n: int) -> None:
        await store.set_many({f"a/{n}/{i}": b"v" for i in range(50)})

    def thread_work(n: int) -> None:
        sync = aiostore.sync.SyncStore(store)
        sync.setitems({f"b/{n}/{i}": b"v" for i in range(50)})

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(task, n)
            tg.start_soon(anyio.to_thread.run_sync, thread_work, n)
    assert len([k async for k in store.list()]) == 400


async def test_a_name_whose_last_key_is_deleted_leaves_the_listing() -> None:
    # zarr 3 deletes an array's only chunk a/c/0: "c" must not stay listed under "a".
    store = MemoryStore()
    await store.set_many({"a/zarr.json": b"{}", "a/c/0": b"x", "a/d/e/f": b"y", "a/d/g": b"z"})
    await store.delete("a/c/0")
    assert await store.listdir("a") == ["d", "zarr.json"]
    await store.delete_many(["a/d/e/f", "missing/x"])
    assert await store.listdir("a") == ["d", "zarr.json"] and await store.listdir("a/d") == ["g"]
    store.delete_sync("a/d/g")
    assert await store.listdir("a") == ["zarr.json"] and store.root == {"a": {"zarr.json": b"{}"}}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_child_forked_while_another_thread_is_in_a_call_does_not_hang() -> None:
    entered, release = threading.Event(), threading.Event()

    class SlowStore(MemoryStore):
        def _store_value(self, key: str, value: Buffer) -> None:
            if key == "slow":  # waits holding the store's lock
                entered.set()
                release.wait(10)
            super()._store_value(key, value)

    store = SlowStore()
    store.set_sync("a", b"1")
    writer = threading.Thread(target=store.set_sync, args=("slow", b"v"))
    writer.start()
    assert entered.wait(10)

    def child() -> None:  # its lock was held by a thread that did not come along
        assert store.get_sync("a") == b"1"
        store.set_sync("child", b"2")
        assert store.get_sync("child") == b"2"

    try:
        assert in_forked_child(child) == 0
    finally:
        release.set()
        writer.join(10)
    assert store.get_sync("slow") == b"v" and not store.contains_sync("child")
