"""The ASGI app: a Starlette application whose one route answers every path from a store."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from aiostore.abc import Store
from aiostore.errors import ClosedStoreError, KeyConflictError, ReadOnlyError
from aiostore.http._listing import html_index, json_listing, wants_listing
from aiostore.http._requests import BadRequest, target_of
from aiostore.http._responses import PLAIN_TEXT, send_response, send_text
from aiostore.http._values import Answer, delete_value, put_value, read_value
from aiostore.stores.cache import LRUStoreCache
from aiostore.stores.urls import open_store

__all__ = ["app"]

logger = logging.getLogger("aiostore.http")

#: Headers a browser's script may read from an answer (zarr clients in browsers need them).
EXPOSED_HEADERS = ("Content-Range", "Content-Length", "ETag", "Accept-Ranges")
_READS = "GET, HEAD, OPTIONS"
_WRITES = "GET, HEAD, PUT, DELETE, OPTIONS"


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    pass


class StoreEndpoint:
    """Answers every request from the store that :attr:`store` holds (an ASGI app)."""

    def __init__(self, *, writable: bool, etag_read_limit: int, max_put_size: int | None) -> None:
        self.store: Store | None = None
        self.writable = writable
        self.etag_read_limit = etag_read_limit
        self.max_put_size = max_put_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        head = method == "HEAD"
        try:
            target = target_of(scope)
            store = self.store
            if store is None:
                await send_text(send, 503, "the store is not open (the app's lifespan opens it)", head=head)
                return
            if target.key is not None:
                store.check_key(target.key)  # the store's own limits (a name's length): a 400 too
            answer = await self._answer(store, scope, receive, target.key, target.directory)
        except BadRequest as exc:
            await send_text(send, 400, str(exc), head=head)
        except KeyConflictError as exc:
            await send_text(send, 409, _reason(exc), head=head)
        except KeyError as exc:
            await send_text(send, 404, f"not found: {_reason(exc)}", head=head)
        except (ReadOnlyError, NotImplementedError) as exc:
            allow = (b"allow", _READS.encode())
            await send_text(send, 405, f"method not allowed: {exc}", [allow], head=head)
        except ClosedStoreError as exc:
            await send_text(send, 503, str(exc), head=head)
        except (ValueError, TypeError) as exc:  # the key gate, inside a store call
            await send_text(send, 400, str(exc), head=head)
        except _TooLarge:
            await send_text(send, 413, f"the body is larger than {self.max_put_size} bytes")
        except _Gone:
            return
        else:
            await send_response(
                send, answer.status, answer.headers, answer.body, length=answer.length, head=head
            )

    async def _answer(
        self, store: Store, scope: Scope, receive: Receive, key: str | None, directory: str | None
    ) -> Answer:
        method = scope["method"]
        if method in ("GET", "HEAD"):
            if key is not None:
                return await read_value(store, key, scope, self.etag_read_limit)
            if directory == "" and wants_listing(scope):
                return await json_listing(store, scope)
            assert directory is not None
            return await html_index(store, directory)
        allow = _WRITES if self.writable and key is not None else _READS
        if method == "OPTIONS":
            return Answer(204, [(b"allow", allow.encode())])
        if key is not None and self.writable and method == "PUT":
            return await put_value(store, key, await self._body(scope, receive))
        if key is not None and self.writable and method == "DELETE":
            return await delete_value(store, key)
        why = "this server is read-only" if not self.writable else f"{method} of this path"
        headers = [(b"allow", allow.encode()), *PLAIN_TEXT]
        return Answer(405, headers, f"{why}\n".encode())

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_put_size
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            body += message.get("body", b"")
            if limit is not None and len(body) > limit:
                raise _TooLarge
            if not message.get("more_body", False):
                return bytes(body)


def _reason(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


class StoreRoute(BaseRoute):
    """The one route: every HTTP path, to :class:`StoreEndpoint` (which decodes the raw
    path itself; a route pattern would see it decoded, and ``.`` stops at a newline)."""

    def __init__(self, endpoint: StoreEndpoint) -> None:
        self.endpoint = endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if scope["type"] == "http" else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return URLPath("/" + str(path_params.get("key", "")))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)


class RequestLog:
    """Logs one line per request to the ``aiostore.http`` logger at INFO (when enabled):
    client, method, raw path, status, body bytes, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, size = 0, 0

        async def logged(message: MutableMapping[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logged)
        finally:
            client = scope.get("client") or ("-", 0)
            path = bytes(scope.get("raw_path") or scope["path"].encode()).split(b"?")[0].decode("latin-1")
            if scope.get("query_string"):
                path += "?" + bytes(scope["query_string"]).decode("latin-1")
            logger.info(
                '%s:%s "%s %s" %s %d %.1fms',
                client[0],
                client[1],
                scope["method"],
                path,
                status or "-",
                size,
                (time.perf_counter() - start) * 1e3,
            )


def _origins(cors_origins: str | Sequence[str] | None) -> list[str]:
    if cors_origins is None:
        return []
    if isinstance(cors_origins, str):
        return [origin.strip() for origin in cors_origins.split(",") if origin.strip()]
    return list(cors_origins)


def app(
    store: Store | str,
    *,
    read_only: bool = True,
    cors_origins: str | Sequence[str] | None = None,
    cache_size: int | None = None,
    etag_read_limit: int = 1 << 16,
    max_put_size: int | None = 1 << 30,
) -> Starlette:
    """A Starlette (ASGI) app serving ``store`` over HTTP; see :mod:`aiostore.http`.

    Parameters
    ----------
    store : Store or str
        Any aiostore store (the caller opens and closes it), or a store URL
        (:func:`aiostore.open_store`), which the app's lifespan opens (mode ``"r"``,
        or ``"a"`` with ``read_only=False``) and closes.
    read_only : bool
        ``PUT`` and ``DELETE`` are answered ``405`` unless this is False, given
        explicitly; a read-only store cannot be served with writes.
    cors_origins : str or list of str, optional
        Origins a browser may read the answers from: ``"*"``, or a comma-separated
        string or a list of origins. None: no CORS headers.
    cache_size : int, optional
        Put an :class:`aiostore.LRUStoreCache` of this many bytes in front of the store.
    etag_read_limit : int
        Values up to this size are read whole for ``HEAD`` and ``Range`` requests, so
        that those answers carry an ``ETag``; larger values are read by range, with none.
    max_put_size : int or None
        The largest body a ``PUT`` may send (``413`` above it); None: no limit.

    Examples
    --------
    >>> import anyio, httpx
    >>> from aiostore import MemoryStore
    >>> async def main():
    ...     store = MemoryStore()
    ...     await store.set("arr/0.0", b"abcdef")
    ...     transport = httpx.ASGITransport(app=app(store))
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
    ...         whole = await client.get("/arr/0.0")
    ...         part = await client.get("/arr/0.0", headers={"Range": "bytes=-2"})
    ...         refused = await client.put("/arr/0.0", content=b"x")
    ...         listing = await client.get("/?list&prefix=arr/&delimiter=/")
    ...     print(whole.content, part.status_code, part.content, part.headers["content-range"])
    ...     print(refused.status_code, refused.headers["allow"], listing.json()["keys"])
    >>> anyio.run(main)
    b'abcdef' 206 b'ef' bytes 4-5/6
    405 GET, HEAD, OPTIONS ['arr/0.0']
    """
    if not isinstance(read_only, bool):
        raise TypeError(f"read_only must be True or False, not {read_only!r}")
    if isinstance(store, Store):
        if not read_only and store.read_only:
            raise ValueError(f"{store!r} is read-only: it cannot be served with writes (read_only=False)")
    elif not isinstance(store, str):
        raise TypeError(f"store must be an aiostore Store or a store URL, not {type(store).__name__}")
    if cache_size is not None and cache_size < 0:
        raise ValueError(f"cache_size must be a number of bytes >= 0 or None, not {cache_size!r}")
    endpoint = StoreEndpoint(
        writable=not read_only, etag_read_limit=etag_read_limit, max_put_size=max_put_size
    )

    def front(inner: Store) -> Store:
        return inner if cache_size is None else LRUStoreCache(inner, max_size=cache_size)

    @contextlib.asynccontextmanager
    async def lifespan(application: Starlette) -> AsyncIterator[None]:
        if not isinstance(store, str):
            yield
            return
        opened = front(await open_store(store, mode="r" if read_only else "a"))
        endpoint.store = application.state.store = opened
        try:
            yield
        finally:
            endpoint.store = application.state.store = None
            await opened.aclose()

    middleware = [Middleware(RequestLog)]
    origins = _origins(cors_origins)
    if origins:
        methods = ["GET", "HEAD", "OPTIONS"] + ([] if read_only else ["PUT", "DELETE"])
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=methods,
                allow_headers=["Range", "If-None-Match", "If-Range", "Content-Type"],
                expose_headers=list(EXPOSED_HEADERS),
            )
        )
    application = Starlette(routes=[StoreRoute(endpoint)], middleware=middleware, lifespan=lifespan)
    if isinstance(store, Store):
        endpoint.store = application.state.store = front(store)
    else:
        application.state.store = None
    return application
