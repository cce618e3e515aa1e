"""The sync side: ``MutableMapping`` stores for zarr 2 and blocking code.

:class:`SyncStore` wraps any aiostore store. For blocking backends (and the
memory store) it drives the store's coroutines in the caller's thread with no
event loop and no thread hop (:func:`aiostore._inline.run_inline`); only
natively async stores go through the background loop in :mod:`aiostore._runtime.portal`.

Every store class has a sync twin here with the same name and parameters::

    from aiostore.sync import DirectoryStore
    store = DirectoryStore("data/array.zarr")      # a MutableMapping
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)

zarr 2 treats a :class:`SyncStore` as one of its own stores (it is registered
as a virtual subclass of ``zarr._storage.store.BaseStore`` when zarr 2 is
imported), so it calls the batch methods ``getitems``/``setitems``/``delitems``
and ``listdir``/``rmdir``/``getsize`` directly.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, MutableMapping, Sequence
from types import ModuleType, TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from aiostore._inline import run_inline
from aiostore._runtime.portal import run_on_portal
from aiostore._zarr2meta import hierarchy as _hierarchy
from aiostore.abc import Store
from aiostore.stores import dbm as _dbm
from aiostore.stores import directory as _directory
from aiostore.stores import lmdb as _lmdb
from aiostore.stores import memory as _memory
from aiostore.stores import zip as _zip
from aiostore.stores.cache import store as _cache
from aiostore.stores.mapping import MappingStore as _AsyncMappingStore
from aiostore.stores.mapping import as_store

__all__ = [
    "SyncStore",
    "as_sync_store",
    "run_sync",
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

T = TypeVar("T")
P = ParamSpec("P")


def run_sync(stores: Store | Sequence[Store | None], coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``, which uses ``stores``, to completion from sync code.

    Inline (no event loop) when every store can run so, else on the portal.

    >>> from aiostore import MemoryStore
    >>> store = MemoryStore()
    >>> run_sync(store, store.set("k", b"v")); run_sync(store, store.get("k"))
    b'v'
    """
    group = [stores] if isinstance(stores, Store) else [s for s in stores if s is not None]
    if all(s._sync_inline for s in group):
        return run_inline(coro)
    return run_on_portal(coro)


