"""ObjectStore over plain HTTP: a zarr DirectoryStore served by Python's own ``http.server``.

The server (``ThreadingHTTPServer`` + ``SimpleHTTPRequestHandler`` on 127.0.0.1)
serves files with GET and HEAD and nothing else: no ``Range`` requests (it
answers a ranged GET with the whole file), no listing (obstore lists over HTTP
with WebDAV's PROPFIND, which it answers 501), no writes. So values, missing
keys, ``contains`` and sizes are tested for what they return, listing for the
error it gives, and every write for :class:`aiostore.ReadOnlyError`.

Byte ranges are read twice: from the same folder served by a subclass of the
handler that answers single ranges with 206 (as web servers and CDNs do), and
from the plain handler, which answers them with the whole file (allowed by
RFC 9110), which ObjectStore then slices.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiostore
import aiostore.sync

pytestmark = pytest.mark.anyio
pytest.importorskip("obstore")

#: What the served directory holds: a zarr 2 group with one array, and an odd name.
DATA = {
    ".zgroup": b'{"zarr_format": 2}',
    "arr/.zarray": b'{"zarr_format": 2, "shape": [4], "chunks": [2]}',
    "arr/0": b"0123456789",
    "arr/1": b"",
    "sub dir/\u00e4 b": b"odd name",
}

#: obstore retries a 5xx answer (the server's 501 for PROPFIND) ten times by default.
NO_RETRIES = {"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=5)}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RangeHandler(_QuietHandler):
    """http.server plus single byte ranges (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), as CDNs serve."""

    def send_head(self) -> Any:
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        first, last = match.groups()
        if first:
            start, stop = int(first), len(data) if not last else min(int(last) + 1, len(data))
        else:
            start, stop = max(len(data) - int(last or 0), 0), len(data)
        if start >= len(data) or stop <= start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        self.send_header("Content-Length", str(stop - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(data[start:stop])


def _serve(root: Path, handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    serve = functools.partial(handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DirectoryStore's folder, as zarr 2 writes it."""
    path: Path = tmp_path_factory.mktemp("served") / "data.zarr"
    with aiostore.sync.DirectoryStore(path) as store:
        store.setitems(DATA)
    return path


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[str]:
    """The folder's URL, served by Python's own http.server on 127.0.0.1."""
    yield from _serve(root, _QuietHandler)


@pytest.fixture(scope="module")
def served_with_ranges(root: Path) -> Iterator[str]:
    """The folder's URL, served by http.server with byte ranges added."""
    yield from _serve(root, _RangeHandler)


def _open(url: str, **options: Any) -> aiostore.ObjectStore:
    return aiostore.ObjectStore(url, allow_http=True, retry_config=NO_RETRIES, **options)


async def test_reads_values(served: str, anyio_backend: str) -> None:
    async with _open(served) as store:
        assert store.read_only
        assert repr(store) == f"ObjectStore({served!r})"
        assert await store.get(".zgroup") == DATA[".zgroup"]
        assert await store.get("arr/0") == b"0123456789"
        assert await store.get("arr/1") == b""  # an empty file is an empty value
        assert await store.get("sub dir/\u00e4 b") == b"odd name"  # quoted into the URL
        assert await store.get("/arr//0") == b"0123456789"  # keys are normalized first
        assert await store.get_many([*DATA, "missing", "arr/9"]) == DATA
        assert await store.get_ranges([("arr/0", None), ("missing", None)]) == [b"0123456789", None]
        assert await store.getsize("arr/0") == 10


async def test_missing_keys(served: str, anyio_backend: str) -> None:
    async with _open(served) as store:
        with pytest.raises(KeyError, match="missing"):
            await store.get("missing")
        with pytest.raises(KeyError, match="arr/9"):
            await store.get("arr/9", byte_range=(0, 1))
        with pytest.raises(KeyError):
            await store.get("no/such/dir/key")
        assert await store.get_many(["missing", "arr/9"]) == {}


async def test_contains(served: str, anyio_backend: str) -> None:
    async with _open(served) as store:
        assert await store.contains(".zgroup")
        assert await store.contains("arr/0")
        assert await store.contains("arr/1")
        assert await store.contains("sub dir/\u00e4 b")
        assert not await store.contains("missing")
        assert not await store.contains("arr/9")
        # Not asserted: ``contains("arr")`` is True here, since http.server answers a
        # folder's URL with a redirect to its HTML listing; a plain HTTP client
        # cannot tell that page from a value.


async def _check_byte_ranges(url: str) -> None:
    async with _open(url) as store:
        assert await store.get("arr/0", byte_range=(2, 5)) == b"234"
        assert await store.get("arr/0", byte_range=(7, None)) == b"789"
        assert await store.get("arr/0", byte_range=(-3, None)) == b"789"
        assert await store.get("arr/0", byte_range=(-30, None)) == b"0123456789"
        assert await store.get("arr/0", byte_range=(8, 50)) == b"89"
        assert await store.get("arr/0", byte_range=(20, None)) == b""
        assert await store.get_ranges([("arr/0", (0, 2)), ("arr/0", (-2, None)), ("missing", (0, 1))]) == [
            b"01",
            b"89",
            None,
        ]
        with pytest.raises(KeyError):
            await store.get("missing", byte_range=(-2, None))


