"""``aiostore.open_store`` and ``aiostore.sync.open_store``: every scheme, every mode, every refusal.

File stores are opened in ``tmp_path``; S3 is moto's server (a fresh bucket per
test). The file-store classes themselves refuse a URL (pointing to
``open_store``) and create nothing, rather than a local folder named ``s3:``.
"""

from __future__ import annotations

import dbm.dumb
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import MotoS3

import aiostore
import aiostore.sync
from aiostore import Store
from aiostore.stores.urls import SCHEMES
from aiostore.sync import SyncStore

pytestmark = pytest.mark.anyio

#: scheme -> (URL of a store at ``path``, async class, sync twin, constructor options)
FILE_SCHEMES: dict[str, tuple[Callable[[Path], str], type[Store], type[SyncStore[Any]], dict[str, Any]]] = {
    "plain": (str, aiostore.DirectoryStore, aiostore.sync.DirectoryStore, {}),
    "file": (lambda p: p.as_uri(), aiostore.DirectoryStore, aiostore.sync.DirectoryStore, {}),
    "nested": (
        lambda p: f"nested://{p}",
        aiostore.NestedDirectoryStore,
        aiostore.sync.NestedDirectoryStore,
        {},
    ),
    "zip": (lambda p: f"zip://{p}", aiostore.ZipStore, aiostore.sync.ZipStore, {}),
    "dbm": (lambda p: f"dbm://{p}", aiostore.DBMStore, aiostore.sync.DBMStore, {"open": dbm.dumb.open}),
    "lmdb": (lambda p: f"lmdb://{p}", aiostore.LMDBStore, aiostore.sync.LMDBStore, {}),
}
DATA = {"a": b"1", "b/c": b"22"}


async def _keys(store: Store) -> list[str]:
    return sorted([key async for key in store.list()])


# -- every scheme -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", list(FILE_SCHEMES))
async def test_file_schemes(scheme: str, tmp_path: Path, anyio_backend: str) -> None:
    make_url, cls, _, options = FILE_SCHEMES[scheme]
    url = make_url(tmp_path / "store")
    store = await aiostore.open_store(url, **options)  # mode "a": created
    assert type(store) is cls and not store.read_only
    async with store:
        await store.set_many(DATA)
    assert os.listdir(tmp_path)  # on disk, where the URL says
    async with await aiostore.open_store(url, "r", **options) as view:
        assert type(view) is cls and view.read_only
        assert await view.get_many([*DATA, "x"]) == DATA
        with pytest.raises(aiostore.ReadOnlyError):
            await view.set("x", b"1")


@pytest.mark.parametrize("scheme", list(FILE_SCHEMES))
def test_file_schemes_sync(scheme: str, tmp_path: Path) -> None:
    make_url, _, twin, options = FILE_SCHEMES[scheme]
    url = make_url(tmp_path / "store")
    with aiostore.sync.open_store(url, "w-", **options) as store:
        assert type(store) is twin
        store.setitems(DATA)
    with aiostore.sync.open_store(url, "r", **options) as view:
        assert type(view) is twin and view.read_only
        assert view.getitems([*DATA, "x"]) == DATA
        with pytest.raises(aiostore.ReadOnlyError):
            view["x"] = b"1"


async def test_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str) -> None:
    monkeypatch.chdir(tmp_path)
    for url, cls in [
        ("data/plain.zarr", aiostore.DirectoryStore),
        ("nested://data/nested.zarr", aiostore.NestedDirectoryStore),
        ("lmdb://data/x.mdb", aiostore.LMDBStore),
    ]:
        async with await aiostore.open_store(url) as store:
            assert type(store) is cls
            await store.set("a", b"1")
    assert sorted(os.listdir(tmp_path / "data")) == ["nested.zarr", "plain.zarr", "x.mdb"]


async def test_memory(anyio_backend: str) -> None:
    async with await aiostore.open_store("memory://") as store:
        assert type(store) is aiostore.MemoryStore and not store.read_only
        await store.set("a", b"1")
    async with await aiostore.open_store("memory://") as other:
        assert not await other.contains("a")  # each memory:// is a new, empty store
    async with await aiostore.open_store("memory://", "r") as view:
        assert view.read_only
        with pytest.raises(aiostore.ReadOnlyError):
            await view.set("a", b"1")
    twin = aiostore.sync.open_store("memory://", "w-")
    assert type(twin) is aiostore.sync.MemoryStore
    twin["a"] = b"1"
    assert dict(twin) == {"a": b"1"}
    twin.close()


