"""Store URLs: ``await open_store("lmdb://data/x.mdb")`` and friends.

One string names any store, so a command line, a config file or a dask worker
can say where data lives::

    data/x.zarr, file:///abs/x.zarr     DirectoryStore
    nested://data/x.zarr                NestedDirectoryStore
    zip://data/x.zip                    ZipStore
    dbm://data/x.db                     DBMStore
    lmdb://data/x.mdb                   LMDBStore
    memory://                           MemoryStore (a new, empty one)
    s3://bucket/prefix, s3a://          ObjectStore (S3 and compatible)
    gs://bucket/prefix                  ObjectStore (Google Cloud Storage)
    az://, abfs://, abfss://, azure://  ObjectStore (Azure Blob)
    http://, https://                   ObjectStore (read-only)
    cache+<any of these>?max_size=256MiB  an LRUStoreCache in front

``mode`` follows zarr: ``"r"`` read-only, ``"r+"`` read/write (must exist), ``"a"``
read/write (created if needed, the default), ``"w"`` created or emptied, ``"w-"``
created, refused if it exists. Keyword options go to the store's constructor
(``ObjectStore``'s pass on to obstore).

Examples
--------
>>> import anyio
>>> async def main():
...     store = await open_store("cache+memory://?max_size=1MiB")
...     await store.set("a", b"1")
...     return store, await store.get("a")
>>> anyio.run(main)
(LRUStoreCache(MemoryStore(), max_size=1048576), b'1')
>>> anyio.run(open_store, "ftp://host/x")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown store URL scheme 'ftp' in 'ftp://host/x'; known: a plain path, file://, ...
"""

from __future__ import annotations

import glob
import os
import re
import urllib.parse
from typing import Any

from aiostore.abc import Store
from aiostore.stores.cache import LRUStoreCache
from aiostore.stores.dbm import DBMStore
from aiostore.stores.directory import DirectoryStore
from aiostore.stores.lmdb import LMDBStore
from aiostore.stores.memory import MemoryStore
from aiostore.stores.nested import NestedDirectoryStore
from aiostore.stores.objectstore import ObjectStore
from aiostore.stores.zip import ZipMode, ZipStore

__all__ = ["MODES", "SCHEMES", "open_store", "split_url"]

#: zarr's open modes.
MODES = ("r", "r+", "a", "w", "w-")
_FILE_SCHEMES = ("file", "nested", "zip", "dbm", "lmdb")
_OBJECT_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "http", "https")
#: Every scheme :func:`open_store` knows (besides a plain path and ``cache+``).
SCHEMES = (*_FILE_SCHEMES, "memory", *_OBJECT_SCHEMES)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SIZE = re.compile(r"^\s*(\d+)\s*(|b|kib|kb|mib|mb|gib|gb|tib|tb)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS.update({"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4})


def _known() -> str:
    return "a plain path, " + ", ".join(f"{s}://" for s in SCHEMES) + ", cache+<url>"


def split_url(url: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a store URL; a plain path is ``("", path)``.

    >>> split_url("lmdb://data/x.mdb"), split_url("data/x.zarr"), split_url("file:///tmp/x")
    (('lmdb', 'data/x.mdb'), ('', 'data/x.zarr'), ('file', '/tmp/x'))
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"a store URL must be a non-empty str, not {url!r}; known: {_known()}")
    match = _SCHEME.match(url)
    if match is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", url):  # "s3:/bucket", "s3:bucket" (not "C:\\")
            raise ValueError(f"bad store URL {url!r} (no '://' after the scheme); known: {_known()}")
        return "", url
    return match.group(1).lower(), url[match.end() :]


def parse_size(text: str) -> int | None:
    """A byte count from ``"1048576"``, ``"256MiB"``, ``"2GB"``, or None for ``"none"``.

    >>> parse_size("256MiB"), parse_size("1000"), parse_size("none")
    (268435456, 1000, None)
    """
    if text.strip().lower() == "none":
        return None
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"bad size {text!r}: give bytes, e.g. 1048576, 256MiB or 2GB")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


async def open_store(url: str, mode: str = "a", **options: Any) -> Store:
    """Open the store a URL names (see the module's docstring for the schemes).

    Parameters
    ----------
    url : str
    mode : {"r", "r+", "a", "w", "w-"}
    **options
        Passed to the store's constructor.

    Raises
    ------
    ValueError
        For an unknown scheme or a malformed URL (the message lists the schemes)
        and a bad mode.
    FileNotFoundError
        ``"r"`` or ``"r+"`` of a file store that does not exist.
    FileExistsError
        ``"w-"`` of a store that holds something.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(url, str) and url.lower().startswith("cache+"):
        inner_url, _, query = url[len("cache+") :].partition("?")
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(params) - {"max_size"})
        if unknown:
            raise ValueError(f"unknown cache option(s) {unknown} in {url!r}; the cache takes max_size")
        max_size = parse_size(params["max_size"][-1]) if "max_size" in params else None
        return LRUStoreCache(await open_store(inner_url, mode, **options), max_size=max_size)
    scheme, rest = split_url(url)
    if scheme and scheme not in SCHEMES:
        raise ValueError(f"unknown store URL scheme {scheme!r} in {url!r}; known: {_known()}")
    if scheme in _OBJECT_SCHEMES:
        store: Store = ObjectStore(url, read_only=mode == "r", **options)
    elif scheme == "memory":
        store = MemoryStore(read_only=mode == "r", **options)
    else:
        store = _open_file_store(scheme or "file", rest, mode, options)
    if store.read_only and mode in ("r+", "w", "w-"):
        await store.aclose()
        raise ValueError(f"{url!r} is read-only: mode {mode!r} writes (use 'r')")
    if mode == "w":
        await store.clear()
    elif mode == "w-" and [key async for key in _first(store)]:
        await store.aclose()
        raise FileExistsError(f"{url!r} already holds data (mode 'w-' creates a new store only)")
    return store


async def _first(store: Store) -> Any:
    async for key in store.list():
        yield key
        return


def _open_file_store(scheme: str, path: str, mode: str, options: dict[str, Any]) -> Store:
    if not path:
        raise ValueError(f"a {scheme}:// URL needs a path; known: {_known()}")
    # dbm files carry suffixes of their own (x.db.dat, x.db.dir, x.db.db ...)
    exists = os.path.exists(path) or (scheme == "dbm" and bool(glob.glob(glob.escape(path) + ".*")))
    if mode in ("r", "r+") and not exists:
        raise FileNotFoundError(f"no store at {path!r} (mode {mode!r} opens an existing store)")
    read_only = mode == "r"
    if scheme == "zip":
        zip_mode: ZipMode = {"r": "r", "r+": "a", "a": "a", "w": "w", "w-": "x"}[mode]  # type: ignore[assignment]
        return ZipStore(path, mode=zip_mode, **options)
    if scheme == "dbm":
        flag = {"r": "r", "r+": "w", "a": "c", "w": "n", "w-": "c"}[mode]
        return DBMStore(path, flag=flag, **options)
    if scheme == "lmdb":
        return LMDBStore(path, read_only=read_only, **options)
    if scheme == "nested":
        return NestedDirectoryStore(path, read_only=read_only, **options)
    return DirectoryStore(path, read_only=read_only, **options)
