"""The sync twins: a blocking class of the same name and parameters for every store.

Each twin's ``__init__`` repeats its async class's parameters -- the contract
of this module, checked by the tests -- and wraps a new async store in a
:class:`~aiostore.sync.SyncStore`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import MutableMapping
from typing import Any

from aiostore.stores import dbm as _dbm
from aiostore.stores import directory as _directory
from aiostore.stores import lmdb as _lmdb
from aiostore.stores import mapping as _mapping
from aiostore.stores import memory as _memory
from aiostore.stores import nested as _nested
from aiostore.stores import objectstore as _objectstore
from aiostore.stores import temp as _temp
from aiostore.stores import zip as _zip
from aiostore.stores.cache import store as _cache
from aiostore.stores.dbm import DBMOpen
from aiostore.stores.zip import ZipMode
from aiostore.sync._store import SyncStore

__all__ = [
    "DBMStore",
    "DictStore",
    "DirectoryStore",
    "LMDBStore",
    "LRUStoreCache",
    "MappingStore",
    "MemoryStore",
    "NestedDirectoryStore",
    "ObjectStore",
    "TempStore",
    "as_twin",
    "ZipStore",
]


class MemoryStore(SyncStore[_memory.MemoryStore]):
    """Sync twin of :class:`aiostore.MemoryStore` (same parameters).

    >>> store = MemoryStore()
    >>> store["foo/bar"] = b"baz"
    >>> store.root
    {'foo': {'bar': b'baz'}}
    """

    def __init__(
        self,
        root: MutableMapping[str, Any] | None = None,
        cls: type[MutableMapping[str, Any]] = dict,
        dimension_separator: str | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(_memory.MemoryStore(root, cls, dimension_separator, read_only=read_only))


DictStore = MemoryStore


class MappingStore(SyncStore[_mapping.MappingStore]):
    """Sync twin of :class:`aiostore.MappingStore`: any mapping as a zarr 2 store.

    >>> store = MappingStore({})
    >>> store["a"] = bytearray(b"x")
    >>> store.mapping
    {'a': b'x'}
    """

    def __init__(
        self,
        mapping: MutableMapping[str, Any],
        *,
        read_only: bool = False,
        dimension_separator: str | None = None,
    ) -> None:
        super().__init__(
            _mapping.MappingStore(mapping, read_only=read_only, dimension_separator=dimension_separator)
        )


class ZipStore(SyncStore[_zip.ZipStore]):
    """Sync twin of :class:`aiostore.ZipStore`: every key an entry of one Zip file.

    Call :meth:`close` (or use ``with``) after writing: it writes the central
    directory, without which the file is not a Zip file.

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with ZipStore(os.path.join(tmp.name, "array.zip"), mode="w") as store:
    ...     store["a/0.0"] = b"xyz"
    ...     print(store["a/0.0"], store.listdir("a"), store.getsize("a"))
    b'xyz' ['0.0'] 3
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        compression: int = zipfile.ZIP_STORED,
        allowZip64: bool = True,
        mode: ZipMode = "a",
        dimension_separator: str | None = None,
    ) -> None:
        super().__init__(_zip.ZipStore(path, compression, allowZip64, mode, dimension_separator))


class DBMStore(SyncStore[_dbm.DBMStore]):
    """Sync twin of :class:`aiostore.DBMStore`: a DBM-style database file.

    Call :meth:`close` (or use ``with``) after writing: some implementations
    (``dbm.dumb``) write their index only then.

    >>> import dbm.dumb, os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with DBMStore(os.path.join(tmp.name, "array.db"), open=dbm.dumb.open) as store:
    ...     store["a/0.0"] = b"xyz"
    ...     print(store["a/0.0"], store.listdir("a"), store.getsize("a"))
    b'xyz' ['0.0'] 3
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        flag: str = "c",
        mode: int = 0o666,
        open: DBMOpen | None = None,
        write_lock: bool = True,
        *,
        dimension_separator: str | None = None,
        **open_kwargs: Any,
    ) -> None:
        super().__init__(
            _dbm.DBMStore(
                path, flag, mode, open, write_lock, dimension_separator=dimension_separator, **open_kwargs
            )
        )


class LMDBStore(SyncStore[_lmdb.LMDBStore]):
    """Sync twin of :class:`aiostore.LMDBStore`: an LMDB database.

    Values are read-only memoryviews into the map (``buffers=True``, the
    default; ``buffers=False`` for ``bytes``):

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with LMDBStore(os.path.join(tmp.name, "array.mdb")) as store:
    ...     store.setitems({"a/0.0": b"xyz", "a/0.1": b"w"})
    ...     found = store.getitems(["a/0.0", "a/9.9"], contexts={})
    ...     print({k: bytes(v) for k, v in found.items()}, store.listdir("a"))
    ...     print(type(found["a/0.0"]).__name__, found["a/0.0"].readonly)
    ...     del found  # a buffer holds its read snapshot until it is released
    {'a/0.0': b'xyz'} ['0.0', '0.1']
    memoryview True
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        buffers: bool = True,
        *,
        read_only: bool = False,
        dimension_separator: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _lmdb.LMDBStore(
                path, buffers, read_only=read_only, dimension_separator=dimension_separator, **kwargs
            )
        )