class SyncStore(MutableMapping[str, bytes]):
    """A blocking ``MutableMapping`` view of an aiostore store, for zarr 2.

    Parameters
    ----------
    store : aiostore.abc.Store
        The async store to wrap.

    Examples
    --------
    >>> from aiostore import MemoryStore
    >>> store = SyncStore(MemoryStore())
    >>> store["a/b"] = b"xyz"
    >>> store.getitems(["a/b", "missing"], contexts={})
    {'a/b': b'xyz'}
    >>> store.listdir("a"), store.getsize("a/b"), len(store)
    (['b'], 3, 1)
    """

    _store_version = 2

    def __init__(self, store: Store) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"SyncStore wraps an aiostore store, not {type(store).__name__}")
        self._set_store(store)

    def _set_store(self, store: Store) -> None:
        self._async_store = store
        self._inline = store._sync_inline

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._inline:
            return run_inline(coro)
        return run_on_portal(coro)

    @property
    def async_store(self) -> Store:
        """The wrapped async store."""
        return self._async_store

    @property
    def _dimension_separator(self) -> str | None:
        return self._async_store.dimension_separator

    @property
    def _metadata_class(self) -> Any:
        # Only zarr 2 asks for this, so zarr 2 is importable when it does.
        from zarr.meta import Metadata2  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return Metadata2

    @property
    def read_only(self) -> bool:
        """True if the store refuses writes."""
        return self._async_store.read_only

    # -- MutableMapping -----------------------------------------------------
    def __getitem__(self, key: str) -> bytes:
        return self._run(self._async_store.get(key))

    def __setitem__(self, key: str, value: Any) -> None:
        self._run(self._async_store.set(key, value))

    def __delitem__(self, key: str) -> None:
        self._run(self._async_store.delete(key))

    def __contains__(self, key: object) -> bool:
        return self._run(self._async_store.contains(key))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._run(_collect(self._async_store.list())))

    def __len__(self) -> int:
        return self._run(_count(self._async_store.list()))

    def clear(self) -> None:
        """Remove every key."""
        self._run(self._async_store.clear())

    # -- zarr 2 store API -----------------------------------------------------
    def getitems(self, keys: Iterable[str], *, contexts: Any = None) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys present (zarr 2's batch read).

        The result is keyed by the keys as given (zarr 2 looks its chunk keys
        up in it), not by the normalized keys ``get_many`` answers with.
        """
        requested = keys if isinstance(keys, list) else list(keys)
        found = self._run(self._async_store.get_many(requested))
        if len(found) == len(requested) and all(map(found.__contains__, requested)):
            return found  # every key was already normal (zarr's own keys, as a rule)
        answer: dict[str, bytes] = {}
        for key in requested:
            value = found.get(key)
            if value is None:
                value = found.get(self._async_store._key(key))
            if value is not None:
                answer[key] = value
        return answer

    def setitems(self, values: Mapping[str, Any]) -> None:
        """Store many values in one batch (zarr 2's batch write)."""
        self._run(self._async_store.set_many(values))

    def delitems(self, keys: Iterable[str]) -> None:
        """Remove many keys in one batch; missing keys are ignored."""
        self._run(self._async_store.delete_many(keys))

    def listdir(self, path: str | None = None) -> list[str]:
        """Sorted names of the children of ``path``."""
        return self._run(self._async_store.listdir(path))

    def rmdir(self, path: str | None = None) -> None:
        """Remove ``path`` and everything below it."""
        self._run(self._async_store.rmdir(path))

    def rename(self, src_path: str, dst_path: str) -> None:
        """Move ``src_path`` and everything below it to ``dst_path``."""
        self._run(self._async_store.rename(src_path, dst_path))

    def getsize(self, path: str | None = None) -> int:
        """A key's size, or the summed sizes of a path's immediate children."""
        return self._run(self._async_store.getsize(path))

    def flush(self) -> None:
        """Make the writes so far durable."""
        self._run(self._async_store.flush())

    def close(self) -> None:
        """Flush and close the store."""
        self._run(self._async_store.aclose())

    def is_readable(self) -> bool:
        return True

    def is_writeable(self) -> bool:
        return not self._async_store.read_only

    def is_listable(self) -> bool:
        return self._async_store.supports_listing

    def is_erasable(self) -> bool:
        return self._async_store.supports_deletes and not self._async_store.read_only

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- identity and pickling --------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, SyncStore) and self._async_store == other._async_store

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self._async_store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._set_store(state["store"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._async_store!r})"

    def __getattr__(self, name: str) -> Any:
        # Store-specific attributes (``path``, ``root``, ``mapping`` ...) of the
        # wrapped store; never private ones, so zarr's feature probes stay honest.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.__dict__["_async_store"], name)


async def _collect(agen: Any) -> list[str]:
    return [key async for key in agen]


async def _count(agen: Any) -> int:
    n = 0
    async for _ in agen:
        n += 1
    return n


def as_sync_store(obj: object) -> SyncStore:
    """A :class:`SyncStore` for an aiostore store, a sync store or any mapping.

    >>> as_sync_store({"a": b"1"})["a"]
    b'1'
    """
    if isinstance(obj, SyncStore):
        return obj
    return SyncStore(as_store(obj))


def _twin(async_cls: Callable[P, Store]) -> Callable[Concatenate[SyncStore, P], None]:
    """Make the ``__init__`` of a sync twin: same parameters as ``async_cls``."""

    def __init__(self: SyncStore, /, *args: P.args, **kwargs: P.kwargs) -> None:
        SyncStore.__init__(self, async_cls(*args, **kwargs))

    params = list(inspect.signature(async_cls).parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param, *params])  # type: ignore[attr-defined]
    return __init__


# -- sync twins of every store class --------------------------------------------


class MemoryStore(SyncStore):
    """Sync twin of :class:`aiostore.MemoryStore` (same parameters).

    >>> store = MemoryStore()
    >>> store["foo/bar"] = b"baz"
    >>> store.root
    {'foo': {'bar': b'baz'}}
    """

    __init__ = _twin(_memory.MemoryStore)


DictStore = MemoryStore


class MappingStore(SyncStore):
    """Sync twin of :class:`aiostore.MappingStore`: any mapping as a zarr 2 store.

    >>> store = MappingStore({})
    >>> store["a"] = bytearray(b"x")
    >>> store.mapping
    {'a': b'x'}
    """

    __init__ = _twin(_AsyncMappingStore)


