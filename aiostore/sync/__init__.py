"""The sync side: blocking ``MutableMapping`` stores for zarr 2 and blocking code.

Every store class has a sync twin here with the same name and parameters::

    from aiostore.sync import DirectoryStore
    store = DirectoryStore("data/array.zarr")      # a MutableMapping
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)

A twin is a :class:`SyncStore` over a new async store: each of its methods
calls that store's ``*_sync`` method of the same operation -- for a blocking
backend, its blocking code in the caller's thread, with no event loop and no
thread hop; for a natively async store, its async method on aiostore's
background event loop. zarr 2 treats a :class:`SyncStore` as one of its own
stores (see :mod:`aiostore.sync._zarr2`), so it calls the batch methods
``getitems``/``setitems``/``delitems`` and ``listdir``/``rmdir``/``getsize``.
"""

from aiostore.sync._hierarchy import (
    contains_array,
    contains_group,
    copy_store,
    getsize,
    init_array,
    init_group,
    listdir,
    migrate_1to2,
    rename,
    rmdir,
)
from aiostore.sync._open import open_store
from aiostore.sync._store import SyncStore, as_sync_store
from aiostore.sync._twins import (
    DBMStore,
    DictStore,
    DirectoryStore,
    LMDBStore,
    LRUStoreCache,
    MappingStore,
    MemoryStore,
    NestedDirectoryStore,
    ObjectStore,
    TempStore,
    ZipStore,
)

__all__ = [
    "SyncStore",
    "as_sync_store",
    "MemoryStore",
    "DictStore",
    "MappingStore",
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
    "init_array",
    "init_group",
    "contains_array",
    "contains_group",
    "listdir",
    "rmdir",
    "getsize",
    "rename",
    "migrate_1to2",
]
