"""Reading and writing one value: ``GET``/``HEAD`` with ranges and validators, ``PUT``, ``DELETE``.

How a value is read, and when it carries an ``ETag``:

- ``GET`` without ``Range``: one ``await store.get(key)`` (concurrent gets are
  coalesced into batches by the store); the ``ETag`` is a BLAKE2b digest of the value.
- ``HEAD``, and ``GET`` with a ``Range``: the value's size first
  (``store.getsize``). A value of at most ``etag_read_limit`` bytes is then read
  whole -- for a small value that costs what a ranged read does -- so its answer
  carries the same ``ETag`` as a ``GET``'s and the range is cut from it. A larger
  value is read by its range only (``store.get(key, byte_range=...)``) and its
  answer carries no ``ETag``: a strong validator would need every byte, and no
  cheaper one is correct whatever writes the store between two requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from aiostore.abc import Store
from aiostore.http._requests import (
    Unsatisfiable,
    content_type,
    etag_of,
    if_none_match,
    parse_range,
    resolve_range,
)
from aiostore.http._responses import PLAIN_TEXT, Headers, header

__all__ = ["Answer", "delete_value", "put_value", "read_value"]

_ACCEPT_RANGES = (b"accept-ranges", b"bytes")


class Answer(NamedTuple):
    """A response to send: status, headers, body; ``length`` is the Content-Length when the
    body is left out (a HEAD request's)."""

    status: int
    headers: Headers
    body: bytes | memoryview = b""
    length: int | None = None


def _headers(key: str, etag: str | None) -> Headers:
    headers = [(b"content-type", content_type(key)), _ACCEPT_RANGES]
    if etag is not None:
        headers.append((b"etag", etag.encode("ascii")))
    return headers


def _not_modified(etag: str) -> Answer:
    return Answer(304, [(b"etag", etag.encode("ascii")), _ACCEPT_RANGES])


def _unsatisfiable(size: int) -> Answer:
    return Answer(
        416,
        [(b"content-range", f"bytes */{size}".encode()), _ACCEPT_RANGES, *PLAIN_TEXT],
        b"range not satisfiable\n",
    )


def _partial(key: str, etag: str | None, start: int, stop: int, size: int, body: Any) -> Answer:
    headers = _headers(key, etag)
    headers.append((b"content-range", f"bytes {start}-{stop - 1}/{size}".encode()))
    return Answer(206, headers, body, stop - start)


async def read_value(store: Store, key: str, scope: Mapping[str, Any], etag_read_limit: int) -> Answer:
    """The answer to a ``GET`` or ``HEAD`` of ``key`` (``KeyError`` if it holds no value)."""
    head = scope["method"] == "HEAD"
    range_header = header(scope, b"range")
    spec = parse_range(range_header)
    if_range = header(scope, b"if-range") if spec is not None else None
    if spec is None and not head:
        value = await store.get(key)
        etag = etag_of(value)
        if if_none_match(header(scope, b"if-none-match"), etag):
            return _not_modified(etag)
        return Answer(200, _headers(key, etag), value)

    size = await store.getsize(key)
    if size <= etag_read_limit:
        value = await store.get(key)  # KeyError: a missing key (getsize said 0)
        size, etag = len(value), etag_of(value)
        if if_none_match(header(scope, b"if-none-match"), etag):
            return _not_modified(etag)
        if spec is None or (if_range is not None and if_range.strip() != etag):
            return Answer(200, _headers(key, etag), value, size)
        try:
            start, stop = resolve_range(spec, size)
        except Unsatisfiable:
            return _unsatisfiable(size)
        return _partial(key, etag, start, stop, size, value[start:stop])

    # A large value: read by range only, no ETag (see the module's docstring).
    if spec is None or if_range is not None:  # no validator to match an If-Range: the whole value
        if not head:
            value = await store.get(key)
            return Answer(200, _headers(key, None), value)
        if not await store.contains(key):  # getsize of a "directory" sums its children
            raise KeyError(key)
        return Answer(200, _headers(key, None), b"", size)
    try:
        start, stop = resolve_range(spec, size)
    except Unsatisfiable:
        if not await store.contains(key):
            raise KeyError(key) from None
        return _unsatisfiable(size)
    if head:
        if not await store.contains(key):
            raise KeyError(key)
        return _partial(key, None, start, stop, size, b"")
    part = await store.get(key, byte_range=(start, stop))
    if len(part) != stop - start:  # the value changed size since getsize: its new size is unknown
        value = await store.get(key)
        return Answer(200, _headers(key, None), value)
    return _partial(key, None, start, stop, size, part)


async def put_value(store: Store, key: str, body: bytes) -> Answer:
    """Store ``body`` under ``key``: ``201`` if the key was new, else ``204``."""
    existed = await store.contains(key)
    await store.set(key, body)
    return Answer(204 if existed else 201, [(b"etag", etag_of(body).encode("ascii"))])


async def delete_value(store: Store, key: str) -> Answer:
    """Remove ``key``: ``204`` (``KeyError`` if it holds no value)."""
    await store.delete(key)
    return Answer(204, [])
