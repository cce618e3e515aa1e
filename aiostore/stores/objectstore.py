"""ObjectStore: a store in object storage, over obstore.

S3 and compatible services, Azure Blob, GCS, HTTP(S) (read-only), and obstore's
local and in-memory stores: whatever ``obstore.store.from_url`` builds. obstore
does the HTTP, credentials, retries and timeouts; this module maps the protocol.

* **Concurrent batches.** Batch calls run their requests concurrently under the
  process-wide ``"network"`` limit (:func:`aiostore.set_request_limit`): a
  request costs milliseconds, so overlap is what pays. Bulk deletes use the
  service's batch delete.
* **No thread hop under asyncio**: obstore's async API is awaited directly. Under
  trio its blocking API runs in worker threads, a batch spread over them. The
  sync side runs the async methods on aiostore's background loop, so a
  ``getitems`` of 1,000 keys is 1,000 concurrent requests.
* **Paths.** A key is an object path below the URL's prefix; ``listdir`` lists
  one level with a delimiter, never the whole bucket.

Examples
--------
>>> import anyio
>>> async def main():
...     async with ObjectStore("memory:///") as store:
...         await store.set_many({"a/0": b"x", "a/1": b"yz", ".zgroup": b"{}"})
...         print(await store.listdir(), await store.get("a/1", byte_range=(-1, None)))
>>> anyio.run(main)
['.zgroup', 'a'] b'z'
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import sniffio

from aiostore._runtime.offload import gather_each, offload, offload_each
from aiostore.abc import Buffer, ByteRange, Request, Store, slice_byte_range
from aiostore.errors import BatchWriteError
from aiostore.keys import KeyLimits, is_key_path, parent_prefix
from aiostore.stores._objectcalls import (
    LOCAL_KEY_LIMITS,
    first_line,
    get_options,
    not_a_directory,
    obstore_module,
    public_url,
    range_failed,
    range_not_satisfiable,
    refused,
)

__all__ = ["ObjectStore"]

T = TypeVar("T")

#: Keys per request of a bulk delete (S3's limit for one DeleteObjects call).
_DELETE_CHUNK = 1000
#: The process whose obstore runtime has made requests (it does not survive fork).
_REQUESTS_FROM: int | None = None


class ObjectStore(Store):
    """A store in object storage (S3, Azure Blob, GCS, HTTP(S), obstore's local and memory stores).

    Parameters
    ----------
    store : str or obstore store
        A URL (``s3://bucket/prefix``, ``az://account/container``, ``abfs://...``,
        ``gs://bucket``, ``https://host/path``, ``file:///path``, ``memory:///``)
        or a store built with ``obstore.store`` (``S3Store(...)`` ...).
    read_only : bool
        Refuse writes and deletes. HTTP(S) stores are always read-only.
    dimension_separator : {".", "/"}, optional
    allow_http, timeout, connect_timeout : optional
        Shortcuts for obstore's ``client_options`` of those names (a timeout is a
        string such as ``"30s"``): with a timeout, a store that is down or
        unreachable fails within it (times obstore's retries).
    **options
        Passed to ``obstore.store.from_url`` as they are: ``config`` (credentials,
        ``endpoint``, ``region`` ...), ``client_options``, ``retry_config``,
        ``credential_provider`` and store-specific keywords. Only with a URL.

    Notes
    -----
    ``rename`` copies every object, then deletes the originals: it is not atomic,
    and a failure part-way leaves both copies of some objects. Missing keys raise
    ``KeyError`` and refused access ``PermissionError``, each naming the key and
    the store's location; other service errors are ``OSError`` with obstore's error
    as the cause. Credentials never appear in ``repr`` or errors. The store pickles,
    so dask and ``spawn``/``forkserver`` processes use it; in a process forked from
    one that had already made requests it raises ``RuntimeError`` rather than hang
    (obstore's runtime does not survive ``fork``, see :attr:`client`).

    Examples
    --------
    >>> store = ObjectStore("s3://bucket/data.zarr", config={"region": "us-east-1"}, allow_http=True)
    >>> store
    ObjectStore('s3://bucket/data.zarr')
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
        obstore = obstore_module()
        client_options = dict(options.pop("client_options", None) or {})
        for name, value in (
            ("allow_http", allow_http),
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
        ):
            if value is not None:
                client_options[name] = value
        if isinstance(store, str):
            if store.lower().startswith("http://"):
                client_options.setdefault("allow_http", True)  # the URL says plain HTTP
            self._location = public_url(store)
            if client_options:
                options["client_options"] = client_options
            self._options = options
            self._url: str | None = store
            client = obstore.store.from_url(store, **options)
        else:
            if options or client_options:
                raise TypeError("options are for a URL; an obstore store is used as it is built")
            self._location = repr(store)
            self._options = {}
            self._url = None
            client = store
        http = self._location.startswith(("http://", "https://")) or type(client).__name__ == "HTTPStore"
        super().__init__(read_only=read_only or http, dimension_separator=dimension_separator)
        self.key_limits = LOCAL_KEY_LIMITS if type(client).__name__ == "LocalStore" else KeyLimits(utf8=True)
        self._client = client
        self._pid = os.getpid()

    @property
    def location(self) -> str:
        """Where the store is: its URL without credentials, or the obstore store's repr."""
        return self._location

    @property
    def client(self) -> Any:
        """The obstore store; rebuilt (from its pickle) first in a forked child.

        obstore runs its requests on one runtime per process, which does not
        survive ``fork`` once it has started: in a child forked after this process
        made a request, a request would hang forever. That case raises
        :class:`RuntimeError` instead (use the ``spawn`` or ``forkserver`` start
        method, or dask, which pickles the store into fresh processes).
        """
        global _REQUESTS_FROM
        pid = os.getpid()
        if _REQUESTS_FROM is not None and _REQUESTS_FROM != pid:
            raise RuntimeError(
                f"{self!r} cannot make requests in this process: it was forked from one "
                "that had already made object-store requests, and obstore's runtime does not "
                "survive fork (a request would hang); start worker processes with the "
                "'spawn' or 'forkserver' method instead"
            )
        _REQUESTS_FROM = pid
        if self._pid != pid:
            self._client = pickle.loads(pickle.dumps(self._client))
            self._pid = pid
        return self._client

    # -- errors ------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Map obstore's errors for ``key`` onto the protocol's, naming key and store."""
        errors = obstore_module().exceptions
        try:
            yield
        except (FileNotFoundError, errors.NotFoundError):  # obstore raises the built-in one
            raise KeyError(key) from None
        except (OSError, errors.BaseError) as exc:
            if not_a_directory(exc):  # a local store's key below a value: nothing there
                raise KeyError(key) from None
            permission = (PermissionError, errors.PermissionDeniedError, errors.UnauthenticatedError)
            if isinstance(exc, permission) or refused(exc):  # a refused listing is a generic error
                raise self._refusal(key, exc) from exc
            raise OSError(f"{type(exc).__name__} for {key!r} in {self._location}: {first_line(exc)}") from exc

    def _refusal(self, key: str, exc: BaseException) -> PermissionError:
        return PermissionError(f"access to {key!r} in {self._location} was refused: {first_line(exc)}")

    # -- one request, async (asyncio) and blocking (trio's worker threads) ---------
    async def _read_async(self, key: str, byte_range: ByteRange | None) -> bytes:
        if byte_range is not None and byte_range[1] is not None and byte_range[1] <= byte_range[0]:
            await self._head_async(key)  # an empty range of a missing key is still missing
            return b""
        obstore = obstore_module()
        with self._errors(key):
            try:
                options = None if byte_range is None else get_options(byte_range)
                result = await obstore.get_async(self.client, key, options=options)
                return bytes(await result.bytes_async())
            except (OSError, obstore.exceptions.BaseError) as exc:
                if byte_range is None or not range_failed(exc):
                    raise
                past_end = range_not_satisfiable(exc)
        if past_end:  # a start past the end: empty, as slicing is
            await self._head_async(key)
            return b""
        # The service refused or ignored the range (a suffix on Azure, a server
        # without Range support): the whole value, sliced here.
        return slice_byte_range(await self._read_async(key, None), byte_range)

    def _read_blocking(self, key: str, byte_range: ByteRange | None) -> bytes:
        if byte_range is not None and byte_range[1] is not None and byte_range[1] <= byte_range[0]:
            self._head_blocking(key)
            return b""
        obstore = obstore_module()
        with self._errors(key):
            try:
                options = None if byte_range is None else get_options(byte_range)
                return bytes(obstore.get(self.client, key, options=options).bytes())
            except (OSError, obstore.exceptions.BaseError) as exc:
                if byte_range is None or not range_failed(exc):
                    raise
                past_end = range_not_satisfiable(exc)
        if past_end:
            self._head_blocking(key)
            return b""
        return slice_byte_range(self._read_blocking(key, None), byte_range)

    async def _head_async(self, key: str) -> int:
        with self._errors(key):
            return int((await obstore_module().head_async(self.client, key))["size"])

    def _head_blocking(self, key: str) -> int:
        with self._errors(key):
            return int(obstore_module().head(self.client, key)["size"])

    async def _write_async(self, key: str, value: Buffer) -> None:
        with self._errors(key):
            await obstore_module().put_async(self.client, key, bytes(value))

    def _write_blocking(self, key: str, value: Buffer) -> None:
        with self._errors(key):
            obstore_module().put(self.client, key, bytes(value))

    # -- running many requests ------------------------------------------------------
    @staticmethod
    def _asyncio() -> bool:
        return sniffio.current_async_library() == "asyncio"

    async def _request(
        self, call_async: Callable[..., Awaitable[T]], call: Callable[..., T], *args: Any
    ) -> T:
        """One request: obstore's async call under asyncio; under trio (which its async
        API does not support) its blocking call, in a worker thread."""
        if self._asyncio():
            return await call_async(*args)
        return await offload("network", call, *args)

    async def _requests(
        self, items: Sequence[Any], one_async: Callable[[Any], Awaitable[T]], one: Callable[[Any], T]
    ) -> list[T | Exception]:
        """:meth:`_request` for every item, concurrently; each result a value or an exception."""
        if self._asyncio():
            return await gather_each("network", items, one_async)
        return await offload_each("network", items, one)

    async def _read_all(self, requests: Sequence[Request]) -> list[bytes | Exception]:
        return await self._requests(
            requests, lambda r: self._read_async(*r), lambda r: self._read_blocking(*r)
        )

    # -- the store hooks ------------------------------------------------------------
    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        return await self._request(self._read_async, self._read_blocking, key, byte_range)

    async def _get_ranges(self, requests: list[Request]) -> list[bytes | None]:
        values: list[bytes | None] = []
        for result in await self._read_all(requests):
            if isinstance(result, KeyError):
                values.append(None)
            elif isinstance(result, Exception):
                raise result
            else:
                values.append(result)
        return values

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        values = await self._get_ranges([(key, None) for key in keys])
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def _set(self, key: str, value: Buffer) -> None:
        await self._request(self._write_async, self._write_blocking, key, value)

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        results = await self._requests(
            items, lambda item: self._write_async(*item), lambda item: self._write_blocking(*item)
        )
        failed = {key: r for (key, _), r in zip(items, results, strict=True) if isinstance(r, Exception)}
        if failed:
            raise BatchWriteError(failed)

    async def _delete(self, key: str) -> None:
        if not await self._contains(key):  # a service's delete of a missing object succeeds
            raise KeyError(key)
        await self._delete_many([key])

    async def _delete_many(self, keys: list[str]) -> None:
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), _DELETE_CHUNK):
            chunk = keys[start : start + _DELETE_CHUNK]
            try:
                await self._delete_chunk(chunk)
            except KeyError:
                # Some services' bulk delete fails on a missing key (Azure, a local
                # store): delete one by one, skipping what is not there.
                for key in chunk:
                    with contextlib.suppress(KeyError):
                        await self._delete_chunk([key])

    async def _delete_chunk(self, keys: list[str]) -> None:
        obstore = obstore_module()
        with self._errors(keys[0]):
            await self._request(obstore.delete_async, obstore.delete, self.client, keys)

    async def _contains(self, key: str) -> bool:
        try:
            await self._request(self._head_async, self._head_blocking, key)
        except KeyError:
            return False
        return True

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        # obstore lists the prefix's directory (no key is below "./x" or "a//b"), then filters.
        directory = prefix.rpartition("/")[0]
        if directory and not is_key_path(directory, self.key_limits):
            return
        stream = obstore_module().list(self.client, directory or None)
        while True:
            try:
                with self._errors(directory):
                    chunk: Any = await self._request(anext, next, stream, None)
            except KeyError:  # below a value on a local store: nothing there
                return
            if chunk is None:
                return
            for meta in chunk:
                if meta["path"].startswith(prefix):
                    yield meta["path"]

    async def _list_level(self, path: str) -> dict[str, Any]:
        obstore = obstore_module()
        try:
            with self._errors(path):
                level: Any = await self._request(
                    obstore.list_with_delimiter_async, obstore.list_with_delimiter, self.client, path or None
                )
                return dict(level)
        except KeyError:  # below a value on a local store: nothing there
            return {"common_prefixes": [], "objects": []}

    async def _listdir(self, path: str) -> list[str]:
        level = await self._list_level(path)
        cut = len(parent_prefix(path))
        names = {p.rstrip("/")[cut:] for p in level["common_prefixes"]}
        names.update(meta["path"][cut:] for meta in level["objects"])
        return sorted(name for name in names if name)

    async def _getsize(self, path: str) -> int:
        if path:
            try:
                return await self._request(self._head_async, self._head_blocking, path)
            except KeyError:
                pass
        level = await self._list_level(path)
        return sum(int(meta["size"]) for meta in level["objects"])

    async def _rmdir(self, path: str) -> None:
        await self._delete_many([key async for key in self._list(parent_prefix(path))])

    async def _rename(self, src: str, dst: str) -> None:
        # Copy everything, then delete the originals: not atomic (object stores have
        # no rename), but nothing is lost if it fails part-way.
        obstore = obstore_module()
        keys = [key async for key in self._list(parent_prefix(src))]
        if await self._contains(src):
            keys.append(src)

        async def copy(key: str) -> None:
            with self._errors(key):
                target = dst + key[len(src) :]
                await self._request(obstore.copy_async, obstore.copy, self.client, key, target)

        for result in await gather_each("network", keys, copy):
            if isinstance(result, Exception):
                raise result
        await self._delete_many(keys)

    # -- identity and pickling ------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "client": self._client,
            "location": self._location,
            "url": self._url,
            "options": self._options,
            "read_only": self._read_only,
            "dimension_separator": self._dimension_separator,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Store.__init__(self, read_only=state["read_only"], dimension_separator=state["dimension_separator"])
        self._client = state["client"]
        self._location = state["location"]
        self._url = state["url"]
        self._options = state["options"]
        self._pid = os.getpid()

    def __eq__(self, other: object) -> bool:
        # The same URL on another endpoint, region or account is another store.
        if not isinstance(other, ObjectStore):
            return False
        if self._url is None or other.url is None:
            return self._client is other.client_as_built
        return (self._url, self._options) == (other.url, other.options)

    @property
    def url(self) -> str | None:
        """The URL the store was built from (None for an obstore store passed in)."""
        return self._url

    @property
    def options(self) -> dict[str, Any]:
        """The options the store was built with, passed to obstore (may hold credentials)."""
        return dict(self._options)

    @property
    def client_as_built(self) -> Any:
        """The obstore store, without the fork check of :attr:`client`."""
        return self._client

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ObjectStore({self._location!r})"
