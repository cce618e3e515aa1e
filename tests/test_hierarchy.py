"""The zarr v2 metadata layer: aiostore._zarr2meta.hierarchy (async) and its sync twins (no zarr here)."""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterator, MutableMapping
from typing import Any

import numcodecs
import numpy as np
import pytest

import aiostore
import aiostore.sync as sync
from aiostore import MappingStore, MemoryStore, ReadOnlyError
from aiostore._zarr2meta import hierarchy as h
from aiostore.errors import ContainsArrayError, ContainsGroupError, MetadataError

pytestmark = pytest.mark.anyio

SEED_ARRAY = """{
    "chunks": [
        1000,
        1000
    ],
    "compressor": {
        "blocksize": 0,
        "clevel": 5,
        "cname": "lz4",
        "id": "blosc",
        "shuffle": 1
    },
    "dtype": "<f8",
    "fill_value": null,
    "filters": null,
    "order": "C",
    "shape": [
        10000,
        10000
    ],
    "zarr_format": 2
}"""

SEED_PATH_ARRAY = """{
    "chunks": [
        1000000
    ],
    "compressor": {
        "blocksize": 0,
        "clevel": 5,
        "cname": "lz4",
        "id": "blosc",
        "shuffle": 1
    },
    "dtype": "|i1",
    "fill_value": null,
    "filters": null,
    "order": "C",
    "shape": [
        100000000
    ],
    "zarr_format": 2
}"""

GROUP = b'{\n    "zarr_format": 2\n}'


def meta(store: MutableMapping[str, bytes], key: str = ".zarray") -> Any:
    return json.loads(store[key])


# -- the seed's examples, verbatim, with the sync functions on a plain dict -------------


def test_seed_examples_print_the_seed_json(capsys: pytest.CaptureFixture[str]) -> None:
    from aiostore.sync import init_array

    store = dict()
    init_array(store, shape=(10000, 10000), chunks=(1000, 1000))
    assert sorted(store.keys()) == [".zarray"]
    print(store[".zarray"].decode())
    assert capsys.readouterr().out == SEED_ARRAY + "\n"

    store = dict()
    init_array(store, shape=100000000, chunks=1000000, dtype="i1", path="foo")
    assert sorted(store.keys()) == [".zgroup", "foo/.zarray"]
    print(store["foo/.zarray"].decode())
    assert capsys.readouterr().out == SEED_PATH_ARRAY + "\n"
    assert store[".zgroup"] == GROUP


# -- init_array: normalization -----------------------------------------------------------


async def test_init_array_async_on_memory_store_matches_the_seed() -> None:
    store = MemoryStore()
    await h.init_array(store, shape=(10000, 10000), chunks=(1000, 1000))
    assert (await store.get(".zarray")).decode() == SEED_ARRAY


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype", "expected"),
    [
        ((10000, 10000), True, "f8", [313, 625]),
        ((100,), None, "f8", [100]),
        ((100, 20), False, "f8", [100, 20]),
        ((100, 20), 10, "f8", [10, 10]),
        ((100, 20, 3), (5,), "f8", [5, 20, 3]),
        ((100, 20), (-1, 4), "f8", [100, 4]),
        ((100, 20), (None, 4), "f8", [100, 4]),
        ((0, 7), False, "f8", [1, 7]),  # zarr 2 writes 0 here, which it cannot open
        ((0, 7), (-1, None), "f8", [1, 7]),
        ((), True, "f8", []),
        (10, 3, "(2, 3)i2", [3, 3, 3]),  # a subarray dtype adds axes
    ],
)
async def test_chunks_normalization(shape: Any, chunks: Any, dtype: str, expected: list[int]) -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=shape, chunks=chunks, dtype=dtype)
    assert meta(store)["chunks"] == expected


async def test_subarray_dtype_extends_the_shape() -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=10, chunks=5, dtype="(2,3)<i2")
    assert meta(store)["shape"] == [10, 2, 3] and meta(store)["dtype"] == "<i2"