class DirectoryStore(SyncStore[_directory.DirectoryStore]):
    """Sync twin of :class:`aiostore.DirectoryStore` (same parameters).

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = DirectoryStore(tmp.name)
    >>> store["foo/bar"] = b"baz"
    >>> os.listdir(os.path.join(store.path, "foo"))
    ['bar']
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        normalize_keys: bool = False,
        dimension_separator: str | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(
            _directory.DirectoryStore(path, normalize_keys, dimension_separator, read_only=read_only)
        )


class NestedDirectoryStore(SyncStore[_nested.NestedDirectoryStore]):
    """Sync twin of :class:`aiostore.NestedDirectoryStore` (same parameters).

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = NestedDirectoryStore(tmp.name)
    >>> store["0/0"] = b"chunk"
    >>> store._dimension_separator, os.listdir(os.path.join(tmp.name, "0"))
    ('/', ['0'])
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        normalize_keys: bool = False,
        dimension_separator: str | None = "/",
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(
            _nested.NestedDirectoryStore(path, normalize_keys, dimension_separator, read_only=read_only)
        )


class TempStore(SyncStore[_temp.TempStore]):
    """Sync twin of :class:`aiostore.TempStore`: a directory store removed on close.

    >>> import os
    >>> with TempStore() as store:
    ...     store["foo"] = b"bar"
    ...     print(os.listdir(store.path))
    ['foo']
    >>> os.path.exists(store.path)
    False
    """

    def __init__(
        self,
        suffix: str = "",
        prefix: str = "zarr",
        dir: str | os.PathLike[str] | None = None,
        normalize_keys: bool = False,
        dimension_separator: str | None = None,
    ) -> None:
        super().__init__(_temp.TempStore(suffix, prefix, dir, normalize_keys, dimension_separator))


class LRUStoreCache(SyncStore[_cache.LRUStoreCache]):
    """Sync twin of :class:`aiostore.LRUStoreCache`: zarr 2's ``LRUStoreCache``.

    Takes any store or ``MutableMapping``. Hits are served in the caller's
    thread; ``hits``, ``misses``, ``invalidate()``, ``invalidate_values()``,
    ``invalidate_keys()`` and ``prefetch(keys)`` are the wrapped cache's.

    >>> cache = LRUStoreCache(dict(), max_size=2**20)
    >>> cache["a"] = b"1"
    >>> cache["a"], cache.hits, cache.misses
    (b'1', 1, 0)
    """

    def __init__(
        self,
        store: object,
        max_size: int | None,
        *,
        prefetch_concurrency: int = 4,
        prefetch_batch_size: int = 64,
    ) -> None:
        super().__init__(
            _cache.LRUStoreCache(
                store,
                max_size,
                prefetch_concurrency=prefetch_concurrency,
                prefetch_batch_size=prefetch_batch_size,
            )
        )


class ObjectStore(SyncStore[_objectstore.ObjectStore]):
    """Sync twin of :class:`aiostore.ObjectStore` (same parameters): object storage for zarr 2.

    Its calls run the async store's on aiostore's background event loop, so a
    ``getitems`` of many keys is that many concurrent requests.

    >>> store = ObjectStore("memory:///")
    >>> store.setitems({"a/0": b"x", "a/1": b"y"})
    >>> store.getitems(["a/0", "a/1", "b"], contexts={}), store.listdir("a")
    ({'a/0': b'x', 'a/1': b'y'}, ['0', '1'])
    """

    def __init__(
        self,
        store: Any,
        *,
        read_only: bool = False,
        dimension_separator: str | None = None,
        allow_http: bool | None = None,
        timeout: str | None = None,
        connect_timeout: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            _objectstore.ObjectStore(
                store,
                read_only=read_only,
                dimension_separator=dimension_separator,
                allow_http=allow_http,
                timeout=timeout,
                connect_timeout=connect_timeout,
                **options,
            )
        )


_TWINS: dict[type, type[SyncStore[Any]]] = {
    _memory.MemoryStore: MemoryStore,
    _mapping.MappingStore: MappingStore,
    _zip.ZipStore: ZipStore,
    _dbm.DBMStore: DBMStore,
    _lmdb.LMDBStore: LMDBStore,
    _directory.DirectoryStore: DirectoryStore,
    _nested.NestedDirectoryStore: NestedDirectoryStore,
    _temp.TempStore: TempStore,
    _cache.LRUStoreCache: LRUStoreCache,
    _objectstore.ObjectStore: ObjectStore,
}


def as_twin(store: Any) -> SyncStore[Any]:
    """The sync twin of an async store (a :class:`SyncStore` for a class with none).

    >>> import aiostore
    >>> as_twin(aiostore.MemoryStore())
    MemoryStore(MemoryStore())
    """
    cls = _TWINS.get(type(store), SyncStore)
    twin = cls.__new__(cls)
    SyncStore.__init__(twin, store)
    return twin
