"""ZarrStore's own behaviour: byte ranges, batching, errors, the sync protocol.

zarr's StoreTests (test_zarr3_store_suite.py) cover the protocol; these cover what
the adapter adds on top: how zarr's calls turn into aiostore batches, and the
edges zarr's suite does not reach. Every backend here keeps its data in memory.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
import pytest
import trio
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype

import aiostore
from aiostore._runtime.offload import thread_limit
from aiostore.abc import Buffer
from aiostore.errors import BatchWriteError
from aiostore.sync import SyncStore
from aiostore.zarr3 import ZarrStore

PROTO = default_buffer_prototype()


def buf(data: bytes) -> cpu.Buffer:
    return cpu.Buffer.from_bytes(data)


class RecordingStore(aiostore.MappingStore):
    """A blocking backend that records each batch call: (method, keys, thread id)."""

    def __init__(self, data: dict[str, bytes] | None = None, *, fail_keys: Sequence[str] = ()) -> None:
        super().__init__({} if data is None else data)
        self.calls: list[tuple[str, list[str], int]] = []
        self.fail_keys = set(fail_keys)
        self.gate: threading.Event | None = None  # when set, batch writes wait for it
        self.writing = threading.Event()

    def _record(self, method: str, keys: list[str]) -> None:
        self.calls.append((method, keys, threading.get_ident()))

    def _get_blocking(self, requests: Sequence[tuple[str, Any]]) -> list[bytes | None]:
        # "get_batch": a batch of whole values; "get_ranges": a batch of byte ranges
        ranged = any(byte_range is not None for _, byte_range in requests)
        self._record("get_ranges" if ranged else "get_batch", [key for key, _ in requests])
        return super()._get_blocking(requests)

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        self._record("set_batch", [k for k, _ in items])
        self.writing.set()
        if self.gate is not None:
            self.gate.wait(10)
        failed: dict[str, BaseException] = {
            key: OSError(28, "No space left on device", key) for key, _ in items if key in self.fail_keys
        }
        ok = [(key, value) for key, value in items if key not in self.fail_keys]
        try:
            super()._set_blocking(ok)
        except BatchWriteError as exc:
            failed.update(exc.failed)
        if failed:
            raise BatchWriteError(failed)

    def methods(self, name: str) -> list[list[str]]:
        return [keys for method, keys, _ in self.calls if method == name]


class NotInlineMemoryStore(aiostore.abc.Store):
    """Stands in for a natively async backend: its sync side needs the portal."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = aiostore.MemoryStore()

    async def _get(self, key: str, byte_range: Any) -> bytes:
        return await self.inner.get(key, byte_range)

    async def _set(self, key: str, value: Any) -> None:
        await self.inner.set(key, value)

    async def _delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def _contains(self, key: str) -> bool:
        return await self.inner.contains(key)

    def _list(self, prefix: str) -> Any:
        return self.inner.list(prefix)


# -- byte ranges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        (None, b"abcdef"),
        (RangeByteRequest(1, 3), b"bc"),
        (RangeByteRequest(4, 100), b"ef"),
        (RangeByteRequest(10, 20), b""),
        (RangeByteRequest(2, 2), b""),
        (OffsetByteRequest(4), b"ef"),
        (OffsetByteRequest(6), b""),
        (SuffixByteRequest(2), b"ef"),
        (SuffixByteRequest(100), b"abcdef"),
        (SuffixByteRequest(0), b""),
    ],
)
async def test_byte_requests(byte_range: Any, expected: bytes) -> None:
    for backend in (aiostore.MemoryStore(), aiostore.MappingStore({})):
        store = ZarrStore(backend)
        await backend.set("k", b"abcdef")
        got = await store.get("k", PROTO, byte_range)
        assert got is not None and got.to_bytes() == expected
        assert await store.get("missing", PROTO, byte_range) is None
        [partial] = await store.get_partial_values(PROTO, [("k", byte_range)])
        assert partial is not None and partial.to_bytes() == expected