async def test_s3(moto_s3: MotoS3, anyio_backend: str) -> None:
    url = moto_s3.url(moto_s3.bucket(), "data.zarr")
    options = moto_s3.options()
    async with await aiostore.open_store(url, "w-", **options) as store:
        assert isinstance(store, aiostore.ObjectStore) and not store.read_only
        assert repr(store) == f"ObjectStore({url!r})"
        await store.set_many(DATA)
    with pytest.raises(FileExistsError, match="w-"):
        await aiostore.open_store(url, "w-", **options)
    async with await aiostore.open_store(url, "a", **options) as store:
        assert await store.get_many(list(DATA)) == DATA
        await store.set("d", b"3")
    async with await aiostore.open_store(url, "r", **options) as view:
        assert view.read_only and await _keys(view) == ["a", "b/c", "d"]
        with pytest.raises(aiostore.ReadOnlyError):
            await view.set("x", b"1")
    async with await aiostore.open_store(url, "r+", **options) as store:
        assert not store.read_only
        await store.delete("d")
    async with await aiostore.open_store(url, "w", **options) as store:
        assert await _keys(store) == []  # emptied
        await store.set("z", b"9")
    twin = aiostore.sync.open_store(url, "r", **options)
    assert type(twin) is aiostore.sync.ObjectStore and dict(twin) == {"z": b"9"}
    twin.close()
    s3a = await aiostore.open_store(url.replace("s3://", "s3a://"), "r", **options)
    async with s3a:
        assert await s3a.get("z") == b"9"


async def test_cache(tmp_path: Path, moto_s3: MotoS3, anyio_backend: str) -> None:
    async with await aiostore.open_store("cache+memory://?max_size=1MiB") as cached:
        assert isinstance(cached, aiostore.LRUStoreCache) and cached.max_size == 2**20
        assert type(cached.store) is aiostore.MemoryStore
    url = f"cache+{tmp_path / 'dir.zarr'}?max_size=1000"
    async with await aiostore.open_store(url) as cached:
        assert cached.max_size == 1000 and type(cached.store) is aiostore.DirectoryStore
        await cached.set("a", b"1")
        assert await cached.get("a") == b"1"
    async with await aiostore.open_store(f"cache+{tmp_path / 'dir.zarr'}", "r") as cached:
        assert cached.max_size is None and cached.read_only and await cached.get("a") == b"1"
    s3 = moto_s3.url(moto_s3.bucket())
    async with await aiostore.open_store(f"cache+{s3}?max_size=1MiB", **moto_s3.options()) as cached:
        assert isinstance(cached.store, aiostore.ObjectStore) and cached.max_size == 2**20
        await cached.set("k", b"v")
        assert await cached.get("k") == await cached.get("k") == b"v"
    twin = aiostore.sync.open_store("cache+memory://?max_size=1MiB")
    assert type(twin) is aiostore.sync.LRUStoreCache
    twin.close()
    for bad, message in [
        ("cache+memory://?max_size=lots", "bad size"),
        ("cache+memory://?max_size=1MiB&ttl=3", "unknown cache option"),
    ]:
        with pytest.raises(ValueError, match=message):
            await aiostore.open_store(bad)


# -- modes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", list(FILE_SCHEMES))
async def test_modes(scheme: str, tmp_path: Path, anyio_backend: str) -> None:
    make_url, _, _, options = FILE_SCHEMES[scheme]
    url = make_url(tmp_path / "store")
    for mode in ("r", "r+"):
        with pytest.raises(FileNotFoundError, match=mode.replace("+", r"\+")):
            await aiostore.open_store(url, mode, **options)
    assert os.listdir(tmp_path) == []  # a refused open creates nothing
    async with await aiostore.open_store(url, "w-", **options) as store:
        await store.set_many(DATA)
    with pytest.raises(FileExistsError):
        await aiostore.open_store(url, "w-", **options)
    async with await aiostore.open_store(url, "a", **options) as store:
        assert await store.get_many(list(DATA)) == DATA
        await store.set("d", b"3")
    async with await aiostore.open_store(url, "r+", **options) as store:
        assert not store.read_only and await _keys(store) == ["a", "b/c", "d"]
        await store.set("e", b"4")
    async with await aiostore.open_store(url, "w", **options) as store:
        assert await _keys(store) == []  # emptied
        await store.set("z", b"9")
    async with await aiostore.open_store(url, "r", **options) as view:
        assert view.read_only and await view.get_many(["a", "d", "e", "z"]) == {"z": b"9"}


