"""The zarr v2 metadata layer, async: ``init_array``, ``init_group`` and friends.

These are the hierarchy functions of zarr 2's ``zarr.storage``, for any aiostore
store (or anything :func:`aiostore.as_store` accepts, such as a plain ``dict``).
The metadata they write is byte for byte what zarr 2.18 writes.
:mod:`aiostore.sync` has blocking twins of each, which run these same coroutines.

Unlike zarr 2, every argument is checked before the store is touched, so a bad
argument leaves the store as it was; and ``migrate_1to2`` writes the new
metadata before it removes the old.

Examples
--------
>>> import anyio, json
>>> from aiostore import MemoryStore
>>> from aiostore._zarr2meta.hierarchy import init_array, contains_array, listdir
>>> async def main():
...     store = MemoryStore()
...     await init_array(store, shape=(100, 100), chunks=10, dtype="i4", path="a/b")
...     print(await contains_array(store, "a/b"), await listdir(store, "a"))
...     print(json.loads(await store.get("a/b/.zarray"))["chunks"])
>>> anyio.run(main)
True ['.zgroup', 'b']
[10, 10]
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any, TypeAlias

from aiostore._zarr2meta.metadata import (
    array_metadata,
    group_metadata,
    v1_to_v2_metadata,
)
from aiostore.abc import Store
from aiostore.errors import ContainsArrayError, ContainsGroupError
from aiostore.keys import join_key, normalize_path
from aiostore.stores.mapping import as_store

__all__ = [
    "ARRAY_META_KEY",
    "ATTRS_KEY",
    "GROUP_META_KEY",
    "StoreLike",
    "contains_array",
    "contains_group",
    "getsize",
    "init_array",
    "init_group",
    "listdir",
    "migrate_1to2",
    "rename",
    "rmdir",
]

ARRAY_META_KEY = ".zarray"
GROUP_META_KEY = ".zgroup"
ATTRS_KEY = ".zattrs"

#: An aiostore store, or any mapping :func:`aiostore.as_store` wraps.
StoreLike: TypeAlias = Store | MutableMapping[str, Any]


async def contains_array(store: StoreLike, path: str | None = None) -> bool:
    """Return True if the store holds an array (a ``.zarray`` key) at ``path``.

    >>> import anyio
    >>> anyio.run(contains_array, {"a/.zarray": b"{}"}, "a")
    True
    """
    return await as_store(store).contains(join_key(normalize_path(path), ARRAY_META_KEY))


async def contains_group(store: StoreLike, path: str | None = None) -> bool:
    """Return True if the store holds a group (a ``.zgroup`` key) at ``path``.

    >>> import anyio
    >>> anyio.run(contains_group, {".zgroup": b"{}"})
    True
    """
    return await as_store(store).contains(join_key(normalize_path(path), GROUP_META_KEY))


async def listdir(store: StoreLike, path: str | None = None) -> list[str]:
    """The sorted names of the children of ``path`` (keys and "directories").

    Uses the store's own ``listdir``; for a mapping without one, its key listing.

    >>> import anyio
    >>> anyio.run(listdir, {"a/b/c": b"1", "a/d": b"2", "e": b"3"}, "a")
    ['b', 'd']
    """
    return await as_store(store).listdir(normalize_path(path))


async def rmdir(store: StoreLike, path: str | None = None) -> None:
    """Remove everything below ``path`` (everything, for the root).

    Uses the store's own ``rmdir``; for a mapping without one (or one that
    says it is not erasable), deletes the listed keys.

    >>> import anyio
    >>> data = {"a/b": b"1", "a/c/d": b"2", "e": b"3"}
    >>> anyio.run(rmdir, data, "a"); data
    {'e': b'3'}
    """
    await as_store(store).rmdir(normalize_path(path))


async def rename(store: StoreLike, src_path: str, dst_path: str) -> None:
    """Move ``src_path`` and everything below it to ``dst_path``.

    Uses the store's own ``rename``; for a mapping without one, moves the
    listed keys.

    >>> import anyio
    >>> data = {"a/x": b"1", "a/y/z": b"2"}
    >>> anyio.run(rename, data, "a", "b"); sorted(data)
    ['b/x', 'b/y/z']
    """
    await as_store(store).rename(normalize_path(src_path), normalize_path(dst_path))


async def getsize(store: StoreLike, path: str | None = None) -> int:
    """The size of the value at ``path``, or the summed sizes of the values
    directly below it (not recursive), as zarr 2 counts; 0 if nothing is there.

    >>> import anyio
    >>> anyio.run(getsize, {"a/b": b"123", "a/c": b"45", "a/d/e": b"6789"}, "a")
    5
    """
    return await as_store(store).getsize(normalize_path(path))


# -- creating arrays and groups ----------------------------------------------------


def _ancestors(path: str) -> list[str]:
    # "a/b/c" -> ["", "a", "a/b"]: the groups that must exist above an array at path
    if not path:
        return []
    segments = path.split("/")
    return ["/".join(segments[:i]) for i in range(len(segments))]


async def _init_node(
    store: Store, chunk_store: Store | None, path: str, meta_key: str, document: bytes, overwrite: bool
) -> None:
    """Write ``document`` at ``path``/``meta_key`` and any missing parent groups.

    Every check runs before the first write, so an error leaves the store as it
    was. With ``overwrite``, an array in the way (at ``path`` or above it) is
    removed with everything below it, in ``chunk_store`` too, as zarr 2 does.
    """

    async def clear(p: str) -> None:
        await rmdir(store, p)
        if chunk_store is not None:
            await rmdir(chunk_store, p)

    writes: dict[str, bytes] = {}
    cleared = False  # an ancestor array was removed: nothing is left below it
    for parent in _ancestors(path):
        if not cleared and await contains_array(store, parent):
            if not overwrite:
                raise ContainsArrayError(parent)
            await clear(parent)
            cleared = True
        if cleared or not await contains_group(store, parent):
            writes[join_key(parent, GROUP_META_KEY)] = group_metadata()
    if overwrite:
        await clear(path)
    elif not cleared:
        if await contains_array(store, path):
            raise ContainsArrayError(path)
        if await contains_group(store, path):
            raise ContainsGroupError(path)
    writes[join_key(path, meta_key)] = document
    await store.set_many(writes)


async def init_array(
    store: StoreLike,
    shape: int | Sequence[int],
    chunks: bool | int | Sequence[int | None] | None = True,
    dtype: Any = None,
    compressor: Any = "default",
    fill_value: Any = None,
    order: str = "C",
    overwrite: bool = False,
    path: str | None = None,
    chunk_store: StoreLike | None = None,
    filters: Sequence[Any] | None = None,
    object_codec: Any = None,
    dimension_separator: str | None = None,
) -> None:
    """Initialize an array: write its ``.zarray`` metadata (and parent groups).

    Parameters
    ----------
    store : Store or MutableMapping
    shape : int or tuple of ints
    chunks : bool, int or tuple of ints, optional
        ``True`` guesses from ``shape`` and ``dtype``; ``False`` is one chunk;
        an int applies to every axis; a short tuple is completed with whole
        axes; ``-1`` or ``None`` in a tuple is the whole axis.
    dtype : str, dtype or type, optional
        Default float64. ``str``, ``bytes`` and ``"array:<dtype>"`` make object
        arrays with numcodecs' VLen codecs.
    compressor : numcodecs Codec, "default", "none" or None
        ``"default"`` is ``Blosc(cname="lz4", clevel=5, shuffle=1, blocksize=0)``.
    fill_value : object, optional
        Value of unwritten chunks: numbers, ``nan``/``±inf``, complex, bytes,
        str, datetimes, tuples for structured dtypes.
    order : {"C", "F"}
    overwrite : bool
        Remove what is at ``path`` (and an array above it) first, in
        ``chunk_store`` too; otherwise an array or group there is an error.
    path : str, optional
        Where in the store; missing parent groups are created.
    chunk_store : Store or MutableMapping, optional
        Separate storage for chunks.
    filters : sequence of Codec, optional
    object_codec : Codec, optional
        Needed for ``dtype=object``.
    dimension_separator : {".", "/"}, optional
        Default: the store's own.

    Raises
    ------
    ContainsArrayError, ContainsGroupError
        Something is already at ``path`` (or an array above it) and not ``overwrite``.
    ValueError, TypeError
        A bad argument; the store is not touched.

    Examples
    --------
    >>> import anyio
    >>> store = {}
    >>> anyio.run(init_array, store, 100, 10)
    >>> import json
    >>> meta = json.loads(store[".zarray"])
    >>> meta["chunks"], meta["dtype"], meta["compressor"]["cname"]
    ([10], '<f8', 'lz4')
    """
    async_store = as_store(store)
    async_chunk_store = None if chunk_store is None else as_store(chunk_store)
    normalized = normalize_path(path)
    if dimension_separator is None:
        dimension_separator = async_store.dimension_separator
    document = array_metadata(
        shape,
        chunks=chunks,
        dtype=dtype,
        compressor=compressor,
        fill_value=fill_value,
        order=order,
        filters=filters,
        object_codec=object_codec,
        dimension_separator=dimension_separator,
    )
    await _init_node(async_store, async_chunk_store, normalized, ARRAY_META_KEY, document, overwrite)


async def init_group(
    store: StoreLike,
    overwrite: bool = False,
    path: str | None = None,
    chunk_store: StoreLike | None = None,
) -> None:
    """Initialize a group: write its ``.zgroup`` metadata (and parent groups).

    With ``overwrite``, what is at ``path`` is removed first (in
    ``chunk_store`` too); otherwise an array or group there is an error.

    >>> import anyio
    >>> store = {}
    >>> anyio.run(init_group, store, False, "a/b"); sorted(store)
    ['.zgroup', 'a/.zgroup', 'a/b/.zgroup']
    """
    async_store = as_store(store)
    async_chunk_store = None if chunk_store is None else as_store(chunk_store)
    normalized = normalize_path(path)
    await _init_node(async_store, async_chunk_store, normalized, GROUP_META_KEY, group_metadata(), overwrite)


async def migrate_1to2(store: StoreLike) -> None:
    """Convert a zarr version-1 array (keys ``meta`` and ``attrs``) to version 2.

    Writes ``.zarray`` and ``.zattrs`` first and only then removes ``meta``
    and ``attrs``, so an interruption never loses the metadata.

    Raises
    ------
    KeyError
        The store has no ``meta`` key.
    MetadataError
        ``meta`` is not version-1 metadata.

    >>> import anyio
    >>> store = {"attrs": b"{}", "meta": b'{"zarr_format": 1, "shape": [4], "chunks": [2], '
    ...          b'"dtype": "<i4", "compression": null, "compression_opts": null, '
    ...          b'"fill_value": 0, "order": "C"}'}
    >>> anyio.run(migrate_1to2, store); sorted(store)
    ['.zarray', '.zattrs']
    """
    async_store = as_store(store)
    found = await async_store.get_many(["meta", "attrs"])
    if "meta" not in found:
        raise KeyError("meta: no version-1 array metadata in the store")
    writes = {ARRAY_META_KEY: v1_to_v2_metadata(found["meta"])}
    if "attrs" in found:
        writes[ATTRS_KEY] = found["attrs"]
    await async_store.set_many(writes)
    await async_store.delete_many(["meta", "attrs"])