class ZipStore(SyncStore):
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

    __init__ = _twin(_zip.ZipStore)


class DBMStore(SyncStore):
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

    __init__ = _twin(_dbm.DBMStore)


class LMDBStore(SyncStore):
    """Sync twin of :class:`aiostore.LMDBStore`: an LMDB database.

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with LMDBStore(os.path.join(tmp.name, "array.mdb")) as store:
    ...     store.setitems({"a/0.0": b"xyz", "a/0.1": b"w"})
    ...     print(store.getitems(["a/0.0", "a/9.9"], contexts={}), store.listdir("a"))
    {'a/0.0': b'xyz'} ['0.0', '0.1']
    >>> tmp.cleanup()
    """

    __init__ = _twin(_lmdb.LMDBStore)


class DirectoryStore(SyncStore):
    """Sync twin of :class:`aiostore.DirectoryStore` (same parameters).

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = DirectoryStore(tmp.name)
    >>> store["foo/bar"] = b"baz"
    >>> os.listdir(os.path.join(store.path, "foo"))
    ['bar']
    >>> tmp.cleanup()
    """

    __init__ = _twin(_directory.DirectoryStore)


class NestedDirectoryStore(SyncStore):
    """Sync twin of :class:`aiostore.NestedDirectoryStore` (same parameters).

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = NestedDirectoryStore(tmp.name)
    >>> store["0/0"] = b"chunk"
    >>> store._dimension_separator, os.listdir(os.path.join(tmp.name, "0"))
    ('/', ['0'])
    >>> tmp.cleanup()
    """

    __init__ = _twin(_directory.NestedDirectoryStore)


class TempStore(SyncStore):
    """Sync twin of :class:`aiostore.TempStore`: a directory store removed on close.

    >>> import os
    >>> with TempStore() as store:
    ...     store["foo"] = b"bar"
    ...     print(os.listdir(store.path))
    ['foo']
    >>> os.path.exists(store.path)
    False
    """

    __init__ = _twin(_directory.TempStore)


class LRUStoreCache(SyncStore):
    """Sync twin of :class:`aiostore.LRUStoreCache`: zarr 2's ``LRUStoreCache``.

    Takes any store or ``MutableMapping``. Over a blocking or in-memory store it
    runs inline in the caller's thread; ``hits``, ``misses``, ``invalidate()``,
    ``invalidate_values()``, ``invalidate_keys()`` and ``prefetch(keys)`` are the
    wrapped cache's.

    >>> cache = LRUStoreCache(dict(), max_size=2**20)
    >>> cache["a"] = b"1"
    >>> cache["a"], cache.hits, cache.misses
    (b'1', 1, 0)
    """

    __init__ = _twin(_cache.LRUStoreCache)


# -- sync twins of the hierarchy functions (aiostore._zarr2meta.hierarchy) ------------------


def _hierarchy_twin(fn: Callable[P, Coroutine[Any, Any, T]], doc: str) -> Callable[P, T]:
    """A blocking twin of a coroutine function of :mod:`aiostore._zarr2meta.hierarchy`.

    Its ``store`` and ``chunk_store`` may be a :class:`SyncStore`, an aiostore
    store or any ``MutableMapping`` (a plain ``dict`` is wrapped, not copied, so
    writes land in it); the same coroutine then runs through :func:`run_sync`.
    """
    signature = inspect.signature(fn)
    store_params = [name for name in ("store", "chunk_store") if name in signature.parameters]

    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        bound = signature.bind(*args, **kwargs)
        stores: list[Store] = []
        for name in store_params:
            if bound.arguments.get(name) is not None:
                bound.arguments[name] = store = as_store(bound.arguments[name])
                stores.append(store)
        return run_sync(stores, fn(*bound.args, **bound.kwargs))

    twin.__name__ = twin.__qualname__ = fn.__name__
    twin.__doc__ = doc
    twin.__wrapped__ = fn  # type: ignore[attr-defined]  # inspect.signature shows fn's parameters
    return twin


