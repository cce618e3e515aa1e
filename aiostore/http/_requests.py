"""What a request asks for: the key or directory its path names, its byte range, its validators.

Nothing here touches a store. A path is decoded from the raw bytes the client
sent (``scope["raw_path"]``), so an encoded ``/`` or ``\\`` (``%2F``, ``%5C``) is
seen and refused before decoding could turn it into a separator; what is left
must be a key already in normal form (:func:`aiostore.keys.normalize_key` leaves
it unchanged): no ``.`` or ``..`` segment, no empty segment (``//etc/passwd``),
no backslash, no NUL. Every refusal is a :class:`BadRequest`, answered ``400``.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiostore.keys import normalize_key, normalize_path

__all__ = [
    "BadRequest",
    "ByteSpec",
    "Target",
    "Unsatisfiable",
    "content_type",
    "etag_of",
    "if_none_match",
    "listing_prefix",
    "parse_range",
    "resolve_range",
    "target_of",
]

#: Percent-encoded "/" and "\\": a key cannot hold either, so they only ever try to hide one.
_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c)", re.IGNORECASE)
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_JSON_SUFFIXES = (".json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


class BadRequest(ValueError):
    """A request refused with ``400``, before any store call; the message says why."""


class Unsatisfiable(Exception):
    """A byte range that selects nothing of a value (answered ``416``)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a request path names: a value's ``key``, or a ``directory`` (a path
    ending in ``/``; ``""`` is the root). Exactly one of the two is set."""

    key: str | None = None
    directory: str | None = None


def request_path(scope: Mapping[str, Any]) -> str:
    """The request's path, decoded from the raw bytes sent, without the app's root path.

    >>> request_path({"raw_path": b"/a/%C3%A9?x=1", "path": "/a/é"})
    '/a/é'
    >>> request_path({"raw_path": b"/a/%2F..%2Fb", "path": "/a//../b"})
    Traceback (most recent call last):
    ...
    aiostore.http._requests.BadRequest: invalid path '/a/%2F..%2Fb': an encoded '/' or '\\' is not allowed
    """
    raw = scope.get("raw_path")
    if raw is None:  # a server that does not pass the raw path: only the decoded one is left
        path = str(scope["path"])
    else:
        raw = bytes(raw).split(b"?", 1)[0]
        if _ENCODED_SEPARATOR.search(raw):
            shown = raw.decode("latin-1")
            raise BadRequest(f"invalid path {shown!r}: an encoded '/' or '\\' is not allowed")
        try:
            path = urllib.parse.unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"invalid path {raw.decode('latin-1')!r}: not UTF-8 once decoded") from None
    root = str(scope.get("root_path") or "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def _normal(text: str, what: str, *, empty_ok: bool) -> str:
    """``text`` if the key gate leaves it exactly as it is, else :class:`BadRequest`."""
    if not text and empty_ok:
        return text
    try:
        normal = normalize_path(text) if empty_ok else normalize_key(text)
    except (TypeError, ValueError) as exc:
        raise BadRequest(str(exc)) from None
    if normal != text:
        raise BadRequest(
            f"invalid {what} {text!r}: a leading, trailing or repeated '/', or a '\\', is not allowed"
        )
    return text


def target_of(scope: Mapping[str, Any]) -> Target:
    """The key or directory a request's path names; :class:`BadRequest` if it tries to
    leave the store or is not in normal form.

    >>> target_of({"raw_path": b"/arr/0.0"}), target_of({"raw_path": b"/arr/"})
    (Target(key='arr/0.0', directory=None), Target(key=None, directory='arr'))
    >>> target_of({"raw_path": b"//etc/passwd"})
    Traceback (most recent call last):
    ...
    aiostore.http._requests.BadRequest: invalid key '/etc/passwd': a leading, trailing or repeated '/', \
