"""ZarrStore's lean read path: cheap reads inline, shards in one batch, zero-copy buffers.

* A blocking backend's reads that are cheap (small values in the page cache) are
  made in the event loop's thread, with no thread hop; a slow one sends reads back
  to the threads (where concurrent gets are coalesced) for a while.
* ``get_ranges``/``get_ranges_sync`` (zarr's sharding codec) read all of a shard's
  ranges in one backend batch.
* A backend that returns read-only ``memoryview``s (LMDB's zero-copy reads) gives
  zarr buffers over the same memory, and zarr reads and writes arrays over them.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

import aiostore
from aiostore.zarr3 import ZarrStore

PROTO = default_buffer_prototype()
FUSED = "zarr.core.codec_pipeline.FusedCodecPipeline"


class ThreadRecordingStore(aiostore.MappingStore):
    """A blocking backend recording each read batch: its requests and its thread;
    reads of keys in ``slow`` take 5 ms (a cold disk)."""

    def __init__(self, data: dict[str, bytes], *, slow: Sequence[str] = ()) -> None:
        super().__init__(data)
        self.reads: list[tuple[list[Any], int]] = []
        self.slow = set(slow)

    def _get_blocking(self, requests: Sequence[tuple[str, Any]]) -> list[bytes | None]:
        self.reads.append((list(requests), threading.get_ident()))
        if self.slow.intersection(key for key, _ in requests):
            time.sleep(0.005)
        return super()._get_blocking(requests)


class ViewStore(aiostore.MappingStore):
    """Hands out read-only memoryviews of its values, as LMDB's zero-copy reads do."""

    def __init__(self) -> None:
        super().__init__({})
        self.views: list[memoryview] = []

    def _get_blocking(self, requests: Sequence[tuple[str, Any]]) -> list[bytes | None]:
        out: list[Any] = []
        for value in super()._get_blocking(requests):
            if value is not None:
                value = memoryview(pickle.PickleBuffer(bytes(value)))
                assert value.readonly
                self.views.append(value)
            out.append(value)
        return out


def shares_a_view(buffer: Any, store: ViewStore) -> bool:
    array = buffer.as_numpy_array()
    return not array.flags.writeable and any(np.shares_memory(array, np.asarray(v)) for v in store.views)


# -- inline reads --------------------------------------------------------------------------


async def test_cheap_reads_are_made_in_the_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = ThreadRecordingStore({f"c/{i}": bytes([i]) for i in range(40)})
    store = ZarrStore(backend)
    loop = asyncio.get_running_loop()

    def no_hop(*args: Any) -> Any:
        raise AssertionError("a cheap read took a thread hop")

    monkeypatch.setattr(loop, "run_in_executor", no_hop)
    values = await asyncio.gather(*(store.get(f"c/{i}", PROTO) for i in range(40)))
    assert [v.to_bytes() for v in values] == [bytes([i]) for i in range(40)]  # type: ignore[union-attr]
    assert await store.get("missing", PROTO) is None
    assert {thread for _, thread in backend.reads} == {threading.get_ident()}
    assert all(len(requests) == 1 for requests, _ in backend.reads)  # each get at once, alone
    # A batch read inline is one backend call.
    backend.reads.clear()
    found = await store.get_partial_values(PROTO, [("c/1", None), ("c/2", RangeByteRequest(0, 1))])
    assert [b.to_bytes() for b in found] == [b"\x01", b"\x02"]  # type: ignore[union-attr]
    assert [len(requests) for requests, _ in backend.reads] == [2]


async def test_slow_reads_send_reads_to_the_threads_for_a_while() -> None:
    backend = ThreadRecordingStore({"slow": b"s", **{f"c/{i}": b"x" for i in range(20)}}, slow=["slow"])
    store = ZarrStore(backend)
    me = threading.get_ident()
    for _ in range(3):  # inline, 5 ms each: three slow reads in a row make them the rule
        assert (await store.get("slow", PROTO)).to_bytes() == b"s"  # type: ignore[union-attr]
    assert {thread for _, thread in backend.reads} == {me}
    backend.reads.clear()
    await asyncio.gather(*(store.get(f"c/{i}", PROTO) for i in range(20)))
    assert all(thread != me for _, thread in backend.reads)  # then the threads, in batches
    assert len(backend.reads) < 20
    await asyncio.sleep(0.15)  # the first wait after a slow read is 0.1 s
    backend.reads.clear()
    await asyncio.gather(*(store.get(f"c/{i}", PROTO) for i in range(20)))
    assert {thread for _, thread in backend.reads} == {me}  # cheap again: inline again


@pytest.mark.parametrize("backend_cls", [aiostore.MemoryStore, aiostore.LRUStoreCache])
def test_only_blocking_backends_with_disk_threads_read_inline(backend_cls: Any) -> None:
    backend = backend_cls() if backend_cls is aiostore.MemoryStore else backend_cls({}, max_size=None)
    assert ZarrStore(backend)._inline is None  # reads in the loop's thread anyway, or awaits its I/O
    assert ZarrStore(aiostore.MappingStore({}))._inline is not None


# -- shards: with zarr's merging off, all ranges of a key in one batch -------------------------

NO_MERGING = {"max_coalesced_bytes": 0}  # what array.sharding_coalesce_max_bytes=0 passes


