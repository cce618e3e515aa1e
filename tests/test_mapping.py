"""MappingStore: any MutableMapping of str -> bytes as a store (a blocking backend)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import pytest

import aiostore.sync
from aiostore import MappingStore, MemoryStore, as_store

pytestmark = pytest.mark.anyio


class MinimalMapping(MutableMapping[str, bytes]):
    """Only the five abstract methods: nothing a dict has beyond the protocol."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self.threads: set[int] = set()

    def __getitem__(self, key: str) -> bytes:
        self.threads.add(threading.get_ident())
        return self._data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.threads.add(threading.get_ident())
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


async def test_any_mutable_mapping_is_a_full_store() -> None:
    mapping = MinimalMapping()
    store = MappingStore(mapping)
    await store.set_many({"a/b": b"1", "a/c/d": b"22", "e": b"333"})
    assert mapping._data == {"a/b": b"1", "a/c/d": b"22", "e": b"333"}
    assert await store.listdir("a") == ["b", "c"]
    assert await store.getsize("a") == 1 and await store.getsize() == 3
    await store.rename("a", "z")
    assert sorted(mapping._data) == ["e", "z/b", "z/c/d"]
    await store.rmdir("z")
    assert list(mapping._data) == ["e"]
    assert await store.get("e", byte_range=(1, None)) == b"33"


async def test_async_calls_run_in_worker_threads_one_hop_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    hops = []
    original = anyio.to_thread.run_sync

    async def counting(*args: Any, **kwargs: Any) -> Any:
        hops.append(args[0])
        return await original(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    mapping = MinimalMapping()
    store = MappingStore(mapping)
    await store.set_many({f"k{i}": b"v" for i in range(100)})
    assert len(await store.get_many([f"k{i}" for i in range(100)])) == 100
    await store.delete_many([f"k{i}" for i in range(50)])
    # A mapping is used under one lock, so a batch is never split: one hop each.
    assert len(hops) == 3
    assert threading.get_ident() not in mapping.threads  # never on the event loop's thread


async def test_values_written_by_others_come_back_as_bytes() -> None:
    mapping = {"ba": bytearray(b"ab"), "mv": memoryview(b"cd"), "np": np.array([1, 2], dtype="<u2")}
    store = MappingStore(mapping)  # type: ignore[arg-type]
    assert await store.get_many(["ba", "mv", "np"]) == {"ba": b"ab", "mv": b"cd", "np": b"\x01\x00\x02\x00"}
    assert all(type(v) is bytes for v in (await store.get_many(["ba", "mv", "np"])).values())
    assert await store.get("np", byte_range=(-2, None)) == b"\x02\x00"


async def test_values_are_stored_as_bytes_copies() -> None:
    mapping: dict[str, bytes] = {}
    value = bytearray(b"xy")
    await MappingStore(mapping).set("k", value)
    value[0] = 0
    assert mapping == {"k": b"xy"} and type(mapping["k"]) is bytes


async def test_non_str_keys_in_the_mapping_are_not_listed() -> None:
    mapping = {"a": b"1", 2: b"2", b"c": b"3"}
    store = MappingStore(mapping)  # type: ignore[arg-type]
    assert [k async for k in store.list()] == ["a"]


def test_dimension_separator_from_the_mapping() -> None:
    class Separated(dict[str, bytes]):
        _dimension_separator = "/"

    assert MappingStore(Separated()).dimension_separator == "/"
    assert MappingStore(Separated(), dimension_separator=".").dimension_separator == "."
    assert MappingStore({}).dimension_separator is None


def test_construction_checks_and_repr() -> None:
    with pytest.raises(TypeError, match="MutableMapping"):
        MappingStore([])  # type: ignore[arg-type]
    assert repr(MappingStore({})) == "MappingStore(dict)"
    assert MappingStore({"a": b"1"}) == MappingStore({"a": b"1"})


def test_as_store() -> None:
    memory = MemoryStore()
    assert as_store(memory) is memory
    assert as_store(aiostore.sync.MemoryStore(root={})).root == {}  # type: ignore[attr-defined]
    sync = aiostore.sync.SyncStore(memory)
    assert as_store(sync) is memory
    data: dict[str, bytes] = {}
    wrapped = as_store(data)
    assert isinstance(wrapped, MappingStore) and wrapped.mapping is data
    with pytest.raises(TypeError):
        as_store(3)
