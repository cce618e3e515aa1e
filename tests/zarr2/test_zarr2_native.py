"""zarr 2 treats aiostore's sync stores as its own stores and uses their batch methods.

zarr 2 wraps any plain ``MutableMapping`` in its ``KVStore``, which hides
``getitems``/``setitems``; a store zarr recognises as a ``BaseStore`` is used as
it is, and zarr then reads and writes all the chunks of one array operation with
one ``getitems`` / one ``setitems`` call.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import zarr
import zarr._storage.store
import zarr.storage

import aiostore
import aiostore.sync
from aiostore.sync import SyncStore


class CountingStore(SyncStore):
    """A sync store over a MemoryStore that records which methods zarr calls."""

    def __init__(self, async_store: aiostore.Store | None = None) -> None:
        super().__init__(async_store if async_store is not None else aiostore.MemoryStore())
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def reset(self) -> None:
        self.calls.clear()

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def __getitem__(self, key: str) -> bytes:
        self.calls.append(("__getitem__", (key,)))
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.calls.append(("__setitem__", (key,)))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.calls.append(("__delitem__", (key,)))
        super().__delitem__(key)

    def getitems(self, keys: Iterable[str], *, contexts: Any = None) -> dict[str, bytes]:
        keys = list(keys)
        self.calls.append(("getitems", tuple(keys)))
        return super().getitems(keys, contexts=contexts)

    def setitems(self, values: Mapping[str, Any]) -> None:
        self.calls.append(("setitems", tuple(values)))
        super().setitems(values)

    def delitems(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self.calls.append(("delitems", tuple(keys)))
        super().delitems(keys)

    def __iter__(self) -> Iterator[str]:
        self.calls.append(("__iter__", ()))
        return super().__iter__()

    def listdir(self, path: str | None = None) -> list[str]:
        self.calls.append(("listdir", (path or "",)))
        return super().listdir(path)

    def rmdir(self, path: str | None = None) -> None:
        self.calls.append(("rmdir", (path or "",)))
        super().rmdir(path)

    def getsize(self, path: str | None = None) -> int:
        self.calls.append(("getsize", (path or "",)))
        return super().getsize(path)

    def rename(self, src_path: str, dst_path: str) -> None:
        self.calls.append(("rename", (src_path, dst_path)))
        super().rename(src_path, dst_path)


STORE_FACTORIES: dict[str, Callable[[], SyncStore]] = {
    "MemoryStore": aiostore.sync.MemoryStore,
    "MappingStore": lambda: aiostore.sync.MappingStore({}),
}


@pytest.mark.parametrize("name", sorted(STORE_FACTORIES))
def test_zarr_uses_the_store_itself(name: str) -> None:
    store = STORE_FACTORIES[name]()
    assert isinstance(store, zarr._storage.store.BaseStore)
    assert zarr._storage.store.BaseStore._ensure_store(store) is store
    group = zarr.open(store)
    assert group.store is store
    z = zarr.open(store, mode="w", shape=(4,), chunks=(2,), dtype="i4")
    assert z.store is store and z.chunk_store is store
    z[...] = np.arange(4)
    assert zarr.open(store, mode="r")[...].tolist() == [0, 1, 2, 3]


def test_zarr_wraps_a_plain_mapping_but_not_a_sync_store() -> None:
    # The control: the same check that keeps a SyncStore unwrapped does wrap a dict.
    assert isinstance(zarr._storage.store.BaseStore._ensure_store({}), zarr.storage.KVStore)


@pytest.mark.parametrize("backend", ["memory", "mapping"])
def test_one_batch_call_per_array_operation(backend: str) -> None:
    inner = aiostore.MemoryStore() if backend == "memory" else aiostore.MappingStore({})
    batches: list[list[str]] = []
    get_blocking = inner._get_blocking

    def counting_get_blocking(requests: Any) -> list[bytes | None]:
        batches.append([key for key, _ in requests])
        return get_blocking(requests)

    inner._get_blocking = counting_get_blocking  # type: ignore[method-assign]
    store = CountingStore(inner)
    z = zarr.zeros((40, 40), chunks=(10, 10), dtype="u2", store=store)
    data = np.arange(1600, dtype="u2").reshape(40, 40)

    store.reset()
    z[...] = data
    assert store.count("setitems") == 1
    assert len(store.calls[-1][1]) == 16  # all 16 chunks in that one call
    assert store.count("__setitem__") == 0

    store.reset()
    batches.clear()
    assert (z[...] == data).all()
    assert store.count("getitems") == 1
    assert len(store.calls[-1][1]) == 16
    assert store.count("__getitem__") == 0
    assert len(batches) == 1  # and the backend saw one batch, not 16 gets

    # A region spanning 4 chunks: one getitems with exactly those chunks.
    store.reset()
    assert (z[5:15, 25:35] == data[5:15, 25:35]).all()
    assert store.calls == [("getitems", ("0.2", "0.3", "1.2", "1.3"))]

    # A region write aligned to chunks: one setitems, nothing read.
    store.reset()
    z[10:30, 10:30] = 7
    assert [name for name, _ in store.calls] == ["setitems"]
    assert sorted(store.calls[0][1]) == ["1.1", "1.2", "2.1", "2.2"]


def test_empty_chunks_are_deleted_in_one_batch() -> None:
    store = CountingStore()
    z = zarr.zeros((20,), chunks=(5,), dtype="i4", store=store, write_empty_chunks=False)
    z[...] = 1
    store.reset()
    z[...] = 0  # every chunk now equals the fill value: zarr deletes them
    assert store.count("delitems") == 1
    assert store.count("__delitem__") == 0
    assert [k for k in store if not k.startswith(".")] == []


def test_hierarchy_functions_call_the_stores_own_methods() -> None:
    store = CountingStore()
    root = zarr.group(store=store)
    bar = root.create_group("foo").zeros("bar", shape=(10, 10), chunks=(5, 5))
    bar[...] = 42
    store.reset()
    assert zarr.storage.listdir(store, "foo") == [".zgroup", "bar"]
    assert zarr.storage.getsize(store, "foo/bar") == store.getsize("foo/bar") > 0
    zarr.storage.rename(store, "foo", "baz")
    zarr.storage.rmdir(store, "baz/bar")
    assert [name for name, _ in store.calls] == ["listdir", "getsize", "getsize", "rename", "rmdir"]
    assert zarr.open(store, mode="r")["baz"].attrs.asdict() == {}
    assert sorted(store) == [".zgroup", "baz/.zgroup"]


@pytest.mark.parametrize("zarr_first", [False, True], ids=["aiostore-imported-first", "zarr-imported-first"])
def test_registration_does_not_depend_on_import_order(zarr_first: bool) -> None:
    # A fresh interpreter, so the import order really is the one under test.
    imports = "import zarr\nimport aiostore.sync" if zarr_first else "import aiostore.sync"
    script = textwrap.dedent(
        """
        import sys
        finders = list(sys.meta_path)
        {imports}
        store = aiostore.sync.MemoryStore()
        import zarr
        z = zarr.zeros((4, 4), chunks=(2, 2), store=store)
        z[...] = 5
        assert z.store is store, type(z.store)
        assert zarr.open(store, mode="r")[...].sum() == 80
        assert sys.meta_path == finders, sys.meta_path  # no import hook, ever
        print("native")
        """
    ).format(imports=imports)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "native"
