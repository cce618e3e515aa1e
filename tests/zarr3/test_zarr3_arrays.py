"""zarr 3 arrays and groups (zarr formats 2 and 3) over every aiostore backend.

Each test writes through ``ZarrStore``, then reads back through a fresh adapter
-- for backends that keep their data in files, over a backend reopened from the
same path after closing the first -- so what is checked is what was stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ShardingCodec

from aiostore.abc import Store
from aiostore.zarr3 import ZarrStore

FUSED = "zarr.core.codec_pipeline.FusedCodecPipeline"

# A Zip file cannot replace an entry: rewriting a key appends a second one (and
# zipfile warns); the last one is what is read, as in zarr 2.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


@pytest.fixture(params=[2, 3], ids=["v2", "v3"])
def zarr_format(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_arrays_and_groups_round_trip(make_backend: Any, backend: Store, zarr_format: int) -> None:
    data = np.arange(20 * 30, dtype="int32").reshape(20, 30)
    root = zarr.open_group(ZarrStore(backend), mode="w", zarr_format=zarr_format)
    root.attrs["title"] = "demo"
    sub = root.create_group("sub")
    a = sub.create_array("a", shape=data.shape, chunks=(7, 8), dtype=data.dtype, fill_value=-1)
    a[:] = data
    a[2:5, 3:9] = 0  # a partial write: read-modify-write of the chunks it touches
    expected = data.copy()
    expected[2:5, 3:9] = 0
    empty = root.create_array("empty", shape=(10,), chunks=(5,), dtype="float64", fill_value=0.5)
    empty[5:] = 0.5  # all fill value: zarr stores (or deletes) no chunk

    reopened = make_backend.reopen(backend)
    again = zarr.open_group(ZarrStore(reopened), mode="r")
    assert again.metadata.zarr_format == zarr_format
    assert dict(again.attrs) == {"title": "demo"}
    assert sorted(name for name, _ in again.members(max_depth=None)) == ["empty", "sub", "sub/a"]
    np.testing.assert_array_equal(again["sub/a"][:], expected)
    np.testing.assert_array_equal(again["empty"][:], np.full(10, 0.5))
    assert again["empty"].nchunks_initialized == 0
    assert again["sub/a"].nchunks_initialized == 3 * 4


def test_sharded_array_reads_byte_ranges(
    make_backend: Any, backend: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    z = zarr.create_array(
        ZarrStore(backend),
        shape=data.shape,
        chunks=(8, 8),
        shards=(32, 32),
        dtype=data.dtype,
    )
    z[:] = data
    assert isinstance(z.metadata.codecs[0], ShardingCodec)
    reopened = zarr.open_array(ZarrStore(make_backend.reopen(backend)), mode="r")
    requests = record_calls(monkeypatch, "get", lambda args: type(args[3]).__name__)
    # Inner chunks of a shard come from byte ranges of one key (the index at its end).
    np.testing.assert_array_equal(reopened[3:20, 40:41], data[3:20, 40:41])
    assert {"SuffixByteRequest", "RangeByteRequest"} <= set(requests)
    np.testing.assert_array_equal(reopened[:], data)


def test_overwrite_and_delete(backend: Store, zarr_format: int) -> None:
    if not backend.supports_deletes:
        pytest.skip("overwriting a node deletes its keys; this backend cannot delete (ZipStore)")
    store = ZarrStore(backend)
    root = zarr.open_group(store, mode="w", zarr_format=zarr_format)
    root.create_array("x", shape=(8,), chunks=(2,), dtype="i1")[:] = 1
    root.create_array("x", shape=(6,), chunks=(3,), dtype="i1", overwrite=True)[:] = 2
    np.testing.assert_array_equal(zarr.open_array(store, path="x", mode="r")[:], np.full(6, 2))
    chunks = [
        k for k in keys_below(backend, "x/") if not k.rpartition("/")[2].startswith((".z", "zarr.json"))
    ]
    assert len(chunks) == 2  # the old array's four chunks are gone
    del root["x"]
    assert list(root.array_keys()) == []
    assert keys_below(backend, "x/") == []


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")
def test_consolidated_metadata(make_backend: Any, backend: Store, zarr_format: int) -> None:
    root = zarr.open_group(ZarrStore(backend), mode="w", zarr_format=zarr_format)
    root.create_array("a", shape=(3,), dtype="f4")[:] = [1, 2, 3]
    root.create_group("g").create_array("b", shape=(2,), dtype="i8")[:] = [4, 5]
    zarr.consolidate_metadata(ZarrStore(backend))
    again = zarr.open_consolidated(ZarrStore(make_backend.reopen(backend)), zarr_format=zarr_format)
    assert again.metadata.consolidated_metadata is not None
    np.testing.assert_array_equal(again["g/b"][:], [4, 5])


def test_fused_pipeline_uses_the_sync_protocol(
    make_backend: Any, backend: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zarr's opt-in FusedCodecPipeline reads and writes through get_sync/set_sync."""
    data = np.arange(100, dtype="float64")
    store = ZarrStore(backend)
    assert store._supports_sync_io == backend.supports_sync_io
    sync_writes = record_calls(monkeypatch, "set_sync", lambda args: args[1])
    with zarr.config.set({"codec_pipeline.path": FUSED}):
        z = zarr.create_array(store, shape=(100,), chunks=(10,), dtype="float64")
        z[:] = data
        z[95:] = 0
        data[95:] = 0
        np.testing.assert_array_equal(
            zarr.open_array(ZarrStore(make_backend.reopen(backend)), mode="r")[:], data
        )
    assert len(sync_writes) == (11 if backend.supports_sync_io else 0)  # ten chunks, then one again


def test_nbytes_stored(backend: Store) -> None:
    z = zarr.create_array(ZarrStore(backend), shape=(100,), chunks=(10,), dtype="uint8", compressors=None)
    z[:] = 7
    metadata = backend.get_sync("zarr.json")
    assert z.nbytes_stored() == 100 + len(metadata)


def keys_below(backend: Store, prefix: str) -> list[str]:
    return sorted(backend.list_sync(prefix))


def record_calls(monkeypatch: pytest.MonkeyPatch, method: str, what: Any) -> list[Any]:
    """Record ``what(args)`` for every call of ``ZarrStore.<method>`` (args include self)."""
    seen: list[Any] = []
    original = getattr(ZarrStore, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen.append(what((*args, *kwargs.values(), None, None, None, None)))
        return original(*args, **kwargs)

    monkeypatch.setattr(ZarrStore, method, wrapper)
    return seen
