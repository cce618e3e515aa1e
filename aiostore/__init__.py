"""aiostore: zarr's storage layer, async-first.

Every store is an async key-value store with concurrent batch operations;
:mod:`aiostore.sync` gives zarr 2 the ``MutableMapping`` it expects.

>>> import anyio, aiostore
>>> async def main():
...     async with aiostore.MemoryStore() as store:
...         await store.set_many({"a": b"1", "b": b"2"})
...         return await store.get_many(["a", "b", "c"])
>>> anyio.run(main)
{'a': b'1', 'b': b'2'}
"""

from .abc import Store
from .errors import BatchWriteError, ClosedStoreError, ReadOnlyError
from .mapping import MappingStore, as_store
from .memory import DictStore, MemoryStore

__all__ = [
    "Store",
    "ReadOnlyError",
    "ClosedStoreError",
    "BatchWriteError",
    "MemoryStore",
    "DictStore",
    "MappingStore",
    "as_store",
]

__version__ = "0.1.0"
