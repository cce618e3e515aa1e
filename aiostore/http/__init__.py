"""Any store over HTTP: an ASGI app (Starlette) and the server that ``aiostore serve`` runs.

Browsers, viewers (neuroglancer, vizarr) and remote zarr clients (zarr 3 through
fsspec or obstore, zarr 2 through fsspec's mapper) read a local LMDB, Zip or
directory store -- any aiostore store -- with no conversion to files on a web
server::

    aiostore serve lmdb://data/images.mdb --port 8000 --cors '*'

or, in a program, ``app(store)`` is an ASGI app for any ASGI server::

    import aiostore, aiostore.http, uvicorn
    uvicorn.run(aiostore.http.app("lmdb://data/images.mdb"))   # opened and closed by the app

What it answers
---------------

``GET /{key}``, ``HEAD /{key}``
    The value (``application/octet-stream``; zarr's metadata documents -- ``*.json``,
    ``.zarray``, ``.zgroup``, ``.zattrs``, ``.zmetadata`` -- as ``application/json``),
    ``404`` if the key holds none, with ``Content-Length``, ``ETag`` and
    ``Accept-Ranges: bytes``. ``If-None-Match`` with the value's ``ETag``: ``304``.
    Concurrent ``GET`` requests are read through the store's batching: a blocking
    store coalesces concurrent gets into one batch per thread hop.
``Range: bytes=a-b``, ``bytes=a-``, ``bytes=-n``
    ``206`` with ``Content-Range``; only that range is read from a large value. A
    range past the end: ``416`` with ``Content-Range: bytes */size``. Several ranges
    in one header, or a malformed header, are ignored: the whole value, ``200``.
``ETag``
    A BLAKE2b digest of the value (a strong validator). ``HEAD`` and ranged answers
    carry it for values up to ``etag_read_limit`` bytes (64 KiB), which are read
    whole to compute it; larger values are read by range and those answers have none.
``GET /?list&prefix=a/b/&delimiter=/``
    A JSON listing: ``{"prefix", "delimiter", "keys", "prefixes"}`` (see below).
``GET /dir/`` (a path ending in ``/``)
    An HTML page of links to the children (for browsers, and fsspec's ``ls``); ``404``
    if nothing is below it. ``GET /dir`` (no slash) is the key ``dir``: ``404`` if
    it holds no value.
``PUT /{key}``, ``DELETE /{key}``
    Only with ``read_only=False`` (``aiostore serve --writable``), never by default:
    else ``405`` with an ``Allow`` header. ``PUT`` stores the body (``201`` for a new
    key, ``204`` for a replaced one), ``DELETE`` removes the key (``204``, ``404``).

What it refuses with ``400``, before any store call
---------------------------------------------------

The path is decoded from the bytes the client sent (not a server's decoded path),
then must be a key the library's key gate (:func:`aiostore.keys.normalize_key`,
then the store's :meth:`~aiostore.abc.Store.check_key`) leaves exactly as it is:
``..`` and ``.`` segments (also percent-encoded: ``/%2e%2e/x``), an absolute path
(``//etc/passwd``), repeated or trailing slashes inside a key, a backslash, an
encoded slash or backslash (``%2F``, ``%5C``), a NUL, bytes that are not UTF-8.

The JSON listing
----------------

``GET /?list&prefix=P&delimiter=/`` (the root path with a ``list`` parameter:
no zarr client asks for it, and a key's path never has a query)::

    {"prefix": "arr/", "delimiter": "/", "keys": ["arr/.zarray", "arr/0.0"], "prefixes": ["arr/sub/"]}

``prefix`` is a plain string prefix (``arr/.z`` matches ``arr/.zarray``); what comes
before its last ``/`` must be a path in normal form. Without ``delimiter`` every
key below the prefix is listed, at any depth. With ``delimiter=/`` (the only one)
the names one level below are split into ``keys`` (names holding a value) and
``prefixes`` (names with keys below them, ending in ``/``); a name that is both
(possible in LMDB, Zip, DBM and object stores, never written by zarr) is listed as
a key. Both lists are sorted.

Running it
----------

:func:`serve` runs the app on uvicorn under asyncio and on hypercorn under trio,
until SIGINT or SIGTERM, then shuts down cleanly. Each request is logged at INFO
to the ``aiostore.http`` logger.

Examples
--------
>>> import anyio, httpx
>>> from aiostore import MemoryStore
>>> async def main():
...     store = MemoryStore()
...     await store.set_many({"arr/.zarray": b"{}", "arr/0.0": b"0123456789"})
...     client = httpx.AsyncClient(transport=httpx.ASGITransport(app(store)), base_url="http://x")
...     async with client:
...         value = await client.get("/arr/0.0", headers={"Range": "bytes=2-4"})
...         hostile = await client.get("/arr/%2e%2e/%2e%2e/etc/passwd")
...         listing = await client.get("/", params={"list": "", "prefix": "arr/", "delimiter": "/"})
...     print(value.status_code, value.content, hostile.status_code, listing.json()["keys"])
>>> anyio.run(main)
206 b'234' 400 ['arr/.zarray', 'arr/0.0']
"""

from __future__ import annotations

from aiostore.http._app import app
from aiostore.http._server import listen, serve, socket_url

__all__ = ["app", "listen", "serve", "socket_url"]
