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

from aiostore._runtime.offload import set_thread_limit
from aiostore._zarr2meta.hierarchy import (
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
from aiostore.abc import Store
from aiostore.copying import CopyProgress, copy_store
from aiostore.errors import (
    BackendError,
    BadCompressorError,
    BatchWriteError,
    ClosedStoreError,
    ContainsArrayError,
    ContainsGroupError,
    CopyError,
    KeyConflictError,
    MetadataError,
    ReadOnlyError,
    SettingsConflictError,
    StoreError,
    StoreLockedError,
)
from aiostore.stores.cache import LRUStoreCache
from aiostore.stores.dbm import DBMStore
from aiostore.stores.directory import DirectoryStore
from aiostore.stores.lmdb import LMDBStore
from aiostore.stores.mapping import MappingStore, as_store
from aiostore.stores.memory import DictStore, MemoryStore
from aiostore.stores.nested import NestedDirectoryStore
from aiostore.stores.objectstore import ObjectStore
from aiostore.stores.temp import TempStore
from aiostore.stores.urls import open_store
from aiostore.stores.zip import ZipStore

__all__ = [
    "Store",
    "StoreError",
    "ReadOnlyError",
    "KeyConflictError",
    "BackendError",
    "SettingsConflictError",
    "StoreLockedError",
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
    "ObjectStore",
    "open_store",
    "copy_store",
    "CopyProgress",
    "CopyError",
    "set_disk_thread_limit",
    "set_request_limit",
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
    "MetadataError",
    "BadCompressorError",
]

__version__ = "0.1.0"


def set_request_limit(requests: int) -> None:
    """Bound the network work in flight, process-wide: requests an object store
    awaits at once under asyncio, and worker threads doing network work (an object
    store under trio, a mapping over a remote file system). The default is 32.

    >>> set_request_limit(64); set_request_limit(32)
    """
    set_thread_limit("network", requests)


def set_disk_thread_limit(threads: int) -> None:
    """Bound the worker threads one batch of file, Zip, DBM or LMDB work may fan
    out to, process-wide, async and sync sides alike. A batch uses more than one
    thread only while its work waits on the disk (a cold page cache, a network
    file system, writes); the default is twice the cores, between 4 and 8.

    >>> set_disk_thread_limit(8); set_disk_thread_limit(4)
    """
    set_thread_limit("disk", threads)