async def test_byte_ranges(served_with_ranges: str, anyio_backend: str) -> None:
    await _check_byte_ranges(served_with_ranges)


async def test_byte_ranges_from_a_server_without_range_support(served: str, anyio_backend: str) -> None:
    """http.server ignores ``Range`` (it may, by RFC 9110): ranged reads still give the right bytes
    (ObjectStore reads the whole value and slices it)."""
    await _check_byte_ranges(served)


async def test_empty_byte_ranges(served: str, anyio_backend: str) -> None:
    """An empty range needs no ranged request; a missing key is still missing."""
    async with _open(served) as store:
        assert await store.get("arr/0", byte_range=(3, 3)) == b""
        with pytest.raises(KeyError):
            await store.get("missing", byte_range=(3, 3))


async def test_listing_is_a_clear_error(served: str, anyio_backend: str) -> None:
    """obstore lists over HTTP with PROPFIND (WebDAV); http.server answers 501."""
    async with _open(served) as store:
        with pytest.raises(OSError, match=r"PROPFIND.*501") as info:
            await store.listdir()
        assert served in str(info.value)  # the message says which store
        with pytest.raises(OSError, match="501"):
            [key async for key in store.list()]
        assert await store.get("arr/0") == b"0123456789"  # the store still works


async def test_read_only(served: str, anyio_backend: str) -> None:
    async with _open(served, read_only=False) as store:  # HTTP is read-only whatever is asked
        assert store.read_only
        writes = {
            "set": lambda: store.set("new", b"1"),
            "set-existing": lambda: store.set("arr/0", b"1"),
            "set_many": lambda: store.set_many({"new": b"1"}),
            "delete": lambda: store.delete("arr/0"),
            "delete_many": lambda: store.delete_many(["arr/0", "missing"]),
            "rmdir": lambda: store.rmdir("arr"),
            "rename": lambda: store.rename("arr", "b"),
            "clear": lambda: store.clear(),
        }
        for name, call in writes.items():
            with pytest.raises(aiostore.ReadOnlyError, match="read-only"):
                await call()
            assert not await store.contains("new"), name
        assert await store.get_many(list(DATA)) == DATA


async def test_an_http_url_needs_no_allow_http(served: str, anyio_backend: str) -> None:
    """The URL says plain HTTP: obstore's ``allow_http`` is implied."""
    async with aiostore.ObjectStore(served, retry_config=NO_RETRIES) as store:
        assert await store.get(".zgroup") == DATA[".zgroup"]
    store = await aiostore.open_store(served, "r", retry_config=NO_RETRIES)
    async with store:
        assert await store.get("arr/0", byte_range=(-2, None)) == b"89"
    with aiostore.sync.ObjectStore(served, retry_config=NO_RETRIES) as twin:
        assert twin["arr/0"] == b"0123456789"


async def test_open_store(served: str, anyio_backend: str) -> None:
    store = await aiostore.open_store(served, "r", allow_http=True, retry_config=NO_RETRIES)
    async with store:
        assert isinstance(store, aiostore.ObjectStore) and store.read_only
        assert await store.get_many(["arr/0", ".zgroup", "missing"]) == {
            "arr/0": DATA["arr/0"],
            ".zgroup": DATA[".zgroup"],
        }
        with pytest.raises(aiostore.ReadOnlyError):
            await store.set("x", b"1")
    cached = await aiostore.open_store(f"cache+{served}?max_size=1MiB", "r", allow_http=True)
    async with cached:
        assert isinstance(cached, aiostore.LRUStoreCache)
        assert await cached.get("arr/0") == await cached.get("arr/0") == b"0123456789"


async def test_open_store_refuses_write_modes(served: str, anyio_backend: str) -> None:
    """An HTTP store is read-only: modes that write (or empty, or create) are refused up front."""
    for mode in ("r+", "w", "w-"):
        with pytest.raises(ValueError, match=f"is read-only: mode {re.escape(repr(mode))} writes"):
            await aiostore.open_store(served, mode, retry_config=NO_RETRIES)
        with pytest.raises(ValueError, match="is read-only"):
            aiostore.sync.open_store(served, mode, retry_config=NO_RETRIES)
    store = await aiostore.open_store(served, "a", retry_config=NO_RETRIES)  # "a" opens what is there
    async with store:
        assert store.read_only and await store.get(".zgroup") == DATA[".zgroup"]


def test_sync(served: str) -> None:
    with aiostore.sync.ObjectStore(served, allow_http=True, retry_config=NO_RETRIES) as store:
        assert store.read_only and not store.is_writeable()
        assert store["arr/0"] == b"0123456789"
        assert store.getitems(["arr/0", ".zgroup", "missing"], contexts={}) == {
            "arr/0": DATA["arr/0"],
            ".zgroup": DATA[".zgroup"],
        }
        assert "arr/1" in store and "missing" not in store
        with pytest.raises(KeyError):
            store["missing"]
        with pytest.raises(aiostore.ReadOnlyError):
            store["x"] = b"1"
    opened = aiostore.sync.open_store(served, "r", allow_http=True, retry_config=NO_RETRIES)
    with opened:
        assert isinstance(opened, aiostore.sync.ObjectStore)
        assert opened[".zgroup"] == DATA[".zgroup"]