@pytest.mark.parametrize(
    ("dtype", "fill_value", "encoded_dtype", "encoded_fill"),
    [
        ("f8", float("nan"), "<f8", "NaN"),
        (">f4", float("inf"), ">f4", "Infinity"),
        ("f2", -np.inf, "<f2", "-Infinity"),
        ("f4", 0.1, "<f4", float(np.float32(0.1))),
        ("i2", -7, "<i2", -7),
        ("u8", 2**64 - 1, "<u8", 2**64 - 1),
        ("?", True, "|b1", True),
        ("c16", 1.5 - 2j, "<c16", [1.5, -2.0]),
        ("c8", complex("nan+infj"), "<c8", ["NaN", "Infinity"]),
        ("S4", b"ab\x00\xff", "|S4", base64.b64encode(b"ab\x00\xff").decode()),
        ("U3", "é☃x", "<U3", "é☃x"),
        ("M8[ns]", "NaT", "<M8[ns]", -(2**63)),
        ("M8[D]", "2020-01-02", "<M8[D]", 18263),
        ("m8[s]", 90, "<m8[s]", 90),
        ("V3", b"abc", "|V3", "YWJj"),
        ([("a", "<i2"), ("b", "u1")], (1, 2), [["a", "<i2"], ["b", "|u1"]], "AQAC"),
        ([("a", "<f4", (2,))], 0, [["a", "<f4", [2]]], "AAAAAAAAAAA="),
        ("i4", 0, "<i4", 0),
        ("U2", 0, "<U2", ""),
        ("f8", None, "<f8", None),
    ],
)
async def test_fill_values(dtype: Any, fill_value: Any, encoded_dtype: Any, encoded_fill: Any) -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=4, chunks=2, dtype=dtype, fill_value=fill_value)
    document = meta(store)
    assert document["dtype"] == encoded_dtype
    assert document["fill_value"] == encoded_fill


async def test_metadata_json_is_ascii_with_sorted_keys() -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=4, dtype="U2", fill_value="é")
    raw = store[".zarray"]
    assert raw.isascii() and b'"fill_value": "\\u00e9"' in raw
    keys = list(json.loads(raw))
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("dtype", "codec_id"),
    [(str, "vlen-utf8"), ("str", "vlen-utf8"), (bytes, "vlen-bytes"), ("array:i4", "vlen-array")],
)
async def test_object_convenience_dtypes(dtype: Any, codec_id: str) -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=4, dtype=dtype, filters=[numcodecs.Zlib(1)])
    document = meta(store)
    assert document["dtype"] == "|O"
    assert [f["id"] for f in document["filters"]] == [codec_id, "zlib"]


async def test_object_codec_goes_first_in_filters() -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=4, dtype=object, object_codec=numcodecs.JSON(), fill_value="x")
    document = meta(store)
    assert document["filters"][0]["id"] == "json2" and document["fill_value"] == "x"


async def test_object_codec_for_a_numeric_dtype_warns() -> None:
    store: dict[str, bytes] = {}
    with pytest.warns(UserWarning, match="only needed for object arrays"):
        await h.init_array(store, shape=4, dtype="i4", object_codec=numcodecs.JSON())
    assert meta(store)["filters"] is None


@pytest.mark.parametrize(
    ("compressor", "shape", "expected"),
    [
        ("default", 10, {"blocksize": 0, "clevel": 5, "cname": "lz4", "id": "blosc", "shuffle": 1}),
        (None, 10, None),
        ("none", 10, None),
        ([], 10, None),
        (numcodecs.Zlib(level=3), 10, {"id": "zlib", "level": 3}),
        ("default", (), None),  # a 0-d array is one value: never compressed
    ],
)
async def test_compressor(compressor: Any, shape: Any, expected: Any) -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=shape, compressor=compressor)
    assert meta(store)["compressor"] == expected


