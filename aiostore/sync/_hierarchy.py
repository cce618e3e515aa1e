"""Blocking twins of the zarr v2 hierarchy functions (``init_array`` and friends).

Each runs the one async implementation (:func:`aiostore.init_array` ...) on
aiostore's background event loop: these are called once per array or group,
not per chunk, so a hop there costs nothing that matters.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from aiostore._runtime.portal import run_on_portal
from aiostore._zarr2meta import hierarchy as _hierarchy
from aiostore.copying import copy_store as _copy_store

__all__ = [
    "contains_array",
    "contains_group",
    "copy_store",
    "getsize",
    "init_array",
    "init_group",
    "listdir",
    "migrate_1to2",
    "rename",
    "rmdir",
]

T = TypeVar("T")
P = ParamSpec("P")


def _hierarchy_twin(fn: Callable[P, Coroutine[Any, Any, T]], doc: str) -> Callable[P, T]:
    """A blocking twin of a coroutine function of the zarr v2 hierarchy layer.

    It runs that same coroutine on aiostore's background event loop, so its
    ``store`` and ``chunk_store`` may be anything the coroutine takes: a
    :class:`~aiostore.sync.SyncStore`, an aiostore store or any
    ``MutableMapping`` (a plain ``dict`` is wrapped, not copied, so writes land in it).
    """

    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_on_portal(fn(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = fn.__name__
    twin.__module__ = "aiostore.sync"  # where users find it
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

copy_store = _hierarchy_twin(
    _copy_store,
    """Copy every key under ``source_path`` of ``source`` to ``dest``: blocking twin of
    :func:`aiostore.copy_store`, with the arguments and result of zarr 2's ``zarr.copy_store``.

    ``source`` and ``dest`` may be sync stores, aiostore stores, any ``MutableMapping``
    or store URLs. A ``progress`` callback runs in aiostore's background thread.

    Examples
    --------
    >>> from aiostore.sync import MemoryStore
    >>> source, dest = MemoryStore(), MemoryStore()
    >>> source.update({"a/.zarray": b"{}", "a/0": b"xyz", "b/0": b"no"})
    >>> copy_store(source, dest, source_path="a", dest_path="c", log=print)
    copy a/.zarray -> c/.zarray
    copy a/0 -> c/0
    all done: 2 copied, 0 skipped, 5 bytes copied
    (2, 0, 5)
    >>> copy_store(source, dest, source_path="a", dest_path="c", if_exists="skip")
    (0, 2, 0)
    """,
)
