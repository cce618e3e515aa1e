"""Paths that try to leave the store are ``400`` before any store call (raw request targets,
sent to the ASGI app as bytes: no client normalizes them first).

These run against stores that keep nothing on disk; the same paths against directory
and LMDB stores, over a real socket, run in the read-only sandbox
(tests/sandboxed/test_http_hostile_bodies.py, started by test_http_hostile_sandboxed.py).
"""

from __future__ import annotations

import pytest
from http_helpers import RecordingStore, asgi_request

import aiostore.http

pytestmark = pytest.mark.anyio

#: Request targets, as the client sends them.
HOSTILE = [
    "/../etc/passwd",
    "/..",
    "/../",
    "/%2e%2e/x",
    "/%2E%2E/%2E%2E/secret",
    "/.%2e/x",
    "/a/%2F..%2Fb",
    "/a%2fb",
    "/a%2Fb",
    "/a%5cb",
    "//etc/passwd",
    "///etc/passwd",
    "/a/../../b",
    "/a/./b",
    "/./a",
    "/a//b",
    "/a/b/..",
    "/a/b/.",
    "..%5c..%5cx",
    "/..%5c..%5cx",
    "/..\\..\\x",
    "/a\\b",
    "/%00",
    "/a%00b",
    "/a/%00/b",
    "/%ff%fe",
    "/..%2f..%2fsecret",
    "/%2e%2e%2f%2e%2e%2fsecret",
    "/C:%5cx",
    "etc/passwd",
    "/a/../",
    "/../../p1/",
    "/%2e%2e/",
]
METHODS = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writable"])
async def test_hostile_paths_are_400_and_touch_nothing(read_only: bool) -> None:
    store = RecordingStore({"a/b": b"1", "secret": b"2", "etc/passwd": b"3", "x": b"4"})
    before = dict(store.data)
    app = aiostore.http.app(store, read_only=read_only)
    wrong = []
    for target in HOSTILE:
        for method in METHODS:
            reply = await asgi_request(app, method, target, body=b"HOSTILE")
            if reply.status != 400:
                wrong.append((method, target, reply.status, reply.body))
    assert wrong == []
    assert store.calls == []
    assert store.data == before


async def test_the_refusal_says_why() -> None:
    app = aiostore.http.app(RecordingStore())
    reply = await asgi_request(app, "GET", "/a/%2F..%2Fb")
    assert b"encoded '/'" in reply.body
    reply = await asgi_request(app, "GET", "/a/../../b")
    assert b"'..'" in reply.body
    assert reply.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ("/a/b", "a/b"),
        ("/%61/%62", "a/b"),  # plain characters, encoded
        ("/x/..y", "x/..y"),  # ".." inside a name is a name
        ("/x/y..", "x/y.."),
        ("/x/%25", "x/%"),
        ("/x/%C3%A9", "x/\u00e9"),
        ("/x/a%20b", "x/a b"),
        ("/x/.zarray", "x/.zarray"),
    ],
)
async def test_plain_keys_however_spelled_are_served(target: str, key: str) -> None:
    store = RecordingStore({key: b"value"})
    app = aiostore.http.app(store)
    reply = await asgi_request(app, "GET", target)
    assert (reply.status, reply.body) == (200, b"value")


async def test_a_root_path_is_taken_off() -> None:
    store = RecordingStore({"a/b": b"value"})
    app = aiostore.http.app(store)
    scope_app = _with_root_path(app, "/data")
    assert (await asgi_request(scope_app, "GET", "/data/a/b")).body == b"value"


def _with_root_path(app: object, root: str) -> object:
    async def mounted(scope: dict[str, object], receive: object, send: object) -> None:
        scope = {**scope, "root_path": root}
        await app(scope, receive, send)  # type: ignore[operator]

    return mounted