async def test_filters_order_and_dimension_separator() -> None:
    store: dict[str, bytes] = {}
    await h.init_array(
        store, shape=4, dtype="f8", filters=[numcodecs.Delta("<f8")], order="f", dimension_separator="/"
    )
    document = meta(store)
    assert document["filters"] == [{"id": "delta", "dtype": "<f8", "astype": "<f8"}]
    assert document["order"] == "F" and document["dimension_separator"] == "/"


async def test_dimension_separator_defaults_to_the_stores() -> None:
    store = MemoryStore(dimension_separator="/")
    await h.init_array(store, shape=4)
    assert json.loads(await store.get(".zarray"))["dimension_separator"] == "/"
    plain: dict[str, bytes] = {}
    await h.init_array(plain, shape=4)
    assert "dimension_separator" not in meta(plain)


# -- bad arguments: clear errors, nothing written ---------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"order": "K"}, ValueError, "order must be either 'C' or 'F'"),
        ({"order": None}, ValueError, "order must be"),
        ({"dtype": "not-a-dtype"}, TypeError, "invalid dtype 'not-a-dtype'"),
        ({"dtype": "M8"}, ValueError, "need units"),
        ({"dtype": object}, ValueError, "missing object_codec"),
        ({"path": "a/../b"}, ValueError, r"'\.' and '\.\.' segments"),
        ({"path": "../evil"}, ValueError, "segments are not allowed"),
        ({"chunks": 0}, ValueError, "at least 1"),
        ({"chunks": (2, 2)}, ValueError, "too many dimensions"),
        ({"chunks": "a"}, TypeError, "chunks must be"),
        ({"shape": None}, TypeError, "shape is None"),
        ({"shape": -1}, ValueError, "negative"),
        ({"fill_value": "abc", "dtype": "i4"}, ValueError, "fill_value 'abc' is not valid for dtype int32"),
        ({"fill_value": 1.5, "dtype": "U2"}, ValueError, "must be a str"),
        ({"compressor": "zlib"}, aiostore.errors.BadCompressorError, "expected a numcodecs Codec"),
        ({"filters": ["zlib"]}, TypeError, "each filter must be a numcodecs Codec"),
        ({"dimension_separator": "-"}, ValueError, "dimension_separator must be"),
    ],
)
async def test_bad_arguments_raise_and_leave_the_store_unchanged(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    store = {"x/.zgroup": GROUP, "other": b"keep"}
    before = dict(store)
    arguments = {"shape": 8, "path": "x/y", **kwargs}
    with pytest.raises(error, match=match):
        await h.init_array(store, **arguments)
    assert store == before


async def test_path_is_normalized() -> None:
    store: dict[str, bytes] = {}
    await h.init_array(store, shape=4, path="/a//b/")
    assert sorted(store) == [".zgroup", "a/.zgroup", "a/b/.zarray"]


async def test_read_only_store_refuses_and_is_unchanged() -> None:
    data: dict[str, bytes] = {"k": b"v"}
    with pytest.raises(ReadOnlyError):
        await h.init_array(MappingStore(data, read_only=True), shape=4, path="a")
    with pytest.raises(ReadOnlyError):
        await h.init_array(MappingStore(data, read_only=True), shape=4, overwrite=True)
    assert data == {"k": b"v"}


# -- existing arrays and groups: errors, overwrite, chunk_store ---------------------------


async def test_existing_array_or_group_is_an_error_and_nothing_changes() -> None:
    store = MemoryStore()
    await h.init_array(store, shape=4, chunks=2, path="a/b")
    await store.set("a/b/0", b"chunk")
    snapshot = {k: await store.get(k) async for k in store.list()}

    with pytest.raises(ContainsArrayError, match="path 'a/b' contains an array"):
        await h.init_array(store, shape=8, path="a/b")
    with pytest.raises(ContainsArrayError, match="'a/b'"):
        await h.init_group(store, path="a/b")
    with pytest.raises(ContainsGroupError, match="path 'a' contains a group"):
        await h.init_array(store, shape=8, path="a")
    with pytest.raises(ContainsArrayError, match="path 'a/b' contains an array"):
        await h.init_array(store, shape=8, path="a/b/c/d")  # an array above the new one
    assert {k: await store.get(k) async for k in store.list()} == snapshot


async def test_overwrite_removes_what_was_there_in_chunk_store_too() -> None:
    store: dict[str, bytes] = {}
    chunks: dict[str, bytes] = {"a/0": b"old", "a/1": b"old", "b/0": b"keep"}
    await h.init_array(store, shape=4, chunks=2, path="a", chunk_store=chunks)
    store["a/.zattrs"] = b"{}"
    await h.init_array(store, shape=6, chunks=3, dtype="i2", path="a", chunk_store=chunks, overwrite=True)
    assert sorted(store) == [".zgroup", "a/.zarray"]
    assert meta(store, "a/.zarray")["shape"] == [6]
    assert chunks == {"b/0": b"keep"}


async def test_overwrite_replaces_an_array_above_with_a_group() -> None:
    store: dict[str, bytes] = {}
    chunks: dict[str, bytes] = {"a/0": b"old"}
    await h.init_array(store, shape=4, path="a")
    store["a/0"] = b"chunk"
    await h.init_array(store, shape=4, path="a/b/c", overwrite=True, chunk_store=chunks)
    assert sorted(store) == [".zgroup", "a/.zgroup", "a/b/.zgroup", "a/b/c/.zarray"]
    assert chunks == {}


async def test_existing_parent_groups_are_kept() -> None:
    store = {".zgroup": b'{"zarr_format": 2, "mine": 1}', "a/.zgroup": GROUP, "a/.zattrs": b'{"x": 1}'}
    await h.init_array(store, shape=4, path="a/b")
    assert store[".zgroup"] == b'{"zarr_format": 2, "mine": 1}'
    assert store["a/.zattrs"] == b'{"x": 1}'


async def test_overwrite_at_the_root_clears_the_store() -> None:
    store = {"x": b"1", "y/z": b"2"}
    await h.init_group(store, overwrite=True)
    assert store == {".zgroup": GROUP}


async def test_init_group() -> None:
    store = MemoryStore()
    await h.init_group(store, path="a/b")
    assert await h.contains_group(store) and await h.contains_group(store, "a")
    assert await h.contains_group(store, "a/b") and not await h.contains_array(store, "a/b")
    assert await store.get("a/b/.zgroup") == GROUP
    with pytest.raises(ContainsGroupError):
        await h.init_group(store, path="a/b")
    await store.set("a/b/x", b"1")
    await h.init_group(store, path="a/b", overwrite=True)
    assert not await store.contains("a/b/x")


# -- contains_*, listdir, rmdir, rename, getsize -------------------------------------------


@pytest.fixture(params=["memory", "dict"])
def tree(request: pytest.FixtureRequest) -> Any:
    items = {".zgroup": GROUP, "a/.zarray": b"{}", "a/0": b"12", "a/1": b"345", "a/sub/x": b"6", "b": b"78"}
    if request.param == "memory":
        store = MemoryStore()
        store.set_many_sync(items)
        return store
    return dict(items)


async def test_contains_listdir_getsize(tree: Any) -> None:
    assert await h.contains_array(tree, "a") and not await h.contains_group(tree, "a")
    assert await h.contains_group(tree) and await h.contains_group(tree, None)
    assert not await h.contains_array(tree, "nothing")
    assert await h.listdir(tree) == [".zgroup", "a", "b"]
    assert await h.listdir(tree, "a") == [".zarray", "0", "1", "sub"]
    assert await h.getsize(tree, "a") == 2 + 2 + 3  # immediate children only
    assert await h.getsize(tree, "a/1") == 3
    assert await h.getsize(tree, "missing") == 0


async def test_rmdir_and_rename(tree: Any) -> None:
    await h.rename(tree, "a", "c/d")
    assert await h.contains_array(tree, "c/d") and not await h.contains_array(tree, "a")
    assert await h.listdir(tree, "c/d") == [".zarray", "0", "1", "sub"]
    await h.rmdir(tree, "c")
    assert await h.listdir(tree) == [".zgroup", "b"]
    await h.rmdir(tree)
    assert await h.listdir(tree) == []


async def test_paths_with_dot_segments_are_refused(tree: Any) -> None:
    for call in (h.listdir(tree, ".."), h.rmdir(tree, "a/.."), h.getsize(tree, "./a")):
        with pytest.raises(ValueError, match="segments are not allowed"):
            await call
    assert await h.contains_array(tree, "a")


class ZarrLikeStore(MutableMapping[str, bytes]):
    """A mapping with its own listdir/rmdir/rename/getsize, like a zarr 2 store."""

    def __init__(self, erasable: bool = True) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.erasable = erasable

    def __getitem__(self, key: str) -> bytes:
        return self.data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def listdir(self, path: str) -> list[str]:
        self.calls.append(("listdir", path))
        return ["own-answer"] if path == "a" else []

    def rmdir(self, path: str) -> None:
        self.calls.append(("rmdir", path))

    def rename(self, src: str, dst: str) -> None:
        self.calls.append(("rename", src, dst))

    def getsize(self, path: str) -> int:
        self.calls.append(("getsize", path))
        return 42

    def is_erasable(self) -> bool:
        return self.erasable


async def test_a_mappings_own_methods_are_used() -> None:
    mapping = ZarrLikeStore()
    mapping["a/b"] = b"1"
    assert await h.listdir(mapping, "/a/") == ["own-answer"]
    assert await h.getsize(mapping, "a") == 42
    await h.rmdir(mapping, "a")
    await h.rename(mapping, "a", "b")
    # rename asks what is at "a" and "b" first (its own listdir), as every store's rename does
    assert mapping.calls == [
        ("listdir", "a"),
        ("getsize", "a"),
        ("rmdir", "a"),
        ("listdir", "a"),
        ("listdir", "b"),
        ("rename", "a", "b"),
    ]
    assert mapping.data == {"a/b": b"1"}  # the own rmdir/rename (no-ops here) were used, not the keys


async def test_a_mapping_that_is_not_erasable_is_emptied_key_by_key() -> None:
    mapping = ZarrLikeStore(erasable=False)
    mapping.update({"a/b": b"1", "c": b"2"})
    await h.rmdir(mapping, "a")
    assert mapping.calls == [] and mapping.data == {"c": b"2"}


async def test_own_methods_respect_read_only() -> None:
    mapping = ZarrLikeStore()
    with pytest.raises(ReadOnlyError):
        await h.rmdir(MappingStore(mapping, read_only=True), "a")
    with pytest.raises(ReadOnlyError):
        await h.rename(MappingStore(mapping, read_only=True), "a", "b")
    assert await h.listdir(MappingStore(mapping, read_only=True), "a") == ["own-answer"]
    assert ("rmdir", "a") not in mapping.calls


# -- migrate_1to2 ----------------------------------------------------------------------------


def v1_store(**overrides: Any) -> dict[str, bytes]:
    document = {
        "zarr_format": 1,
        "shape": [100],
        "chunks": [10],
        "dtype": "<f4",
        "compression": "zlib",
        "compression_opts": 1,
        "fill_value": None,
        "order": "C",
        **overrides,
    }
    return {"meta": json.dumps(document).encode("ascii"), "attrs": b'{"answer": 42}', "0": b"chunk"}


@pytest.mark.parametrize(
    ("overrides", "compressor", "fill_value", "dtype"),
    [
        ({}, {"id": "zlib", "level": 1}, None, "<f4"),
        ({"compression": None, "compression_opts": None}, None, None, "<f4"),
        ({"compression": "none", "fill_value": float("nan")}, None, "NaN", "<f4"),
        (
            {"compression": "blosc", "compression_opts": {"cname": "zstd", "clevel": 3, "shuffle": 2}},
            {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2, "blocksize": 0},
            None,
            "<f4",
        ),
        ({"dtype": [["a", "<i4"], ["b", "|u1"]], "fill_value": None}, {"id": "zlib", "level": 1}, None, None),
        ({"dtype": "<i8", "fill_value": 7}, {"id": "zlib", "level": 1}, 7, "<i8"),
    ],
)
async def test_migrate_1to2(overrides: dict[str, Any], compressor: Any, fill_value: Any, dtype: Any) -> None:
    store = v1_store(**overrides)
    await h.migrate_1to2(store)
    assert sorted(store) == [".zarray", ".zattrs", "0"]
    document = meta(store)
    assert document["zarr_format"] == 2 and document["filters"] is None
    assert document["compressor"] == compressor and document["fill_value"] == fill_value
    assert document["dtype"] == (dtype or [["a", "<i4"], ["b", "|u1"]])
    assert store[".zattrs"] == b'{"answer": 42}'


async def test_migrate_1to2_errors_leave_the_store_unchanged() -> None:
    with pytest.raises(KeyError, match="meta"):
        await h.migrate_1to2({"attrs": b"{}"})
    for bad in (
        v1_store(zarr_format=2),
        v1_store(compression="no-such-codec"),
        v1_store(dtype="not-a-dtype"),
        {"meta": b"\xff not json", "attrs": b"{}"},
    ):
        before = dict(bad)
        with pytest.raises(MetadataError):
            await h.migrate_1to2(bad)
        assert bad == before


# -- errors -------------------------------------------------------------------------------------


def test_errors_are_value_errors_and_pickle() -> None:
    for cls in (ContainsArrayError, ContainsGroupError):
        error = cls("a/b")
        assert isinstance(error, ValueError)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and str(copy) == str(error) and copy.path == "a/b"
    assert issubclass(aiostore.errors.BadCompressorError, ValueError) and issubclass(
        MetadataError, ValueError
    )
    assert aiostore.ContainsArrayError is ContainsArrayError


# -- the sync twins --------------------------------------------------------------------------


def test_sync_twins_write_into_the_callers_dict() -> None:
    store: dict[str, bytes] = {}
    chunk_store: dict[str, bytes] = {"a/0": b"old"}
    sync.init_array(store, shape=4, chunks=2, path="a", chunk_store=chunk_store, overwrite=True)
    assert sorted(store) == [".zgroup", "a/.zarray"] and chunk_store == {}
    assert sync.contains_array(store, "a") and sync.contains_group(store)
    assert sync.listdir(store) == [".zgroup", "a"]
    assert sync.getsize(store, "a") == len(store["a/.zarray"])
    sync.rename(store, "a", "b")
    assert sync.contains_array(store, "b") and not sync.contains_array(store, "a")
    sync.rmdir(store, "b")
    assert sorted(store) == [".zgroup"]


def test_sync_twins_take_sync_and_async_stores() -> None:
    sync_store = sync.MemoryStore()
    sync.init_group(sync_store, path="g")
    assert sorted(sync_store) == [".zgroup", "g/.zgroup"]
    async_store = MemoryStore()
    sync.init_array(async_store, shape=3, path="x", chunk_store=sync_store)
    assert sync.contains_array(async_store, "x")
    assert sync.contains_array(sync.SyncStore(async_store), "x")
    with pytest.raises(TypeError, match="MutableMapping"):
        sync.contains_array(["not", "a", "store"])  # type: ignore[arg-type]


def test_sync_twins_raise_the_same_errors() -> None:
    store: dict[str, bytes] = {}
    sync.init_array(store, shape=4)
    with pytest.raises(ContainsArrayError):
        sync.init_array(store, shape=4)
    with pytest.raises(ValueError, match="order"):
        sync.init_array({}, shape=4, order="Z")
    store = v1_store()
    sync.migrate_1to2(store)
    assert ".zarray" in store and "meta" not in store


def test_sync_twin_signatures_match_the_async_functions() -> None:
    import inspect

    for name in ("init_array", "init_group", "contains_array", "listdir", "rename", "migrate_1to2"):
        twin, original = getattr(sync, name), getattr(h, name)
        assert inspect.signature(twin) == inspect.signature(original)
        assert twin.__module__ == "aiostore.sync" and twin.__doc__