@pytest.mark.parametrize(
    "byte_range",
    [RangeByteRequest(3, 1), RangeByteRequest(-1, 2), OffsetByteRequest(-1), SuffixByteRequest(-1)],
)
async def test_invalid_byte_requests_are_refused(byte_range: Any) -> None:
    store = ZarrStore(aiostore.MemoryStore())
    await store.set("k", buf(b"abc"))
    with pytest.raises(ValueError, match="invalid byte range"):
        await store.get("k", PROTO, byte_range)


# -- batching ----------------------------------------------------------------------------


@pytest.fixture
def hops_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapters made in the test send every read to the backend's threads (none inline)."""
    monkeypatch.setattr(ZarrStore, "inline_read_seconds", 0)


@pytest.mark.usefixtures("hops_only")
async def test_concurrent_gets_become_batches() -> None:
    backend = RecordingStore({f"c/{i}": bytes([i]) for i in range(40)})
    store = ZarrStore(backend)
    values = await asyncio.gather(*(store.get(f"c/{i}", PROTO) for i in range(40)))
    assert [v.to_bytes() for v in values] == [bytes([i]) for i in range(40)]  # type: ignore[union-attr]
    batches = backend.methods("get_batch")
    assert sorted(k for keys in batches for k in keys) == sorted(f"c/{i}" for i in range(40))
    assert len(batches) <= 4  # one batch, split over at most the disk thread limit
    assert not backend.methods("get_ranges")


@pytest.mark.usefixtures("hops_only")
async def test_get_partial_values_batches_whole_values_and_ranges() -> None:
    backend = RecordingStore({"a": b"aaaa", "b": b"bbbb", "c": b"cccc"})
    store = ZarrStore(backend)
    requests = [
        ("a", None),
        ("missing", None),
        ("b", RangeByteRequest(1, 3)),
        ("b", None),
        ("c", SuffixByteRequest(1)),
        ("missing", OffsetByteRequest(1)),
        ("a", RangeByteRequest(0, 1)),
    ]
    results = await store.get_partial_values(PROTO, iter(requests))
    assert [None if r is None else r.to_bytes() for r in results] == [
        b"aaaa",
        None,
        b"bb",
        b"bbbb",
        b"c",
        None,
        b"a",
    ]
    assert len(backend.methods("get_batch")) == 1  # the whole values, in one batch
    assert [sorted(keys) for keys in backend.methods("get_ranges")] == [["a", "b", "c", "missing"]]
    # ... and the ranges in another, in one thread hop


@pytest.mark.parametrize("one_writer", [True, False])
async def test_concurrent_sets_become_one_batch(one_writer: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = RecordingStore()
    monkeypatch.setattr(backend, "split_batches", not one_writer)
    store = ZarrStore(backend)
    await asyncio.gather(*(store.set(f"c/{i}", buf(bytes([i]))) for i in range(30)))
    assert backend.mapping == {f"c/{i}": bytes([i]) for i in range(30)}
    batches = backend.methods("set_batch")
    assert sorted(k for keys in batches for k in keys) == sorted(f"c/{i}" for i in range(30))
    # One batch: for a backend with one writer, one call; else spread over its threads
    # (a small write costs more than a thread hop).
    assert len(batches) == (1 if one_writer else thread_limit("disk"))


async def test_a_failed_write_fails_only_its_own_set() -> None:
    backend = RecordingStore(fail_keys=["c/bad"])
    store = ZarrStore(backend)
    results = await asyncio.gather(
        *(store.set(key, buf(b"x")) for key in ["c/0", "c/bad", "c/1"]), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], OSError) and "No space left" in str(results[1])
    assert backend.mapping == {"c/0": b"x", "c/1": b"x"}