or a '\\', is not allowed
    >>> target_of({"raw_path": b"/%2e%2e/x"})
    Traceback (most recent call last):
    ...
    aiostore.http._requests.BadRequest: invalid key '../x': '.' and '..' segments are not allowed
    """
    path = request_path(scope)
    if not path.startswith("/"):
        raise BadRequest(f"invalid path {path!r}: it must start with '/'")
    rest = path[1:]
    if not rest or rest.endswith("/"):
        return Target(directory=_normal(rest[:-1], "path", empty_ok=True))
    return Target(key=_normal(rest, "key", empty_ok=False))


def listing_prefix(prefix: str) -> str:
    """Check a listing's ``prefix``: what comes before its last ``/`` must be a path in
    normal form; the rest is the start of a name (no NUL or backslash).

    >>> listing_prefix("arr/c/"), listing_prefix("arr/.z"), listing_prefix("")
    ('arr/c/', 'arr/.z', '')
    >>> listing_prefix("../")
    Traceback (most recent call last):
    ...
    aiostore.http._requests.BadRequest: invalid key '..': '.' and '..' segments are not allowed
    """
    directory, slash, tail = prefix.rpartition("/")
    if slash:
        _normal(directory, "prefix", empty_ok=False)
    if "\x00" in tail or "\\" in tail:
        raise BadRequest(f"invalid prefix {prefix!r}: NUL and '\\' are not allowed")
    return prefix


# -- byte ranges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteSpec:
    """One range of a ``Range`` header: ``first``-``last`` (inclusive; ``last`` None: to the
    end), or the last ``suffix`` bytes."""

    first: int | None = None
    last: int | None = None
    suffix: int | None = None


def parse_range(header: str | None) -> ByteSpec | None:
    """The single byte range a ``Range`` header asks for, or None to answer with the whole
    value: no header, a malformed one, another unit, or several ranges (which this server
    does not serve as ``multipart/byteranges``; RFC 9110 lets a server ignore ``Range``).

    >>> parse_range("bytes=0-99"), parse_range("bytes=100-"), parse_range("bytes=-4")
    (ByteSpec(first=0, last=99, suffix=None), ByteSpec(first=100, last=None, suffix=None), \
ByteSpec(first=None, last=None, suffix=4))
    >>> parse_range("bytes=0-1,4-5"), parse_range("bytes=5-1"), parse_range("items=0-1")
    (None, None, None)
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        if last and int(last) < int(first):
            return None
        return ByteSpec(first=int(first), last=int(last) if last else None)
    if last:
        return ByteSpec(suffix=int(last))
    return None


def resolve_range(spec: ByteSpec, size: int) -> tuple[int, int]:
    """``(start, stop)`` (stop exclusive) of ``spec`` in a value of ``size`` bytes, or
    :class:`Unsatisfiable` if it selects none of them.

    >>> resolve_range(ByteSpec(first=2, last=100), 10), resolve_range(ByteSpec(suffix=4), 10)
    ((2, 10), (6, 10))
    >>> resolve_range(ByteSpec(suffix=40), 10)
    (0, 10)
    >>> resolve_range(ByteSpec(first=10), 10)
    Traceback (most recent call last):
    ...
    aiostore.http._requests.Unsatisfiable: bytes 10- of 10 bytes
    """
    if spec.suffix is not None:
        if spec.suffix == 0 or size == 0:
            raise Unsatisfiable(f"the last {spec.suffix} bytes of {size} bytes")
        return max(0, size - spec.suffix), size
    first = spec.first or 0
    if first >= size:
        raise Unsatisfiable(f"bytes {first}-{'' if spec.last is None else spec.last} of {size} bytes")
    stop = size if spec.last is None else min(spec.last + 1, size)
    return first, stop


# -- validators and types ---------------------------------------------------------------------


def etag_of(value: bytes | memoryview) -> str:
    """A strong validator of a value: a BLAKE2b digest of its bytes, quoted.

    >>> etag_of(b"abc")
    '"cf4ab791c62b8d2b2109c90275287816"'
    """
    return '"' + hashlib.blake2b(value, digest_size=16).hexdigest() + '"'


def if_none_match(header: str | None, etag: str | None) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, as RFC 9110
    says for this header; ``*`` matches any value).

    >>> if_none_match('W/"x", "y"', '"x"'), if_none_match("*", '"x"'), if_none_match('"y"', '"x"')
    (True, True, False)
    """
    if not header or etag is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def content_type(key: str) -> bytes:
    """``application/json`` for zarr's metadata documents (a browser shows them), else
    ``application/octet-stream``.

    >>> content_type("a/zarr.json"), content_type("a/.zarray"), content_type("a/0.0")
    (b'application/json', b'application/json', b'application/octet-stream')
    """
    return b"application/json" if key.endswith(_JSON_SUFFIXES) else b"application/octet-stream"
