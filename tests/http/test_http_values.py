"""The HTTP protocol of ``aiostore.http.app``: values, ranges, validators, listings, writes,
CORS, under asyncio and trio (requests sent to the ASGI app as raw bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
from http_helpers import RecordingStore, asgi_request

import aiostore
import aiostore.http
from aiostore import LMDBStore, LRUStoreCache, MemoryStore

pytestmark = pytest.mark.anyio

VALUE = bytes(range(256)) * 4  # 1024 bytes
DATA = {
    "arr/.zarray": b'{"zarr_format": 2}',
    "arr/0.0": VALUE,
    "arr/0.1": b"short",
    "arr/sub/zarr.json": b"{}",
    "empty": b"",
}


def serve(**options: object) -> tuple[RecordingStore, object]:
    store = RecordingStore(DATA)
    return store, aiostore.http.app(store, **options)  # type: ignore[arg-type]


# -- GET and HEAD --------------------------------------------------------------------------


async def test_get_returns_the_value_with_its_headers() -> None:
    _, app = serve()
    reply = await asgi_request(app, "GET", "/arr/0.0")
    assert reply.status == 200
    assert reply.body == VALUE
    assert reply.headers["content-length"] == "1024"
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.headers["accept-ranges"] == "bytes"
    etag = reply.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    metadata = await asgi_request(app, "GET", "/arr/.zarray")
    assert metadata.headers["content-type"] == "application/json"
    assert json.loads(metadata.body) == {"zarr_format": 2}
    sub = await asgi_request(app, "GET", "/arr/sub/zarr.json")
    assert sub.headers["content-type"] == "application/json"
    empty = await asgi_request(app, "GET", "/empty")
    assert (empty.status, empty.body, empty.headers["content-length"]) == (200, b"", "0")


async def test_head_has_the_headers_of_get_and_no_body() -> None:
    _, app = serve()
    get = await asgi_request(app, "GET", "/arr/0.0")
    head = await asgi_request(app, "HEAD", "/arr/0.0")
    assert head.status == 200 and head.body == b""
    for name in ("content-length", "content-type", "etag", "accept-ranges"):
        assert head.headers[name] == get.headers[name], name


@pytest.mark.parametrize("limit", [1 << 16, 16], ids=["read-whole", "read-range"])
async def test_missing_keys_and_directories_without_a_slash_are_404(limit: int) -> None:
    # (getsize of a "directory" sums its children's sizes: past the limit, a HEAD checks)
    _, app = serve(etag_read_limit=limit)
    for method in ("GET", "HEAD"):
        assert (await asgi_request(app, method, "/arr/9.9")).status == 404
        assert (await asgi_request(app, method, "/arr")).status == 404  # the index is /arr/
        assert (await asgi_request(app, method, "/arr/0.0", [("Range", "bytes=0-1")])).status == 206
        assert (await asgi_request(app, method, "/nothing", [("Range", "bytes=0-1")])).status == 404
        assert (await asgi_request(app, method, "/arr", [("Range", "bytes=0-1")])).status == 404
        assert (await asgi_request(app, method, "/arr", [("Range", "bytes=5000-")])).status == 404


async def test_head_of_a_large_value_reads_only_its_size() -> None:
    store, app = serve(etag_read_limit=16)
    head = await asgi_request(app, "HEAD", "/arr/0.0")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "1024")
    assert "etag" not in head.headers
    assert not [call for call in store.calls if call[0] == "get"]


async def test_etag_changes_with_the_value_and_if_none_match_answers_304(tmp_path: Path) -> None:
    store, app = serve(read_only=False)
    first = await asgi_request(app, "GET", "/arr/0.1")
    etag = first.headers["etag"]
    again = await asgi_request(app, "GET", "/arr/0.1", [("If-None-Match", etag)])
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", etag)
    assert "content-length" not in again.headers
    for header in (f'"other", W/{etag}', "*"):
        assert (await asgi_request(app, "GET", "/arr/0.1", [("If-None-Match", header)])).status == 304
    assert (await asgi_request(app, "HEAD", "/arr/0.1", [("If-None-Match", etag)])).status == 304
    assert (await asgi_request(app, "GET", "/arr/0.1", [("If-None-Match", '"other"')])).status == 200
    await store.set("arr/0.1", b"changed")
    changed = await asgi_request(app, "GET", "/arr/0.1", [("If-None-Match", etag)])
    assert changed.status == 200 and changed.body == b"changed" and changed.headers["etag"] != etag


# -- Range -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=1000-", 1000, 1024),
        ("bytes=-24", 1000, 1024),
        ("bytes=1020-5000", 1020, 1024),  # past the end: to the end
        ("bytes=-5000", 0, 1024),  # a suffix longer than the value: all of it
        ("bytes=1023-1023", 1023, 1024),
    ],
)
@pytest.mark.parametrize("limit", [1 << 16, 16], ids=["read-whole", "read-range"])
async def test_single_and_suffix_ranges(header: str, start: int, stop: int, limit: int) -> None:
    store, app = serve(etag_read_limit=limit)
    etag = (await asgi_request(app, "GET", "/arr/0.0")).headers["etag"]
    store.calls.clear()
    reply = await asgi_request(app, "GET", "/arr/0.0", [("Range", header)])
    assert reply.status == 206
    assert reply.body == VALUE[start:stop]
    assert reply.headers["content-range"] == f"bytes {start}-{stop - 1}/1024"
    assert reply.headers["content-length"] == str(stop - start)
    gets = [byte_range for hook, _, byte_range in store.calls if hook == "get"]
    if limit < len(VALUE):
        # A large value: only the range is read, and the answer has no ETag.
        assert gets == [(start, stop)]
        assert "etag" not in reply.headers
    else:
        assert reply.headers["etag"] == etag
    head = await asgi_request(app, "HEAD", "/arr/0.0", [("Range", header)])
    assert (head.status, head.body) == (206, b"")
    assert head.headers["content-range"] == f"bytes {start}-{stop - 1}/1024"


@pytest.mark.parametrize("limit", [1 << 16, 16], ids=["read-whole", "read-range"])
@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
async def test_a_range_out_of_the_value_is_416(header: str, limit: int) -> None:
    _, app = serve(etag_read_limit=limit)
    reply = await asgi_request(app, "GET", "/arr/0.0", [("Range", header)])
    assert reply.status == 416
    assert reply.headers["content-range"] == "bytes */1024"
    assert (await asgi_request(app, "GET", "/empty", [("Range", "bytes=0-")])).status == 416


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=x-y", "bytes=-"])
async def test_multiple_or_malformed_ranges_get_the_whole_value(header: str) -> None:
    _, app = serve()
    reply = await asgi_request(app, "GET", "/arr/0.0", [("Range", header)])
    assert (reply.status, reply.body) == (200, VALUE)


async def test_if_range_with_another_etag_gets_the_whole_value() -> None:
    _, app = serve()
    etag = (await asgi_request(app, "GET", "/arr/0.0")).headers["etag"]
    same = await asgi_request(app, "GET", "/arr/0.0", [("Range", "bytes=0-1"), ("If-Range", etag)])
    other = await asgi_request(app, "GET", "/arr/0.0", [("Range", "bytes=0-1"), ("If-Range", '"x"')])
    assert (same.status, same.body) == (206, VALUE[:2])
    assert (other.status, other.body) == (200, VALUE)


# -- listings ----------------------------------------------------------------------------------


async def test_json_listing_with_and_without_a_delimiter() -> None:
    _, app = serve()

    async def listing(query: str) -> dict[str, object]:
        reply = await asgi_request(app, "GET", "/?list&" + query)
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        return json.loads(reply.body)  # type: ignore[no-any-return]

    assert await listing("prefix=arr/&delimiter=/") == {
        "prefix": "arr/",
        "delimiter": "/",
        "keys": ["arr/.zarray", "arr/0.0", "arr/0.1"],
        "prefixes": ["arr/sub/"],
    }
    assert (await listing("delimiter=/"))["keys"] == ["empty"]
    assert (await listing("delimiter=%2F"))["prefixes"] == ["arr/"]
    everything = await listing("prefix=arr/")
    assert everything["keys"] == sorted(k for k in DATA if k.startswith("arr/"))
    assert everything["prefixes"] == [] and everything["delimiter"] is None
    assert (await listing("prefix=arr/0.&delimiter=/"))["keys"] == ["arr/0.0", "arr/0.1"]
    assert (await listing("prefix=arr/.z"))["keys"] == ["arr/.zarray"]
    assert (await listing("prefix=nothing/&delimiter=/"))["keys"] == []


@pytest.mark.parametrize(
    "query",
    ["prefix=../", "prefix=/etc/", "prefix=a//b/", "prefix=%2e%2e/x", "prefix=a%00", "delimiter=.", "x=1"],
)
async def test_bad_listing_requests_are_400_before_any_store_call(query: str) -> None:
    store, app = serve()
    reply = await asgi_request(app, "GET", "/?list&" + query)
    assert reply.status == 400, reply.body
    assert store.calls == []


async def test_html_index_of_a_directory() -> None:
    _, app = serve()
    page = await asgi_request(app, "GET", "/arr/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    text = page.body.decode()
    for link in ('href=".zarray"', 'href="0.0"', 'href="0.1"', 'href="sub/"'):
        assert link in text
    root = await asgi_request(app, "GET", "/")
    assert 'href="arr/"' in root.body.decode() and 'href="empty"' in root.body.decode()
    assert (await asgi_request(app, "GET", "/missing/")).status == 404
    assert (await asgi_request(app, "GET", "/", [])).status == 200
    assert (await asgi_request(app, "GET", "/?list")).headers["content-type"] == "application/json"
    empty = aiostore.http.app(MemoryStore())
    assert (await asgi_request(empty, "GET", "/")).status == 200


# -- writes ------------------------------------------------------------------------------------


async def test_writes_are_refused_by_default() -> None:
    store, app = serve()
    for method in ("PUT", "DELETE", "POST", "PATCH"):
        reply = await asgi_request(app, method, "/arr/0.1", body=b"new")
        assert reply.status == 405
        assert reply.headers["allow"] == "GET, HEAD, OPTIONS"
    assert store.data == DATA
    assert not [call for call in store.calls if call[0] in ("set", "delete")]
    options = await asgi_request(app, "OPTIONS", "/arr/0.1")
    assert (options.status, options.headers["allow"]) == (204, "GET, HEAD, OPTIONS")


async def test_put_and_delete_when_writes_are_enabled() -> None:
    store, app = serve(read_only=False)
    created = await asgi_request(app, "PUT", "/new/key", body=b"hello")
    assert created.status == 201 and store.data["new/key"] == b"hello"
    replaced = await asgi_request(app, "PUT", "/new/key", body=b"again")
    assert replaced.status == 204 and store.data["new/key"] == b"again"
    assert replaced.headers["etag"] == (await asgi_request(app, "GET", "/new/key")).headers["etag"]
    assert (await asgi_request(app, "DELETE", "/new/key")).status == 204
    assert "new/key" not in store.data
    assert (await asgi_request(app, "DELETE", "/new/key")).status == 404
    assert (await asgi_request(app, "PUT", "/dir/", body=b"x")).status == 405
    options = await asgi_request(app, "OPTIONS", "/arr/0.1")
    assert options.headers["allow"] == "GET, HEAD, PUT, DELETE, OPTIONS"


async def test_put_larger_than_the_limit_is_413() -> None:
    store, app = serve(read_only=False, max_put_size=4)
    assert (await asgi_request(app, "PUT", "/big", body=b"12345")).status == 413
    assert (await asgi_request(app, "PUT", "/small", body=b"1234")).status == 201
    assert "big" not in store.data


async def test_writes_need_an_explicit_false_and_a_writable_store() -> None:
    with pytest.raises(ValueError, match="read-only"):
        aiostore.http.app(MemoryStore(read_only=True), read_only=False)
    with pytest.raises(TypeError):
        aiostore.http.app(MemoryStore(), read_only=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        aiostore.http.app({"a": b"1"})  # type: ignore[arg-type]


async def test_a_zip_store_cannot_delete(tmp_path: Path) -> None:
    async with aiostore.ZipStore(str(tmp_path / "x.zip"), mode="a") as store:
        await store.set("a", b"1")
        app = aiostore.http.app(store, read_only=False)
        reply = await asgi_request(app, "DELETE", "/a")
        assert reply.status == 405 and "allow" in reply.headers


# -- CORS, cache, URLs, key limits -------------------------------------------------------------


async def test_cors_headers_only_when_asked_for() -> None:
    _, plain = serve()
    reply = await asgi_request(plain, "GET", "/arr/0.0", [("Origin", "https://viewer.example")])
    assert "access-control-allow-origin" not in reply.headers
    _, app = serve(cors_origins="https://viewer.example, https://other.example")
    reply = await asgi_request(app, "GET", "/arr/0.0", [("Origin", "https://viewer.example")])
    assert reply.headers["access-control-allow-origin"] == "https://viewer.example"
    exposed = {h.strip().lower() for h in reply.headers["access-control-expose-headers"].split(",")}
    assert {"content-range", "content-length", "etag", "accept-ranges"} <= exposed
    preflight = await asgi_request(
        app,
        "OPTIONS",
        "/arr/0.0",
        [
            ("Origin", "https://viewer.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range, if-none-match"),
        ],
    )
    assert preflight.status == 200
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    _, star = serve(cors_origins="*")
    reply = await asgi_request(star, "GET", "/arr/0.0", [("Origin", "https://any.example")])
    assert reply.headers["access-control-allow-origin"] == "*"


async def test_a_cache_in_front_serves_repeated_reads() -> None:
    store, app = serve(cache_size=1 << 20)
    assert isinstance(app.state.store, LRUStoreCache)  # type: ignore[attr-defined]
    for _ in range(3):
        assert (await asgi_request(app, "GET", "/arr/0.1")).body == b"short"
    assert [call for call in store.calls if call[0] == "get"] == [("get", "arr/0.1", None)]


async def test_a_store_url_is_opened_and_closed_by_the_lifespan(tmp_path: Path) -> None:
    path = str(tmp_path / "data.mdb")
    async with LMDBStore(path) as store:
        await store.set("a/b", b"value")
    app = aiostore.http.app(f"lmdb://{path}")
    assert (await asgi_request(app, "GET", "/a/b")).status == 503
    async with app.router.lifespan_context(app):
        opened = app.state.store
        assert (await asgi_request(app, "GET", "/a/b")).body == b"value"
        assert opened.read_only
    assert opened.closed and app.state.store is None
    assert (await asgi_request(app, "GET", "/a/b")).status == 503


async def test_a_key_past_the_stores_limits_is_400(tmp_path: Path) -> None:
    async with LMDBStore(str(tmp_path / "data.mdb")) as store:
        app = aiostore.http.app(store)
        assert (await asgi_request(app, "GET", "/" + "k" * 600)).status == 400
        assert (await asgi_request(app, "GET", "/" + "k" * 100)).status == 404


async def test_httpx_client_over_the_asgi_transport() -> None:
    _, app = serve()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        replies = []
        async with anyio.create_task_group() as tg:
            for key in ("arr/0.0", "arr/0.1", "arr/.zarray"):

                async def fetch(key: str = key) -> None:
                    replies.append((key, (await client.get("/" + key)).content))

                tg.start_soon(fetch)
    assert dict(replies) == {k: DATA[k] for k in ("arr/0.0", "arr/0.1", "arr/.zarray")}