async def test_a_bad_key_or_value_fails_only_its_own_set() -> None:
    backend = aiostore.MemoryStore()
    store = ZarrStore(backend)
    results = await asyncio.gather(
        store.set("a", buf(b"1")),
        store.set("x/../y", buf(b"2")),
        store.set("b", b"not a zarr buffer"),  # type: ignore[arg-type]
        store.set("c", buf(b"3")),
        return_exceptions=True,
    )
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], ValueError) and "'..'" in str(results[1])
    assert isinstance(results[2], TypeError) and "zarr Buffer" in str(results[2])
    assert backend.root == {"a": b"1", "c": b"3"}


async def test_cancelled_set_returns_only_after_its_write_landed() -> None:
    backend = RecordingStore()
    backend.gate = threading.Event()
    store = ZarrStore(backend)
    task = asyncio.ensure_future(store.set("k", buf(b"new")))
    await anyio.to_thread.run_sync(backend.writing.wait, 10)  # the batch is in a thread
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # waits for the thread: the write cannot be recalled
    backend.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.mapping == {"k": b"new"}


async def test_zarr_calls_do_not_use_anyio_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """On zarr's own loop anyio's to_thread costs milliseconds a hop (see
    aiostore._runtime.offload.executor_hops): the adapter's hops go through asyncio."""

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("anyio.to_thread.run_sync was used")

    backend = RecordingStore({"a": b"1"})
    store = ZarrStore(backend)
    monkeypatch.setattr(anyio.to_thread, "run_sync", refuse)
    await store.set("b/c", buf(b"2"))
    assert (await store.get("a", PROTO)).to_bytes() == b"1"  # type: ignore[union-attr]
    assert await store.exists("b/c") and await store.getsize("b/c") == 1
    assert sorted([k async for k in store.list()]) == ["a", "b/c"]
    assert [k async for k in store.list_dir("b")] == ["c"]
    assert await store.getsize_prefix("b") == 1
    await store.delete("a")
    await store.delete_dir("b")
    assert await store.is_empty("")


# -- writes, deletes, sizes ------------------------------------------------------------------


async def test_delete_missing_key_is_no_error() -> None:
    store = ZarrStore(aiostore.MappingStore({"a": b"1"}))
    await store.delete("missing")
    await store.delete("a")
    assert store.store.mapping == {}  # type: ignore[attr-defined]


async def test_delete_dir_keeps_a_key_named_like_the_prefix() -> None:
    # A flat backend can hold "a" and "a/b" at once; zarr's delete_dir("a") removes
    # what is below "a/" only.
    backend = aiostore.MappingStore({"a": b"1", "a/b": b"2", "a/c/d": b"3", "ab": b"4"})
    store = ZarrStore(backend)
    await store.delete_dir("a")
    assert backend.mapping == {"a": b"1", "ab": b"4"}
    await store.delete_dir("")
    assert backend.mapping == {}


async def test_getsize_prefix_counts_every_key_below_once() -> None:
    backend = aiostore.MappingStore(
        {"a": b"123", "a/b": b"12", "a/c/d": b"1234", "a/c/e": b"1", "ab/x": b"9"}
    )
    store = ZarrStore(backend)
    assert await store.getsize_prefix("a") == 7
    assert await store.getsize_prefix("") == 3 + 7 + 1
    assert await store.getsize_prefix("nothing") == 0


async def test_getsize_of_missing_key_raises_file_not_found() -> None:
    store = ZarrStore(aiostore.MemoryStore())
    await store.set("a/b", buf(b"12"))
    assert await store.getsize("a/b") == 2
    with pytest.raises(FileNotFoundError):
        await store.getsize("a")  # a "directory", not a value


async def test_set_if_not_exists_keeps_the_old_value() -> None:
    store = ZarrStore(aiostore.MemoryStore())
    await store.set_if_not_exists("k", buf(b"old"))
    await store.set_if_not_exists("k", buf(b"new"))
    assert (await store.get("k", PROTO)).to_bytes() == b"old"  # type: ignore[union-attr]


# -- read-only, closing, identity ----------------------------------------------------------