init_array = _hierarchy_twin(
    _hierarchy.init_array,
    """Initialize an array in ``store``: blocking twin of :func:`aiostore.init_array`.

    ``store`` and ``chunk_store`` may be any ``MutableMapping`` (a plain
    ``dict`` too), a :class:`SyncStore` or an aiostore store.

    Examples
    --------
    >>> store = dict()
    >>> init_array(store, shape=(10000, 10000), chunks=(1000, 1000))
    >>> sorted(store.keys())
    ['.zarray']
    >>> print(store['.zarray'].decode())
    {
        "chunks": [
            1000,
            1000
        ],
        "compressor": {
            "blocksize": 0,
            "clevel": 5,
            "cname": "lz4",
            "id": "blosc",
            "shuffle": 1
        },
        "dtype": "<f8",
        "fill_value": null,
        "filters": null,
        "order": "C",
        "shape": [
            10000,
            10000
        ],
        "zarr_format": 2
    }
    >>> store = dict()
    >>> init_array(store, shape=100000000, chunks=1000000, dtype='i1', path='foo')
    >>> sorted(store.keys())
    ['.zgroup', 'foo/.zarray']
    """,
)
init_group = _hierarchy_twin(
    _hierarchy.init_group,
    """Initialize a group: blocking twin of :func:`aiostore.init_group`.

    >>> store = {}
    >>> init_group(store, path="a/b")
    >>> sorted(store)
    ['.zgroup', 'a/.zgroup', 'a/b/.zgroup']
    """,
)
contains_array = _hierarchy_twin(
    _hierarchy.contains_array,
    """True if there is an array at ``path``: twin of :func:`aiostore.contains_array`.

    >>> contains_array({"a/.zarray": b"{}"}, "a"), contains_array({}, "a")
    (True, False)
    """,
)
contains_group = _hierarchy_twin(
    _hierarchy.contains_group,
    """True if there is a group at ``path``: twin of :func:`aiostore.contains_group`.

    >>> contains_group({".zgroup": b"{}"})
    True
    """,
)
listdir = _hierarchy_twin(
    _hierarchy.listdir,
    """The sorted children of ``path``: twin of :func:`aiostore.listdir`.

    >>> listdir({"a/b": b"1", "a/c/d": b"2"}, "a")
    ['b', 'c']
    """,
)
rmdir = _hierarchy_twin(
    _hierarchy.rmdir,
    """Remove everything below ``path``: twin of :func:`aiostore.rmdir`.

    >>> store = {"a/b": b"1", "c": b"2"}
    >>> rmdir(store, "a"); store
    {'c': b'2'}
    """,
)
getsize = _hierarchy_twin(
    _hierarchy.getsize,
    """Size of the values at or directly below ``path``: twin of :func:`aiostore.getsize`.

    >>> getsize({"a/b": b"123", "a/c": b"45"}, "a")
    5
    """,
)
rename = _hierarchy_twin(
    _hierarchy.rename,
    """Move ``src_path`` and all below it to ``dst_path``: twin of :func:`aiostore.rename`.

    >>> store = {"a/b": b"1"}
    >>> rename(store, "a", "x"); store
    {'x/b': b'1'}
    """,
)
migrate_1to2 = _hierarchy_twin(
    _hierarchy.migrate_1to2,
    """Convert a zarr version-1 array to version 2: twin of :func:`aiostore.migrate_1to2`.

    >>> store = {"attrs": b"{}", "meta": b'{"zarr_format": 1, "shape": [4], "chunks": [2], '
    ...          b'"dtype": "<i4", "compression": "zlib", "compression_opts": 1, '
    ...          b'"fill_value": 0, "order": "C"}'}
    >>> migrate_1to2(store); sorted(store)
    ['.zarray', '.zattrs']
    """,
)


# -- zarr 2 integration -----------------------------------------------------------

_ZARR2_STORE_MODULE = "zarr._storage.store"


def _register_with(module: ModuleType) -> None:
    base = getattr(module, "BaseStore", None)
    if base is not None and not issubclass(SyncStore, base):
        base.register(SyncStore)


class _Zarr2Hook(importlib.abc.MetaPathFinder):
    """Registers :class:`SyncStore` with zarr 2 the moment zarr 2 is imported."""

    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ZARR2_STORE_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            _register_with(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _ZARR2_STORE_MODULE in sys.modules:
    _register_with(sys.modules[_ZARR2_STORE_MODULE])
elif not any(isinstance(f, _Zarr2Hook) for f in sys.meta_path):
    sys.meta_path.insert(0, _Zarr2Hook())
