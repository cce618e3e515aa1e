"""Listings: ``GET /?list&prefix=P&delimiter=/`` (JSON) and ``GET /dir/`` (an HTML index).

JSON, for programs::

    GET /?list&prefix=arr/&delimiter=/
    {"prefix": "arr/", "delimiter": "/", "keys": ["arr/.zarray", "arr/0.0"], "prefixes": ["arr/sub/"]}

``prefix`` is a plain string prefix (``arr/.z`` matches ``arr/.zarray``); without
``delimiter`` every key below it is listed, at any depth, and ``prefixes`` is empty.
With ``delimiter=/`` (the only delimiter there is) a name that holds a value is
listed in ``keys``, and a name below which other keys are, in ``prefixes`` (ending
in ``/``); a name that is both (possible in LMDB, Zip, DBM and object stores,
never written by zarr) is listed as a key. Keys and prefixes are sorted.

HTML, for browsers and for ``fsspec``'s HTTP file system (whose ``ls`` reads the
links of a page): a path ending in ``/`` is a page of links to its children
(``name`` for a value, ``name/`` for a directory); ``404`` if nothing is below it
(the root's page is never ``404``).
"""

from __future__ import annotations

import html
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from aiostore.abc import Store
from aiostore.http._requests import BadRequest, listing_prefix
from aiostore.http._values import Answer
from aiostore.keys import join_key

__all__ = ["html_index", "json_listing", "wants_listing"]

_JSON = (b"content-type", b"application/json")
_HTML = (b"content-type", b"text/html; charset=utf-8")


def wants_listing(scope: Mapping[str, Any]) -> bool:
    """Whether the query string asks for a JSON listing (has a ``list`` parameter).

    >>> wants_listing({"query_string": b"list&prefix=a/"}), wants_listing({"query_string": b"v=1"})
    (True, False)
    """
    query = scope.get("query_string") or b""
    return any(part.split(b"=", 1)[0] == b"list" for part in query.split(b"&"))


async def children(store: Store, directory: str, start: str = "") -> tuple[list[str], list[str]]:
    """The names below ``directory`` that start with ``start``: (values, directories), sorted."""
    names = [name for name in await store.listdir(directory) if name.startswith(start)]
    if not names:
        return [], []
    are_keys = await store.contains_many([join_key(directory, name) for name in names])
    values = [name for name, is_key in zip(names, are_keys, strict=True) if is_key]
    directories = [name for name, is_key in zip(names, are_keys, strict=True) if not is_key]
    return values, directories


async def json_listing(store: Store, scope: Mapping[str, Any]) -> Answer:
    """The answer to ``GET /?list&prefix=P[&delimiter=/]``."""
    query = urllib.parse.parse_qs(
        (scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True, errors="strict"
    )
    unknown = sorted(set(query) - {"list", "prefix", "delimiter"})
    if unknown:
        raise BadRequest(f"unknown listing parameter(s) {', '.join(unknown)}: give prefix and delimiter")
    prefix = listing_prefix(query.get("prefix", [""])[-1])
    delimiter = query.get("delimiter", [""])[-1] or None
    if delimiter not in (None, "/"):
        raise BadRequest(f"invalid delimiter {delimiter!r}: the only delimiter is '/'")
    if delimiter is None:
        keys = sorted([key async for key in store.list(prefix)])
        prefixes: list[str] = []
    else:
        directory, _, start = prefix.rpartition("/")
        values, directories = await children(store, directory, start)
        keys = [join_key(directory, name) for name in values]
        prefixes = [join_key(directory, name) + "/" for name in directories]
    document = {"prefix": prefix, "delimiter": delimiter, "keys": keys, "prefixes": prefixes}
    return Answer(200, [_JSON], json.dumps(document).encode("utf-8"))


async def html_index(store: Store, directory: str) -> Answer:
    """The answer to ``GET /directory/``: a page of links to its children."""
    values, directories = await children(store, directory)
    if directory and not values and not directories:
        raise KeyError(directory + "/")
    title = html.escape("/" + join_key(directory, ""))
    links = ['<li><a href="../">../</a></li>'] if directory else []
    for name in sorted([*values, *(d + "/" for d in directories)]):
        href = urllib.parse.quote(name.rstrip("/"), safe="") + ("/" if name.endswith("/") else "")
        links.append(f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>')
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1>\n<ul>\n" + "\n".join(links) + "\n</ul>\n</body></html>\n"
    )
    return Answer(200, [_HTML], page.encode("utf-8"))
