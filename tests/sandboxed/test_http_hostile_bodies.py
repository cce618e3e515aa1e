"""Hostile request paths against ``aiostore serve``'s app over a real socket -- run ONLY in a
read-only sandbox (started by tests/http/test_http_hostile_sandboxed.py).

A directory, nested-directory and LMDB store in the playground of :mod:`hostile` (canary
files beside the store's root and at every place a ``../`` walk from it reaches) are
served by uvicorn (asyncio) and hypercorn (trio), with writes enabled and without.
Every hostile request target is sent as raw bytes over its own connection, with GET,
HEAD, PUT (a body), DELETE and OPTIONS, and must be answered ``400`` having touched
nothing: no file-system event outside the store or inside it (inotify), no changed
file around it, the store's contents as they were.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

import anyio
import anyio.to_thread
import hostile
import pytest
from hostile import PAYLOAD, SEED, TALLY, Playground, Watcher, diff

import aiostore
import aiostore.http

pytestmark = hostile.sandbox_marks()

#: Request targets, as sent. The store's root is base/p1/p2/p3/root: "../x" is a canary.
TARGETS = [
    b"/../etc/passwd",
    b"/../x",
    b"/../../secret",
    b"/../../../p1/x",
    b"/..",
    b"/../",
    b"/%2e%2e/x",
    b"/%2E%2E/%2E%2E/secret",
    b"/.%2e/x",
    b"/a/%2F..%2Fb",
    b"/a/%2f..%2f..%2fx",
    b"//etc/passwd",
    b"///etc/passwd",
    b"/a/../../b",
    b"/a/../../x",
    b"/a/./b",
    b"/a//b",
    b"/a/b/..",
    b"..%5c..%5cx",
    b"/..%5c..%5cx",
    b"/..\\..\\x",
    b"/%00",
    b"/a%00b",
    b"/..%2f..%2fsecret",
    b"/%2e%2e%2f%2e%2e%2fsecret",
    b"/%ff/x",
    b"/a/../",
    b"/../../p1/",
    b"/%2e%2e/",
    b"/?list&prefix=../",
    b"/?list&prefix=../../&delimiter=/",
    b"/?list&prefix=/etc/",
    b"/?list&prefix=%2e%2e/&delimiter=/",
    b"/?list&prefix=a/../../&delimiter=/",
]
METHODS = [b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS"]
STORES: dict[str, Callable[[str], aiostore.Store]] = {
    "directory": lambda root: aiostore.DirectoryStore(root),
    "nested": lambda root: aiostore.NestedDirectoryStore(root),
    "lmdb": lambda root: aiostore.LMDBStore(os.path.join(root, "store.lmdb")),
}
CONTENTS = {"seed": SEED, "a/b": PAYLOAD, "x": PAYLOAD, "etc/passwd": PAYLOAD}


@pytest.fixture
def playground(tmp_path: pathlib.Path) -> Iterator[Playground]:
    with hostile.playground_at(str(tmp_path)) as pg:
        yield pg


def raw_request(address: tuple[str, int], method: bytes, target: bytes) -> int:
    """One request over its own connection, the target exactly as given: the status."""
    body = PAYLOAD if method == b"PUT" else b""
    head = b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head % (method, target, len(body)) + body)
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    return int(bytes(data).split(b" ", 2)[1])


def watch_store(root: str) -> Watcher:
    """inotify on the store's root and every directory below it: a read, open or change
    of anything in the store shows."""
    watcher = Watcher()
    for directory, _, _ in os.walk(root):
        watcher.watch(directory)
    return watcher


def age_files(root: str) -> None:
    """Access times before modification times: any read of a file updates its own."""
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            os.utime(path, ns=(0, os.stat(path).st_mtime_ns))


def files_in(root: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            s = os.stat(os.path.join(directory, name))
            out[os.path.join(directory, name)] = (s.st_ino, s.st_size, s.st_mtime_ns, s.st_atime_ns)
    return out


@contextlib.asynccontextmanager
async def serving(store: aiostore.Store, read_only: bool) -> AsyncIterator[tuple[str, int]]:
    """``store`` served in this event loop on a free loopback port: its address."""
    application = aiostore.http.app(store, read_only=read_only)
    sock = aiostore.http.listen("127.0.0.1", 0)
    address = sock.getsockname()[:2]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(aiostore.http.serve, application, sock=sock, log_level="warning", stop=stop))
        try:
            yield address
        finally:
            stop.set()


async def probe_all(store: aiostore.Store, pg: Playground, read_only: bool) -> list[str]:
    """Serve ``store``, send every hostile request; what went wrong, if anything."""
    wrong: list[str] = []
    baseline = pg.baseline()
    async with serving(store, read_only) as address:
        assert await anyio.to_thread.run_sync(raw_request, address, b"GET", b"/seed") == 200
        age_files(pg.root)
        inside = watch_store(pg.root)
        files_before = files_in(pg.root)
        try:
            for target in TARGETS:
                TALLY.keys += 1
                # A listing is a GET (or HEAD) of the root: another method of it is a 405 or an
                # OPTIONS answer, with no prefix read.
                for method in METHODS if not target.startswith(b"/?") else METHODS[:2]:
                    pg.drain()
                    inside.events()
                    status = await anyio.to_thread.run_sync(raw_request, address, method, target)
                    TALLY.calls += 1
                    outside = pg.foreign_events() + diff(baseline, pg.snapshot())
                    touched = inside.events()
                    if outside:
                        TALLY.escapes += 1
                    if status == 400 and not outside and not touched:
                        TALLY.refusals += 1
                    else:
                        what = f"{status}, outside {outside}, inside {touched}"
                        wrong.append(f"{method.decode()} {target!r}: {what}")
        finally:
            inside.close()
    if files_in(pg.root) != files_before:
        wrong.append("the store's files changed")
    return wrong


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
@pytest.mark.parametrize("kind", sorted(STORES))
def test_hostile_paths_are_400_and_touch_nothing(
    playground: Playground, kind: str, read_only: bool, backend: str
) -> None:
    playground.wipe_root()
    store = STORES[kind](playground.root)
    try:
        store.set_many_sync(CONTENTS)
        wrong = anyio.run(probe_all, store, playground, read_only, backend=backend)
        assert wrong == [], "\n".join(wrong)
        keys = sorted(store.list_sync())
        assert {k: bytes(v) for k, v in store.get_many_sync(keys).items()} == CONTENTS
    finally:
        store.close_sync()


def test_a_plain_request_still_works_and_lands_inside(playground: Playground) -> None:
    # The same server, writable, with plain keys: written inside the root, nowhere else.
    playground.wipe_root()
    store = aiostore.DirectoryStore(playground.root)

    async def main() -> list[int]:
        async with serving(store, read_only=False) as address:
            return [
                await anyio.to_thread.run_sync(raw_request, address, method, target)
                for method, target in [(b"PUT", b"/etc/passwd"), (b"GET", b"/etc/passwd"), (b"PUT", b"/x..")]
            ]

    baseline = playground.baseline()
    playground.drain()
    assert anyio.run(main) == [201, 200, 201]
    assert playground.foreign_events() == []
    assert diff(baseline, playground.snapshot()) == []
    assert pathlib.Path(playground.root, "etc", "passwd").read_bytes() == PAYLOAD
    store.close_sync()
