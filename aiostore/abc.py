"""The public extension protocol: what a backend author subclasses and calls.

Two base classes:

- :class:`Store`, for a natively async backend (one that awaits real async
  I/O): it writes five async hooks, ``_get``, ``_set``, ``_delete``,
  ``_contains`` and ``_list``. Its blocking ``*_sync`` methods run the async
  ones on aiostore's background event loop.
- :class:`BlockingStore`, for a backend whose work is blocking code (files,
  databases, mappings): it writes five blocking, batch-shaped hooks,
  ``_get_blocking``, ``_set_blocking``, ``_delete_blocking``,
  ``_contains_blocking`` and ``_list_blocking``. Its ``*_sync`` methods call them
  in the caller's thread; its async methods send them whole batches in worker
  threads.

Each class's docstring lists every hook it calls, the optional ones with
their fallbacks, and a runnable example. Every other name here is a plain
function that both sides use to check arguments, for backend authors who
write public methods of their own.

Examples
--------
>>> import anyio
>>> from aiostore import MemoryStore
>>> async def main():
...     async with MemoryStore() as store:
...         await store.set_many({"a/0": b"x", "a/1": b"yz", "b": b"w"})
...         print(await store.get_many(["a/0", "a/1", "missing"]))
...         print(await store.listdir("a"), await store.getsize("a"))
...         print(await store.get("a/1", byte_range=(-1, None)))
>>> anyio.run(main)
{'a/0': b'x', 'a/1': b'yz'}
['0', '1'] 3
b'z'
"""

from __future__ import annotations

from aiostore._protocol.blocking import BlockingStore
from aiostore._protocol.checks import (
    Buffer,
    BufferLike,
    ByteRange,
    Request,
    also_failed,
    as_buffer,
    check_byte_range,
    check_open,
    check_rename,
    check_writable,
    child_name,
    closing_scope,
    collect,
    slice_byte_range,
    split_conflicts,
)
from aiostore._protocol.each import delete_each, read_each, write_each
from aiostore._protocol.store import Store

__all__ = [
    "Store",
    "BlockingStore",
    "also_failed",
    "Buffer",
    "BufferLike",
    "ByteRange",
    "Request",
    "as_buffer",
    "check_byte_range",
    "check_open",
    "check_rename",
    "check_writable",
    "child_name",
    "closing_scope",
    "collect",
    "delete_each",
    "read_each",
    "write_each",
    "slice_byte_range",
    "split_conflicts",
]
