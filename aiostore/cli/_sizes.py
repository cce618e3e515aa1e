"""Stored bytes under a path, as ``aiostore du`` and ``aiostore info`` count them.

Keys are streamed, never held all at once: each key counts toward its parent
directory and its child of ``path``, and each parent is then sized with one
``getsize`` (zarr 2's: the values directly in a directory, in one call).

>>> import anyio
>>> from aiostore import MemoryStore
>>> async def main():
...     store = MemoryStore()
...     await store.set_many({"a/.zarray": b"{}", "a/0": b"12345", "a/b/0": b"123", "c": b"1"})
...     return await disk_usage(store, "")
>>> usage = anyio.run(main)
>>> usage.total, usage.keys, usage.children
(11, 4, {'a': Usage(total=10, keys=3, children={})})
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from aiostore.abc import Store

__all__ = ["Usage", "disk_usage"]

_CONCURRENT_SIZES = 8


@dataclass
class Usage:
    """Stored bytes and keys under a path, and of each of its subdirectories."""

    total: int = 0
    keys: int = 0
    children: dict[str, Usage] = field(default_factory=dict)


async def disk_usage(store: Store, path: str) -> Usage:
    """Bytes and keys under ``path`` (recursive), with a :class:`Usage` per child directory."""
    if path and await store.contains(path):
        return Usage(await store.getsize(path), 1)
    prefix = f"{path}/" if path else ""
    parents: dict[str, int] = {}
    usage = Usage()
    async for key in store.list(prefix):
        parent = key.rpartition("/")[0]
        parents[parent] = parents.get(parent, 0) + 1
        usage.keys += 1
        child, slash, _ = key[len(prefix) :].partition("/")
        if slash:
            usage.children.setdefault(child, Usage()).keys += 1
    # a parent that also holds a value (possible in flat backends) has its children sized one by one
    named = [p for p in parents if p and p != path]
    is_value = dict(zip(named, await store.contains_many(named), strict=True)) if named else {}
    limiter = anyio.CapacityLimiter(_CONCURRENT_SIZES)

    async def add(parent: str) -> None:
        async with limiter:
            if is_value.get(parent):
                size = 0
                async for key in store.list(f"{parent}/"):
                    if "/" not in key[len(parent) + 1 :]:
                        size += await store.getsize(key)
            else:
                size = await store.getsize(parent)
        usage.total += size
        child = parent[len(prefix) :].partition("/")[0]
        if parent != path:
            usage.children[child].total += size

    async with anyio.create_task_group() as group:
        for parent in parents:
            group.start_soon(add, parent)
    return usage