def test_get_ranges_sync_reads_a_shard_in_one_batch() -> None:
    backend = ThreadRecordingStore({"shard": bytes(range(100))})
    store = ZarrStore(backend)
    ranges = [RangeByteRequest(i * 10, i * 10 + 10) for i in range(8)] + [SuffixByteRequest(4), None]
    found = store.get_ranges_sync("shard", ranges, prototype=PROTO, **NO_MERGING)
    assert [i for i, _ in found] == list(range(10))
    assert [b.to_bytes() for _, b in found] == [  # type: ignore[union-attr]
        *(bytes(range(i * 10, i * 10 + 10)) for i in range(8)),
        bytes(range(96, 100)),
        bytes(range(100)),
    ]
    assert [len(requests) for requests, _ in backend.reads] == [10]
    # With merging on, zarr's own: merged ranges, one get_sync each (the same answer).
    backend.reads.clear()
    merged = store.get_ranges_sync("shard", ranges, prototype=PROTO)
    assert sorted((i, b.to_bytes()) for i, b in merged) == [(i, b.to_bytes()) for i, b in found]  # type: ignore[union-attr]
    assert len(backend.reads) == 3  # the adjacent ranges, the suffix, the whole value
    # A missing shard: zarr's FileNotFoundError, in a group (as zarr's own); a bad key too.
    for key, error in [("gone", FileNotFoundError), ("a/../b", ValueError)]:
        with pytest.raises(BaseExceptionGroup) as info:
            store.get_ranges_sync(key, ranges, prototype=PROTO, **NO_MERGING)
        assert info.group_contains(error)


def test_get_ranges_sync_of_natively_async_backends_is_zarrs_own() -> None:
    backend = aiostore.LRUStoreCache(aiostore.MemoryStore({"shard": b"abcdef"}), max_size=None)
    store = ZarrStore(backend)
    ranges = [RangeByteRequest(0, 2), RangeByteRequest(4, 6)]
    found = store.get_ranges_sync("shard", ranges, prototype=PROTO, **NO_MERGING)
    assert {i: b.to_bytes() for i, b in found} == {0: b"ab", 1: b"ef"}  # type: ignore[union-attr]
    backend.close_sync()


@pytest.mark.parametrize("merging", [True, False])
def test_fused_sharded_reads(merging: bool) -> None:
    backend = ThreadRecordingStore({})
    data = np.arange(32 * 32, dtype="int16").reshape(32, 32)
    config = {"codec_pipeline.path": FUSED, **({} if merging else {"array.sharding_coalesce_max_bytes": 0})}
    with zarr.config.set(config):
        z = zarr.create_array(
            ZarrStore(backend), shape=data.shape, chunks=(4, 4), shards=(16, 16), dtype=data.dtype
        )
        z[:] = data
        backend.reads.clear()
        again = zarr.open_array(ZarrStore(backend), mode="r")
        np.testing.assert_array_equal(again[2:9, 3:30:4], data[2:9, 3:30:4])
    if not merging:  # per shard: its index, then its inner chunks in one batch
        assert max(len(requests) for requests, _ in backend.reads) > 1


# -- zero-copy buffers -----------------------------------------------------------------------


async def test_memoryviews_become_zarr_buffers_without_a_copy() -> None:
    backend = ViewStore()
    backend.set_sync("k", b"abcdef")
    store = ZarrStore(backend)
    got = await store.get("k", PROTO)
    assert got is not None and got.to_bytes() == b"abcdef" and shares_a_view(got, backend)
    ranged = await store.get("k", PROTO, RangeByteRequest(1, 3))
    assert ranged is not None and ranged.to_bytes() == b"bc" and shares_a_view(ranged, backend)
    synced = store.get_sync("k")
    assert synced is not None and shares_a_view(synced, backend)
    [partial] = await store.get_partial_values(PROTO, [("k", None)])
    assert partial is not None and shares_a_view(partial, backend)
    [(_, shard)] = store.get_ranges_sync("k", [None], prototype=PROTO)
    assert shard is not None and shares_a_view(shard, backend)


@pytest.mark.parametrize("pipeline", ["default", "fused"])
@pytest.mark.parametrize("layout", ["chunks", "shards"])
@pytest.mark.parametrize("compressors", ["auto", None], ids=["zstd", "raw"])
def test_arrays_over_read_only_memoryviews(pipeline: str, layout: str, compressors: Any) -> None:
    """zarr decodes from read-only buffers, and copies a chunk before merging a partial write into it."""
    config = {"codec_pipeline.path": FUSED} if pipeline == "fused" else {}
    backend = ViewStore()
    data = np.arange(40 * 40, dtype="int32").reshape(40, 40)
    with zarr.config.set(config):
        z = zarr.create_array(
            ZarrStore(backend),
            shape=data.shape,
            chunks=(8, 8),
            shards=(16, 16) if layout == "shards" else None,
            dtype=data.dtype,
            compressors=compressors,
        )
        z[:] = data
        z[3:13, 5:7] = -1  # partial chunks (and shards): read, decode, merge, write
        data[3:13, 5:7] = -1
        again = zarr.open_array(ZarrStore(backend), mode="r")
        np.testing.assert_array_equal(again[:], data)
        np.testing.assert_array_equal(again[2:30:3, 7:9], data[2:30:3, 7:9])
    assert backend.views  # the reads did get memoryviews