async def test_dbm_modes_that_create(tmp_path: Path, anyio_backend: str) -> None:
    """dbm.dumb keeps x.db.dat, x.db.dir and x.db.bak, never a file named x.db."""
    url = f"dbm://{tmp_path / 'x.db'}"
    async with await aiostore.open_store(url, "w-", open=dbm.dumb.open) as store:
        await store.set_many(DATA)
    with pytest.raises(FileExistsError):
        await aiostore.open_store(url, "w-", open=dbm.dumb.open)
    async with await aiostore.open_store(url, "a", open=dbm.dumb.open) as store:
        assert await store.get_many(list(DATA)) == DATA
    async with await aiostore.open_store(url, "w", open=dbm.dumb.open) as store:
        assert await _keys(store) == []


async def test_bad_mode(tmp_path: Path, anyio_backend: str) -> None:
    for mode in ("x", "rw", "", "R"):
        with pytest.raises(ValueError, match="mode must be one of r, r\\+, a, w, w-"):
            await aiostore.open_store(str(tmp_path / "x.zarr"), mode)
    with pytest.raises(ValueError, match="mode"):
        aiostore.sync.open_store("memory://", "x")
    assert os.listdir(tmp_path) == []


# -- refusals -----------------------------------------------------------------------------------------------
async def test_unknown_scheme_lists_the_schemes(anyio_backend: str) -> None:
    with pytest.raises(ValueError, match="unknown store URL scheme 'ftp'") as info:
        await aiostore.open_store("ftp://host/x")
    for scheme in SCHEMES:
        assert f"{scheme}://" in str(info.value)
    assert "cache+" in str(info.value) and "plain path" in str(info.value)
    with pytest.raises(ValueError, match="unknown store URL scheme 'gcs'"):
        aiostore.sync.open_store("gcs://bucket/x")
    with pytest.raises(ValueError, match="unknown store URL scheme 'ftp'"):
        await aiostore.open_store("cache+ftp://host/x?max_size=1MiB")


@pytest.mark.parametrize(
    "url",
    [
        "s3:/bucket/x",
        "s3:bucket",
        "zip:data.zip",
        "",
        "zip://",
        "lmdb://",
        "nested://",
    ],
)
async def test_malformed_urls(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="known: a plain path, file://"):
        await aiostore.open_store(url)
    with pytest.raises(ValueError, match="known: a plain path"):
        aiostore.sync.open_store(url)
    assert os.listdir(tmp_path) == []


async def test_not_a_string(anyio_backend: str) -> None:
    for url in (None, b"memory://", 3):
        with pytest.raises(ValueError, match="non-empty str"):
            await aiostore.open_store(url)  # type: ignore[arg-type]  # the point of the test


REFUSING = [
    (aiostore.DirectoryStore, {}),
    (aiostore.NestedDirectoryStore, {}),
    (aiostore.ZipStore, {}),
    (aiostore.DBMStore, {"open": dbm.dumb.open}),
    (aiostore.LMDBStore, {}),
    (aiostore.sync.DirectoryStore, {}),
    (aiostore.sync.NestedDirectoryStore, {}),
    (aiostore.sync.ZipStore, {}),
    (aiostore.sync.DBMStore, {"open": dbm.dumb.open}),
    (aiostore.sync.LMDBStore, {}),
]


@pytest.mark.parametrize(("cls", "options"), REFUSING, ids=lambda v: getattr(v, "__module__", "")[:12])
@pytest.mark.parametrize("url", ["s3://bucket/x", "file:///tmp/x", "memory://", "zip://x.zip"])
def test_file_stores_refuse_urls(
    cls: type[Any], options: dict[str, Any], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match=r"takes a file-system path, not the URL .*use aiostore\.open_store"
    ) as info:
        cls(url, **options)
    assert f"aiostore.open_store({url!r})" in str(info.value)
    assert cls.__name__ in str(info.value)
    assert os.listdir(tmp_path) == []  # no folder or file named "s3:" (or anything else)
    assert not Path("s3:").exists()
