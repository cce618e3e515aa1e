"""aiostore's hierarchy functions against zarr 2.18.7's: same bytes, and arrays zarr 2 can use.

* A property test generates argument sets (shapes, chunks, every kind of dtype
  and fill value, compressors, filters, object codecs, orders, separators,
  paths, what is already in the store, overwrite, chunk stores) and asserts that
  ``aiostore.sync.init_array`` / ``init_group`` leave a plain dict exactly as
  ``zarr.storage.init_array`` / ``init_group`` do -- or, where zarr 2 raises,
  that aiostore raises too and leaves the store untouched.
* Arrays initialised by aiostore in each aiostore store open and round-trip
  data with zarr 2.
* ``migrate_1to2`` and the listing functions agree with zarr 2's.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, MutableMapping
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numcodecs
import numpy as np
import pytest
import zarr
import zarr.storage as zs
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from zarr import meta_v1
from zarr.util import json_dumps

import aiostore.sync as sync

# -- generated argument sets ---------------------------------------------------------------

SIMPLE_DTYPES: list[Any] = [
    "<i1", ">i2", "<i4", ">i8", "|u1", "<u2", ">u4", "<u8",
    "<f2", ">f4", "<f8", ">f8", "<c8", ">c16", "|b1",
    "<M8[ns]", ">M8[D]", "<m8[s]", "<m8[us]",
    "|S1", "|S6", "<U1", ">U4", "|V3",
    [("a", "<i4"), ("b", "|S2")],
    [("x", "<f8"), ("y", "|b1"), ("z", "<U2")],
    "(2,)<i2", "(3,2)|u1",
]  # fmt: skip
OBJECT_DTYPES: list[Any] = [str, "str", bytes, "bytes", "array:i4", "array:<f8", object, "object"]

COMPRESSORS = [
    "default",
    None,
    "none",
    numcodecs.Zlib(1),
    numcodecs.Zlib(9),
    numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE),
    numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.AUTOSHUFFLE, blocksize=1 << 16),
    numcodecs.BZ2(5),
    numcodecs.LZMA(preset=1),
]
FILTERS: list[Any] = [
    None,
    [],
    [numcodecs.Delta("<i4")],
    [numcodecs.FixedScaleOffset(offset=1.5, scale=10, dtype="<f8", astype="<i4")],
    [numcodecs.Quantize(3, "<f8"), numcodecs.Zlib(1)],
]
OBJECT_CODECS = [None, numcodecs.JSON(), numcodecs.Pickle(), numcodecs.MsgPack(), numcodecs.VLenUTF8()]
PATHS = [None, "", "a", "a/b", "/x//y/", "arr/deep/er"]
# What the store holds before the call; {} means "at the path", with "" and the path substituted.
EXISTING = ["empty", "array at path", "group at path", "array above", "chunks under path", "root group"]


def fill_values(dtype: Any) -> st.SearchStrategy[Any]:
    """Fill values for ``dtype``: typical ones, special ones, and some that do not fit."""
    common = st.sampled_from([None, 0, 1, -1, "abc", b"xy", 2.5])
    if dtype in OBJECT_DTYPES:
        return st.one_of(common, st.text(max_size=5), st.integers(-(2**40), 2**40))
    np_dtype = np.dtype(dtype).base
    if np_dtype.kind == "V" and np_dtype.fields is None:
        specific: st.SearchStrategy[Any] = st.binary(max_size=np_dtype.itemsize)
    else:
        specific = hnp.from_dtype(np_dtype)
    extra: list[Any] = []
    if np_dtype.kind in "fc":
        extra = [float("nan"), float("inf"), -float("inf"), "NaN", 1e300, complex(1, -2)]
    elif np_dtype.kind in "mM":
        extra = ["NaT", np.datetime64("2001-02-03"), "2020-01-01", 12345]
    elif np_dtype.kind == "U":
        extra = ["é☃", "", "\x00"]
    return st.one_of(common, specific, st.sampled_from(extra or [None]))


@st.composite
def chunk_specs(draw: st.DrawFn) -> Any:
    return draw(
        st.one_of(
            st.sampled_from([True, False, None]),
            st.integers(1, 500),
            st.lists(st.one_of(st.integers(1, 500), st.just(-1), st.none()), max_size=4).map(tuple),
        )
    )


@st.composite
def init_array_calls(draw: st.DrawFn, dtype: Any) -> tuple[dict[str, Any], str, bool]:
    if dtype in OBJECT_DTYPES:
        object_codec = draw(st.sampled_from(OBJECT_CODECS))
    else:
        object_codec = draw(st.sampled_from([None, None, None, numcodecs.JSON()]))
    shape = draw(
        st.one_of(
            st.integers(0, 10**7),
            st.lists(st.integers(0, 3000), max_size=3).map(tuple),
            st.lists(st.integers(1, 10**5), min_size=1, max_size=4).map(tuple),
        )
    )
    kwargs = {
        "shape": shape,
        "chunks": draw(chunk_specs()),
        "dtype": dtype,
        "compressor": draw(st.sampled_from(COMPRESSORS)),
        "fill_value": draw(fill_values(dtype)),
        "order": draw(st.sampled_from(["C", "F", "c", "f", "K"])),
        "overwrite": draw(st.booleans()),
        "path": draw(st.sampled_from(PATHS)),
        "filters": draw(st.sampled_from(FILTERS)),
        "object_codec": object_codec,
        "dimension_separator": draw(st.sampled_from([None, ".", "/"])),
    }
    return kwargs, draw(st.sampled_from(EXISTING)), draw(st.booleans())


def existing_items(kind: str, path: str | None) -> dict[str, bytes]:
    """Store contents for one of :data:`EXISTING`, built with zarr 2 itself."""
    path = zs.normalize_storage_path(path)
    prefix = path + "/" if path else ""
    store: dict[str, bytes] = {"unrelated/key": b"keep"}
    if kind == "array at path":
        zs.init_array(store, shape=10, chunks=5, path=path)
        store[prefix + "0"] = b"chunk"
    elif kind == "group at path":
        zs.init_group(store, path=path)
        store[prefix + "child/.zgroup"] = json_dumps({"zarr_format": 2})
    elif kind == "array above" and "/" in path:
        zs.init_array(store, shape=10, chunks=5, path=path.rsplit("/", 1)[0])
    elif kind == "chunks under path":
        store[prefix + "0.0"] = b"stray chunk"
    elif kind == "root group":
        zs.init_group(store)
    return store


def zarr_bytes_with_positive_chunks(store: dict[str, bytes]) -> dict[str, bytes]:
    """zarr 2's result, except that a whole zero-length axis gets chunk length 1
    (zarr 2 writes 0 there and then cannot open the array; aiostore writes 1)."""
    fixed = dict(store)
    for key, value in store.items():
        if key.endswith(".zarray"):
            document = json.loads(value)
            if 0 in document["chunks"]:
                document["chunks"] = [max(c, 1) for c in document["chunks"]]
                fixed[key] = json_dumps(document)
    return fixed


def run_both(
    zarr_fn: Callable[..., None],
    aiostore_fn: Callable[..., None],
    existing: dict[str, bytes],
    chunk_store: dict[str, bytes] | None,
    kwargs: dict[str, Any],
) -> None:
    z_store, a_store = dict(existing), dict(existing)
    z_chunks = None if chunk_store is None else dict(chunk_store)
    a_chunks = None if chunk_store is None else dict(chunk_store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            zarr_fn(z_store, chunk_store=z_chunks, **kwargs)
            zarr_error = None
        except Exception as exc:
            zarr_error = exc
        try:
            aiostore_fn(a_store, chunk_store=a_chunks, **kwargs)
            aiostore_error = None
        except Exception as exc:
            aiostore_error = exc
    if currently_in_test_context():  # shown by --hypothesis-show-statistics
        event("both raised" if zarr_error is not None else "both wrote")
    if zarr_error is not None:
        assert aiostore_error is not None, f"zarr 2 raised {zarr_error!r}; aiostore did not"
        assert a_store == existing, f"aiostore changed the store before raising {aiostore_error!r}"
        assert a_chunks == chunk_store
    else:
        if aiostore_error is not None:
            raise AssertionError(f"aiostore raised where zarr 2 did not: {aiostore_error!r}")
        assert a_store == zarr_bytes_with_positive_chunks(z_store)
        assert a_chunks == z_chunks


@pytest.mark.parametrize("dtype", SIMPLE_DTYPES + OBJECT_DTYPES, ids=str)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_init_array_writes_what_zarr2_writes(dtype: Any, data: st.DataObject) -> None:
    # One run per dtype, so that every kind of dtype and fill value gets its share.
    kwargs, existing_kind, with_chunk_store = data.draw(init_array_calls(dtype))
    existing = existing_items(existing_kind, kwargs["path"])
    prefix = zs.normalize_storage_path(kwargs["path"])
    chunk_store = {f"{prefix}/0".lstrip("/"): b"c", "elsewhere/0": b"c"} if with_chunk_store else None
    run_both(zs.init_array, sync.init_array, existing, chunk_store, kwargs)


@settings(max_examples=150, deadline=None)
@given(
    path=st.sampled_from(PATHS),
    existing_kind=st.sampled_from(EXISTING),
    overwrite=st.booleans(),
    with_chunk_store=st.booleans(),
)
def test_init_group_writes_what_zarr2_writes(
    path: str | None, existing_kind: str, overwrite: bool, with_chunk_store: bool
) -> None:
    existing = existing_items(existing_kind, path)
    chunk_store = {"a/0": b"c", "x/y/1": b"c", "q": b"c"} if with_chunk_store else None
    run_both(zs.init_group, sync.init_group, existing, chunk_store, {"path": path, "overwrite": overwrite})


def test_seed_examples_match_zarr2() -> None:
    for kwargs in (
        {"shape": (10000, 10000), "chunks": (1000, 1000)},
        {"shape": 100000000, "chunks": 1000000, "dtype": "i1", "path": "foo"},
    ):
        run_both(zs.init_array, sync.init_array, {}, None, kwargs)


# -- arrays initialised by aiostore, used by zarr 2 ---------------------------------------------

StoreFactory = Callable[[Any], tuple[MutableMapping[str, bytes], Callable[[], MutableMapping[str, bytes]]]]


def _same(store: MutableMapping[str, bytes]) -> Callable[[], MutableMapping[str, bytes]]:
    return lambda: store


def _memory(tmp: Any) -> Any:
    store = sync.MemoryStore()
    return store, _same(store)


def _mapping(tmp: Any) -> Any:
    store = sync.MappingStore({})
    return store, _same(store)


def _directory(tmp: Any) -> Any:
    path = str(tmp / "data.zarr")
    return sync.DirectoryStore(path), lambda: sync.DirectoryStore(path)


def _nested(tmp: Any) -> Any:
    path = str(tmp / "nested.zarr")
    return sync.NestedDirectoryStore(path), lambda: sync.NestedDirectoryStore(path)


def _reopen(cls_name: str, path: str, **read_kwargs: Any) -> Callable[[Any], Any]:
    def factory(tmp: Any) -> Any:
        cls = getattr(sync, cls_name)
        full = str(tmp / path)
        store = cls(full)

        def reopen() -> Any:
            store.close()
            return cls(full, **read_kwargs)

        return store, reopen

    return factory


STORES: dict[str, tuple[str, StoreFactory]] = {
    "memory": ("MemoryStore", _memory),
    "mapping": ("MappingStore", _mapping),
    "directory": ("DirectoryStore", _directory),
    "nested-directory": ("NestedDirectoryStore", _nested),
    "zip": ("ZipStore", _reopen("ZipStore", "data.zip", mode="r")),
    "dbm": ("DBMStore", _reopen("DBMStore", "data.db", flag="r")),
    "lmdb": ("LMDBStore", _reopen("LMDBStore", "data.mdb")),
}

ARRAYS: dict[str, tuple[dict[str, Any], Any]] = {
    "float-nan": ({"shape": (10, 7), "chunks": (3, 4), "dtype": "<f8", "fill_value": float("nan")}, None),
    "int-F-zlib": (
        {
            "shape": (9, 5),
            "chunks": 4,
            "dtype": ">i2",
            "order": "F",
            "fill_value": -3,
            "compressor": numcodecs.Zlib(2),
        },
        None,
    ),
    "structured": (
        {"shape": 12, "chunks": 5, "dtype": [("a", "<i4"), ("b", "S3")], "fill_value": (7, b"xy")},
        None,
    ),
    "text-object": ({"shape": 6, "chunks": 4, "dtype": str, "fill_value": ""}, None),
    "datetime-slash": (
        {"shape": (5, 5), "chunks": 2, "dtype": "M8[s]", "fill_value": "NaT", "dimension_separator": "/"},
        None,
    ),
    "complex-filters": (
        {"shape": 20, "chunks": 6, "dtype": "<c8", "fill_value": 1 - 2j, "filters": [numcodecs.Shuffle(8)]},
        None,
    ),
    "zero-d": ({"shape": (), "dtype": "u2", "fill_value": 5}, None),
    "empty-axis": ({"shape": (0, 3), "chunks": False, "dtype": "f4"}, None),
}


def _data(array: zarr.Array) -> Any:
    rng = np.random.default_rng(0)
    dtype = array.dtype
    if dtype.hasobject:
        return np.array([f"v{i}é" for i in range(array.size)], dtype=object).reshape(array.shape)
    raw = rng.integers(0, 255, size=array.nbytes, dtype=np.uint8)
    data = raw.view(dtype).reshape(array.shape)
    if dtype.kind in "fc":  # NaN payloads do not compare equal: use plain numbers
        data = rng.normal(size=array.shape).astype(dtype)
    if dtype.kind in "mM":
        data = np.arange(array.size).astype("i8").view(dtype).reshape(array.shape)
    return data


@pytest.mark.parametrize("array_name", list(ARRAYS))
@pytest.mark.parametrize("store_name", list(STORES))
def test_zarr2_uses_arrays_that_aiostore_initialised(store_name: str, array_name: str, tmp_path: Any) -> None:
    cls_name, factory = STORES[store_name]
    if not hasattr(sync, cls_name):
        pytest.skip(f"aiostore.sync has no {cls_name} yet")
    kwargs, _ = ARRAYS[array_name]
    store, reopen = factory(tmp_path)
    sync.init_array(store, path="group/array", **kwargs)

    z = zarr.open_array(store, mode="r+", path="group/array")
    expected_fill = zarr.open_array(zs.KVStore(_zarr_reference(kwargs)), mode="r").fill_value
    _assert_same_fill(z.fill_value, expected_fill)
    data = _data(z)
    z[...] = data
    store = reopen()
    z = zarr.open_array(store, mode="r", path="group/array")
    assert z.shape == np.shape(data) and z.dtype == np.asarray(data).dtype
    assert np.array_equal(z[...], data)
    group = zarr.open_group(store, mode="r")
    assert list(group.group_keys()) == ["group"] and "array" in group["group"]


def _zarr_reference(kwargs: dict[str, Any]) -> dict[str, bytes]:
    store: dict[str, bytes] = {}
    zs.init_array(store, **kwargs)
    return zarr_bytes_with_positive_chunks(store)


def _assert_same_fill(actual: Any, expected: Any) -> None:
    if isinstance(expected, float | np.floating) and np.isnan(expected):
        assert np.isnan(actual)
    elif isinstance(expected, np.datetime64) and np.isnat(expected):
        assert np.isnat(actual)
    else:
        assert actual == expected


def test_aiostore_init_array_on_a_zarr2_store(tmp_path: Any) -> None:
    store = zs.DirectoryStore(str(tmp_path / "z2"))
    sync.init_array(store, shape=(4, 4), chunks=2, dtype="i4", path="x/y", fill_value=9)
    z = zarr.open_array(store, mode="r+", path="x/y")
    assert z[0, 0] == 9
    z[...] = np.arange(16).reshape(4, 4)
    assert sync.listdir(store, "x/y") == zs.listdir(store, "x/y")
    assert sync.getsize(store, "x/y") == zs.getsize(store, "x/y")
    sync.rename(store, "x", "w")
    assert np.array_equal(zarr.open_array(store, mode="r", path="w/y")[...], np.arange(16).reshape(4, 4))


# -- migrate_1to2 -----------------------------------------------------------------------------


V1_ARRAYS: list[dict[str, Any]] = [
    {"compression": "zlib", "compression_opts": 1},
    {"compression": None, "compression_opts": None},
    {"compression": "none", "compression_opts": None, "fill_value": float("nan")},
    {"compression": "blosc", "compression_opts": {"cname": "lz4", "clevel": 5, "shuffle": 1}},
    {"compression": "bz2", "compression_opts": 9, "dtype": np.dtype("<i8"), "fill_value": -1},
    {"compression": "zlib", "compression_opts": 1, "dtype": np.dtype([("a", "<i4"), ("b", "<f8")])},
    {"compression": "zlib", "compression_opts": 1, "dtype": np.dtype("|b1"), "fill_value": True},
    {"compression": "zlib", "compression_opts": 1, "dtype": np.dtype("<c16"), "order": "F"},
]


@pytest.mark.parametrize("overrides", V1_ARRAYS)
def test_migrate_1to2_matches_zarr2(overrides: dict[str, Any]) -> None:
    meta = {
        "shape": (100, 3),
        "chunks": (10, 3),
        "dtype": np.dtype("<f4"),
        "fill_value": None,
        "order": "C",
        **overrides,
    }
    v1 = {
        "meta": meta_v1.encode_metadata(meta),
        "attrs": json.dumps({"title": "v1 array"}).encode("ascii"),
        "0.0": b"chunk bytes",
    }
    z_store, a_store = dict(v1), dict(v1)
    zs.migrate_1to2(z_store)
    sync.migrate_1to2(a_store)
    assert a_store == z_store
    assert zarr.open_array(zs.KVStore(a_store), mode="r").attrs["title"] == "v1 array"


# -- listing functions: aiostore's against zarr 2's -------------------------------------------


def _tree() -> dict[str, bytes]:
    store: dict[str, bytes] = {}
    zs.init_group(store, path="g/h")
    zs.init_array(store, shape=10, chunks=3, path="g/a")
    store.update({"g/a/0": b"123", "g/a/1": b"4567", "g/h/sub/x": b"8", "top": b"9"})
    return store


@pytest.mark.parametrize("kind", ["dict", "zarr DirectoryStore", "aiostore DirectoryStore"])
def test_listing_functions_agree_with_zarr2(kind: str, tmp_path: Any) -> None:
    def make(name: str) -> MutableMapping[str, bytes]:
        if kind == "dict":
            store: MutableMapping[str, bytes] = {}
        elif kind == "zarr DirectoryStore":
            store = zs.DirectoryStore(str(tmp_path / name))
        else:
            store = sync.DirectoryStore(str(tmp_path / name))
        store.update(_tree())
        return store

    z_store, a_store = make("zarr"), make("aiostore")
    warnings.filterwarnings("ignore", message=".*has no `listdir` method", category=UserWarning)
    for path in (None, "", "g", "g/a", "g/a/1", "g/h", "missing"):
        assert sync.listdir(a_store, path) == zs.listdir(z_store, path), path
        assert sync.getsize(a_store, path) == zs.getsize(z_store, path), path
        assert sync.contains_array(a_store, path) == zs.contains_array(z_store, path), path
        assert sync.contains_group(a_store, path) == zs.contains_group(z_store, path), path
    for fn_pair, args in (((zs.rename, sync.rename), ("g/a", "g/b")), ((zs.rmdir, sync.rmdir), ("g/h",))):
        fn_pair[0](z_store, *args)
        fn_pair[1](a_store, *args)
        assert dict(a_store) == dict(z_store)
