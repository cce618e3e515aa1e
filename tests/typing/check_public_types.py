"""Type-checked, never run: ``mypy --strict`` (the typecheck session) reads this file.

Each ``assert_type`` must hold, and each line marked ``# type: ignore[...]`` must be
an error (``--strict`` reports an ignore that is not needed), so the public types
cannot silently become ``Any`` or accept what the API refuses.
"""

from __future__ import annotations

from typing import assert_type

import numpy as np

import aiostore
import aiostore.sync


def sync_twins_are_real_classes() -> None:
    store = aiostore.sync.DirectoryStore("data/x.zarr")
    assert_type(store, aiostore.sync.DirectoryStore)
    assert_type(store.async_store, aiostore.DirectoryStore)
    assert_type(store["a"], bytes)
    assert_type(store.getitems(["a"], contexts={}), dict[str, bytes])
    assert_type(store.listdir(""), list[str])
    assert_type(store.getsize("a"), int)
    cache = aiostore.sync.LRUStoreCache({}, max_size=2**20)
    assert_type(cache.async_store, aiostore.LRUStoreCache)
    aiostore.sync.DirectoryStore(42)  # type: ignore[arg-type]
    store["a"] = "text"  # type: ignore[assignment]


async def values_are_buffers(store: aiostore.MemoryStore) -> None:
    await store.set("a", b"1")
    await store.set("a", bytearray(b"1"))
    await store.set("a", memoryview(b"1"))
    await store.set("a", np.zeros(3))
    await store.set("a", "text")  # type: ignore[arg-type]
    await store.set_many({"a": [1, 2]})  # type: ignore[arg-type]
    assert_type(await store.get("a"), bytes)
    assert_type(await store.get_many(["a"]), dict[str, bytes])
    assert_type(store.get_sync("a"), bytes)
