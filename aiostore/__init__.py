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
from .cache import LRUStoreCache
from .dbm import DBMStore
from .directory import DirectoryStore, NestedDirectoryStore, TempStore
from .errors import BatchWriteError, ClosedStoreError, ReadOnlyError
from .hierarchy import (
    ContainsArrayError,
    ContainsGroupError,
    contains_array,
    contains_group,
    getsize,
    init_array,
    init_group,
    listdir,
    migrate_1to2,
    rename,
    rmdir,
)
from .lmdb import LMDBStore
from .mapping import MappingStore, as_store
from .memory import DictStore, MemoryStore
from .zip import ZipStore

__all__ = [
    "Store",
    "ReadOnlyError",
    "ClosedStoreError",
    "BatchWriteError",
    "MemoryStore",
    "DictStore",
    "MappingStore",
    "as_store",
    "ZipStore",
    "DBMStore",
    "LMDBStore",
    "DirectoryStore",
    "NestedDirectoryStore",
    "TempStore",
    "LRUStoreCache",
    "init_array",
    "init_group",
    "contains_array",
    "contains_group",
    "listdir",
    "rmdir",
    "getsize",
    "rename",
    "migrate_1to2",
    "ContainsArrayError",
    "ContainsGroupError",
]

__version__ = "0.1.0"