async def test_a_read_only_backend_makes_a_read_only_adapter() -> None:
    backend = aiostore.MemoryStore(read_only=True)
    store = ZarrStore(backend)
    assert store.read_only and not store.supports_writes
    assert store.with_read_only(False).read_only
    for write in (store.set("k", buf(b"1")), store.delete("k"), store.delete_dir(""), store.clear()):
        with pytest.raises(ValueError, match="read-only"):
            await write


async def test_close_closes_the_backend() -> None:
    backend = aiostore.MemoryStore()
    store = await ZarrStore.open(backend)
    with store:
        await store.set("k", buf(b"1"))
    assert backend.closed and not store._is_open
    with pytest.raises(ValueError, match="is closed"):
        await ZarrStore.open(backend)


def test_accepts_mappings_and_sync_stores() -> None:
    data: dict[str, bytes] = {}
    store = ZarrStore(data)
    store.set_sync("k", buf(b"1"))
    assert data == {"k": b"1"}
    sync_store = SyncStore(aiostore.MemoryStore())
    assert ZarrStore(sync_store).store is sync_store.async_store
    with pytest.raises(TypeError):
        ZarrStore(42)


def test_pickle_and_equality() -> None:
    backend = aiostore.MemoryStore()
    store = ZarrStore(backend, read_only=True)
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.read_only and copy is not store
    assert store == ZarrStore(backend) and store != ZarrStore(aiostore.MemoryStore({"x": b"1"}))
    assert store != backend


# -- the sync protocol -------------------------------------------------------------------


def test_sync_protocol_calls_the_backend_in_the_callers_thread() -> None:
    backend = RecordingStore()
    store = ZarrStore(backend)
    assert store._supports_sync_io
    store.set_sync("k", buf(b"abc"))
    assert store.get_sync("k").to_bytes() == b"abc"  # type: ignore[union-attr]
    assert store.get_sync("k", byte_range=SuffixByteRequest(1)).to_bytes() == b"c"  # type: ignore[union-attr]
    assert store.get_sync("missing") is None
    store.delete_sync("k")
    store.delete_sync("k")
    assert backend.mapping == {}
    assert {thread for _, _, thread in backend.calls} == {threading.get_ident()}


async def test_sync_protocol_inside_a_running_loop() -> None:
    store = ZarrStore(RecordingStore())
    store.set_sync("k", buf(b"1"))
    assert (await store.get("k", PROTO)).to_bytes() == b"1"  # type: ignore[union-attr]
    assert store.get_sync("k").to_bytes() == b"1"  # type: ignore[union-attr]


def test_natively_async_backends_do_not_claim_sync_io() -> None:
    backend = NotInlineMemoryStore()
    store = ZarrStore(backend)
    assert not store._supports_sync_io
    store.set_sync("k", buf(b"1"))  # through aiostore's background loop
    assert store.get_sync("k").to_bytes() == b"1"  # type: ignore[union-attr]
    backend.close_sync()


# -- outside zarr: trio ------------------------------------------------------------------


def test_works_under_trio() -> None:
    backend = aiostore.MappingStore({})

    async def main() -> None:
        store = ZarrStore(backend)
        await store.set("a/b", buf(b"12"))
        assert (await store.get("a/b", PROTO)).to_bytes() == b"12"  # type: ignore[union-attr]
        assert [k async for k in store.list_prefix("a/")] == ["a/b"]
        await store.delete("a/b")
        assert await store.is_empty("")

    trio.run(main)


def test_importing_the_zarr3_adapter_brings_no_zarr2_machinery() -> None:
    # A fresh interpreter: aiostore.zarr3 must not import aiostore.sync (and its zarr 2
    # registration), nor touch the import machinery.
    script = (
        "import sys; finders = list(sys.meta_path)\n"
        "import aiostore, aiostore.zarr3\n"
        "assert 'aiostore.sync' not in sys.modules, 'aiostore.zarr3 imported aiostore.sync'\n"
        "assert sys.meta_path == finders, sys.meta_path\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "clean", result.stderr
