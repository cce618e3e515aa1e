"""ZipStore: modes, close/flush, duplicates, no deletes, fast reads, threads, failures,
stores of one process sharing the file, pickled copies, fork."""

from __future__ import annotations

import gc
import io
import os
import pickle
import signal
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import aiostore.sync
from aiostore import ClosedStoreError, ReadOnlyError, ZipStore
from aiostore._runtime.offload import thread_limit
from aiostore.errors import (
    BackendError,
    BatchWriteError,
    SettingsConflictError,
    StoreLockedError,
)

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


def value_of(key: str, size: int = 100) -> bytes:
    return (key.encode() * (size // len(key) + 1))[:size]


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "store.zip")


def entries(path: str) -> list[tuple[str, bytes]]:
    """What any Zip reader sees in the file (checks every CRC first)."""
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


# -- the async API ------------------------------------------------------------------


@pytest.mark.anyio
async def test_round_trip_and_listing(path: str) -> None:
    async with ZipStore(path, mode="w") as store:
        await store.set_many({"a/0": b"x", "a/1": b"yz", "b/c/d": b"www", "e": b""})
        await store.set("f", bytearray(b"f"))
        assert await store.get_many(["a/0", "a/1", "e", "missing"]) == {"a/0": b"x", "a/1": b"yz", "e": b""}
        assert await store.get("b/c/d") == b"www"
        assert await store.contains("a/1") and not await store.contains("a")
        assert [k async for k in store.list()] == ["a/0", "a/1", "b/c/d", "e", "f"]
        assert [k async for k in store.list("a/")] == ["a/0", "a/1"]
        assert await store.listdir() == ["a", "b", "e", "f"]
        assert await store.listdir("b") == ["c"]
        assert await store.listdir("a/0") == []
        assert (await store.getsize(), await store.getsize("a"), await store.getsize("a/1")) == (1, 3, 2)
        assert await store.getsize("nothing") == 0
        with pytest.raises(KeyError):
            await store.get("a")
    expected = [("a/0", b"x"), ("a/1", b"yz"), ("b/c/d", b"www"), ("e", b""), ("f", b"f")]
    assert sorted(entries(path)) == expected


@pytest.mark.anyio
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
async def test_byte_ranges(path: str, compression: int) -> None:
    data = bytes(range(256)) * 40
    async with ZipStore(path, mode="w", compression=compression) as store:
        await store.set("k", data)
        for _ in range(2):  # the first read learns the data offset, the second uses it
            assert await store.get("k", byte_range=(10, 20)) == data[10:20]
            assert await store.get("k", byte_range=(-5, None)) == data[-5:]
            assert await store.get("k", byte_range=(10_000, None)) == data[10_000:]
            assert await store.get("k", byte_range=(20_000, 30_000)) == b""
            assert await store.get("k", byte_range=(-20_000, None)) == data
            assert await store.get("k") == data


@pytest.mark.anyio
async def test_deflated_entries_are_compressed(path: str) -> None:
    async with ZipStore(path, mode="w", compression=zipfile.ZIP_DEFLATED) as store:
        await store.set("a/k", b"z" * 10_000)
        assert await store.get("a/k") == b"z" * 10_000
        stored = await store.getsize("a/k")  # stored (compressed) bytes, as zarr 2
        assert 0 < stored < 1000 and await store.getsize("a") == stored
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("a/k").compress_type == zipfile.ZIP_DEFLATED


# -- modes ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_mode_r_is_read_only(path: str) -> None:
    async with ZipStore(path, mode="w") as store:
        await store.set("a", b"1")
    async with ZipStore(path, mode="r") as store:
        assert store.read_only and await store.get("a") == b"1"
        for attempt in (store.set("a", b"2"), store.set_many({"b": b"2"}), store.clear(), store.rmdir()):
            with pytest.raises(ReadOnlyError):
                await attempt
        await store.flush()  # a no-op
    assert entries(path) == [("a", b"1")]


def test_modes_w_a_x(path: str) -> None:
    with aiostore.sync.ZipStore(path, mode="x") as store:
        store["a"] = b"1"
    with pytest.raises(FileExistsError):
        ZipStore(path, mode="x")
    with aiostore.sync.ZipStore(path, mode="a") as store:
        assert store["a"] == b"1"
        store["b"] = b"2"
    assert entries(path) == [("a", b"1"), ("b", b"2")]
    with aiostore.sync.ZipStore(path, mode="w") as store:  # truncates
        assert len(store) == 0
        store["c"] = b"3"
    assert entries(path) == [("c", b"3")]
    with pytest.raises(ValueError, match="mode"):
        ZipStore(path, mode="rw")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        ZipStore(path + ".missing", mode="r")


def test_empty_store_in_mode_w_is_a_valid_zip(path: str) -> None:
    aiostore.sync.ZipStore(path, mode="w").close()
    assert entries(path) == []


# -- close and flush --------------------------------------------------------------------


@pytest.mark.anyio
async def test_closed_store_refuses_everything(path: str) -> None:
    store = ZipStore(path, mode="w")
    await store.set("a", b"1")
    await store.aclose()
    await store.aclose()  # a no-op
    assert store.closed
    for attempt in (store.get("a"), store.get_many(["a"]), store.set("a", b"2"), store.contains("a")):
        with pytest.raises(ClosedStoreError, match="is closed"):
            await attempt
    with pytest.raises(ClosedStoreError):
        await store.listdir()
    assert entries(path) == [("a", b"1")]


def test_flush_writes_the_directory_and_keeps_the_store_writable(path: str) -> None:
    store = aiostore.sync.ZipStore(path, mode="w")
    store["a"] = b"1"
    store.flush()
    assert entries(path) == [("a", b"1")]  # another reader sees a complete Zip file
    store["b"] = b"2"
    assert store["a"] == b"1" and store["b"] == b"2"
    store.close()
    assert entries(path) == [("a", b"1"), ("b", b"2")]


def test_unclosed_store_is_closed_when_dropped(path: str) -> None:
    store = aiostore.sync.ZipStore(path, mode="w")
    store["a"] = b"1"
    del store
    gc.collect()
    assert entries(path) == [("a", b"1")]


def test_close_waits_for_reads_in_flight(path: str) -> None:
    store = ZipStore(path, mode="w")
    share = store._share
    assert share is not None
    with share.reader._shared():  # a read in flight
        closer = threading.Thread(target=store.close_sync)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive()  # the read handle is not released under the reader
    closer.join()
    assert share.reader._file is None and share.closed


# -- duplicates -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_overwrite_warns_and_reads_the_newest_value(path: str) -> None:
    async with ZipStore(path, mode="w") as store:
        await store.set("a", b"old")
        with pytest.warns(UserWarning, match="Duplicate name: 'a'"):
            await store.set("a", b"new")
        assert await store.get("a") == b"new"
        assert await store.get_many(["a"]) == {"a": b"new"}
        assert [k async for k in store.list()] == ["a"]
        await store.flush()
        assert await store.get("a") == b"new"
    assert entries(path) == [("a", b"old"), ("a", b"new")]
    async with ZipStore(path, mode="r") as store:
        assert await store.get("a") == b"new" and await store.getsize() == 3


# -- deletes ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_deletes_are_refused_clearly(path: str) -> None:
    async with ZipStore(path, mode="w") as store:
        await store.set_many({"a/b": b"1", "c": b"2"})
        assert not store.supports_deletes
        with pytest.raises(NotImplementedError, match=r"cannot delete 'c'.*no way to remove"):
            await store.delete("c")
        with pytest.raises(NotImplementedError, match="cannot delete 'a/b'"):
            await store.delete_many(["missing", "a/b"])
        with pytest.raises(NotImplementedError, match="cannot remove 'a'"):
            await store.rmdir("a")
        with pytest.raises(NotImplementedError, match="cannot rename 'a'"):
            await store.rename("a", "z")
        # Nothing to remove is not an error (zarr 2's overwrite of a new path relies on it).
        await store.delete_many(["missing"])
        await store.rmdir("x/y")
        assert await store.get_many(["a/b", "c"]) == {"a/b": b"1", "c": b"2"}


@pytest.mark.anyio
async def test_clear_empties_the_file(path: str) -> None:
    async with ZipStore(path, mode="w") as store:
        await store.set_many({f"k{i}": b"x" * 1000 for i in range(10)})
        await store.get_many(["k1"])
        await store.clear()
        assert [k async for k in store.list()] == [] and await store.getsize() == 0
        await store.set("k1", b"after")  # no duplicate warning: the old entry is gone
        assert await store.get("k1") == b"after"
        await store.rmdir()  # the root: the same as clear()
        assert not await store.contains("k1")
    assert entries(path) == []


# -- files written by others ----------------------------------------------------------


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile writes data descriptors after each entry."""

    def __init__(self, target: io.BytesIO) -> None:
        self.target = target

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self.target.write(data)

    def tell(self) -> int:
        return self.target.tell()

    def seek(self, *args: Any) -> int:
        raise OSError("not seekable")


def test_reads_archives_written_by_other_tools(path: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("dir/", b"")  # a directory entry, as `zip -r` and 7z write them
        zf.writestr("dir/stored", b"s" * 100)
        zf.writestr("dir/deflated", b"d" * 1000, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("dir/bzip2", b"b" * 1000, compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("../outside", b"not a key")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("dir/stored", b"newest")
    streamed = io.BytesIO()
    with zipfile.ZipFile(_Unseekable(streamed), "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("descriptor", b"q" * 500)
    streamed_path = path + ".streamed.zip"
    Path(streamed_path).write_bytes(streamed.getvalue())

    with aiostore.sync.ZipStore(path, mode="r") as store:
        assert sorted(store) == ["dir/bzip2", "dir/deflated", "dir/stored"]
        assert store.getitems(sorted(store), contexts={}) == {
            "dir/bzip2": b"b" * 1000,
            "dir/deflated": b"d" * 1000,
            "dir/stored": b"newest",
        }
        assert store.listdir("") == ["dir"]
    with zipfile.ZipFile(streamed_path) as zf:
        assert zf.getinfo("descriptor").flag_bits & 0x08  # a data descriptor follows the data
    with aiostore.sync.ZipStore(streamed_path, mode="r") as store:
        assert store["descriptor"] == b"q" * 500


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_data_is_detected(path: str, compression: int) -> None:
    with aiostore.sync.ZipStore(path, mode="w", compression=compression) as store:
        store["k"] = b"a" * 5000
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("k")
    raw = bytearray(Path(path).read_bytes())
    raw[info.header_offset + 30 + 1 + info.compress_size // 2] ^= 0xFF
    Path(path).write_bytes(raw)
    with aiostore.sync.ZipStore(path, mode="r") as store, pytest.raises(BackendError) as caught:
        store["k"]
    assert caught.value.path == path and path in str(caught.value) and "'k'" in str(caught.value)
    assert isinstance(caught.value.__cause__, zipfile.BadZipFile)


# -- pickling ------------------------------------------------------------------------------


def test_pickle_does_not_truncate_and_sees_every_write(path: str) -> None:
    store = aiostore.sync.ZipStore(path, mode="w")
    store["a"] = b"1"
    dump = pickle.dumps(store)  # flushes, like zarr 2
    store.close()
    assert pickle.dumps(store) == dump
    copy = pickle.loads(dump)
    assert copy.mode == "a" and copy["a"] == b"1" and copy == store
    copy["b"] = b"2"
    copy.close()
    assert entries(path) == [("a", b"1"), ("b", b"2")]
    reader = pickle.loads(pickle.dumps(aiostore.sync.ZipStore(path, mode="r")))
    assert reader.read_only and reader["b"] == b"2"
    reader.close()


# -- batches and threads ----------------------------------------------------------------


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Record every call that sends work to a worker thread."""
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    yield hops


@pytest.mark.anyio
async def test_batches_cost_a_handful_of_thread_hops(path: str, thread_hops: list[object]) -> None:
    keys = [f"c/{i}" for i in range(1000)]
    async with ZipStore(path, mode="w") as store:
        await store.set_many({k: value_of(k) for k in keys})
        assert len(thread_hops) == 1  # one writer: the whole batch in one hop
        thread_hops.clear()
        found = await store.get_many(keys)
        assert found == {k: value_of(k) for k in keys}
        assert 1 <= len(thread_hops) <= thread_limit("disk")

        thread_hops.clear()
        results: dict[str, bytes] = {}

        async def get_one(key: str) -> None:
            results[key] = await store.get(key)

        async with anyio.create_task_group() as tg:  # 1,000 concurrent single-key gets
            for k in keys:
                tg.start_soon(get_one, k)
        assert results == found
        assert 1 <= len(thread_hops) <= 2 * thread_limit("disk")


def test_the_sync_side_makes_no_thread_hops(path: str, thread_hops: list[object]) -> None:
    with aiostore.sync.ZipStore(path, mode="w") as store:
        store.setitems({f"k{i}": b"v" for i in range(100)})
        assert len(store.getitems([f"k{i}" for i in range(100)], contexts={})) == 100
        assert store["k1"] == b"v" and "k2" in store and len(store) == 100
    assert thread_hops == []


def test_many_threads_read_while_others_write(path: str) -> None:
    store = aiostore.sync.ZipStore(path, mode="w")
    writers, per_writer = 4, 150
    all_keys = [f"w{w}/{i}" for w in range(writers) for i in range(per_writer)]

    def write(w: int) -> None:
        for i in range(0, per_writer, 10):
            store.setitems({f"w{w}/{j}": value_of(f"w{w}/{j}", 3000) for j in range(i, i + 10)})

    def read() -> int:
        seen = 0
        for _ in range(10):
            for key, value in store.getitems(all_keys, contexts={}).items():
                assert value == value_of(key, 3000)  # never a partial or foreign value
                seen += 1
        return seen

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(write, w) for w in range(writers)] + [pool.submit(read) for _ in range(4)]
        for future in futures:
            future.result()
    assert store.getitems(all_keys, contexts={}) == {k: value_of(k, 3000) for k in all_keys}
    store.close()
    assert len(entries(path)) == len(all_keys)


# -- failures ------------------------------------------------------------------------------


class _DiskFullAfter:
    """Wraps the writer's file: fails big writes half-way, like a full disk."""

    def __init__(self, fp: Any, limit: int) -> None:
        self._fp = fp
        self._limit = limit

    def write(self, data: Any) -> int:
        if len(memoryview(data)) > self._limit:
            self._fp.write(bytes(memoryview(data)[: len(memoryview(data)) // 2]))
            raise OSError(28, "No space left on device")
        return int(self._fp.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


@pytest.mark.anyio
async def test_failed_writes_leave_old_values_and_a_valid_file(path: str) -> None:
    store = ZipStore(path, mode="w")
    await store.set_many({"big": b"old", "small": b"old"})
    assert store._share is not None
    zf = store._share.zf
    assert zf is not None and zf.fp is not None
    real_fp = zf.fp
    zf.fp = _DiskFullAfter(real_fp, 10_000)  # type: ignore[assignment]
    with pytest.raises(BatchWriteError) as caught:
        await store.set_many({"big": b"x" * 50_000, "small": b"new", "fresh": b"y" * 20_000})
    assert sorted(caught.value.failed) == ["big", "fresh"]
    zf.fp = real_fp
    assert await store.get_many(["big", "small", "fresh"]) == {"big": b"old", "small": b"new"}
    await store.aclose()
    assert entries(path) == [("big", b"old"), ("small", b"old"), ("small", b"new")]


@pytest.mark.parametrize("byte_range", [None, (2, 6)])
def test_a_read_racing_clear_never_reads_another_entrys_bytes(
    path: str, monkeypatch: pytest.MonkeyPatch, byte_range: tuple[int, int] | None
) -> None:
    # clear() truncates the file and new writes reuse its offsets: a read that looked
    # its entry up before the clear and read after it would get the new entry's bytes.
    store = aiostore.sync.ZipStore(path, mode="w")
    store["a"] = b"old-value-of-a"
    inner = store.async_store
    share = inner._share
    assert share is not None
    lookup = share._lookup_all
    clearer: list[threading.Thread] = []

    def clear_and_rewrite() -> None:
        inner._clear_blocking()
        inner._set_blocking([("b", b"0123456789abcdef")])
        inner._set_blocking([("a", b"NEW-value-of-a")])

    def racing_lookup(requests: Any) -> Any:
        info = lookup(requests)
        if not clearer:
            clearer.append(threading.Thread(target=clear_and_rewrite))
            clearer[0].start()
            clearer[0].join(0.3)  # gives the clear its chance to slip in before the read
        return info

    monkeypatch.setattr(share, "_lookup_all", racing_lookup)
    old = b"old-value-of-a"
    expected = old if byte_range is None else old[byte_range[0] : byte_range[1]]
    assert inner._get_blocking([("a", byte_range)]) == [expected]
    clearer[0].join(10)
    assert store["a"] == b"NEW-value-of-a"
    store.close()


# -- issue 11: files that are not Zip files, crashed writers, a second writing process ----------


def _in_another_process(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["r", "a"])
def test_a_file_that_is_not_a_zip_is_refused_and_left_unchanged(path: str, mode: Any) -> None:
    original = b"my notes, not a zip file\n" * 10
    with open(path, "wb") as file:
        file.write(original)
    with pytest.raises(BackendError, match="not a Zip file") as caught:
        ZipStore(path, mode=mode)  # mode "a" used to append an archive to it
    assert caught.value.path == path and path in str(caught.value)
    assert isinstance(caught.value.__cause__, zipfile.BadZipFile)
    with open(path, "rb") as file:
        assert file.read() == original
    ZipStore(path, mode="w").close_sync()  # nothing is left holding it


def test_an_empty_file_opens_in_mode_a_as_a_new_zip(path: str) -> None:
    open(path, "wb").close()
    store = ZipStore(path, mode="a")
    store.set_sync("k", b"v")
    store.close_sync()
    assert entries(path) == [("k", b"v")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="SIGKILL of a child process")
@pytest.mark.parametrize("first_mode", ["w", "a"])
def test_reopening_a_zip_whose_writer_was_killed_says_so(path: str, first_mode: str) -> None:
    if first_mode == "a":
        store = ZipStore(path, mode="w")
        store.set_many_sync({f"old/{i}": value_of(f"old/{i}") for i in range(5)})
        store.close_sync()
    killed = _in_another_process(
        "import os, signal, aiostore\n"
        f"store = aiostore.ZipStore({path!r}, mode={first_mode!r})\n"
        "store.set_many_sync({'a/0': b'x' * 1000, 'a/1': b'y'})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert killed.returncode == -9, killed.stderr
    with open(path, "rb") as file:
        crashed = file.read()
    for mode in ("r", "a"):
        with pytest.raises(BackendError, match=r"without its central directory.*killed or crashed") as caught:
            ZipStore(path, mode=mode)  # type: ignore[arg-type]
        assert isinstance(caught.value.__cause__, zipfile.BadZipFile) and caught.value.path == path
    with open(path, "rb") as file:
        assert file.read() == crashed


def test_a_second_writing_process_is_refused_until_the_first_closes(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_sync("a", b"1")
    store.flush_sync()
    code = (
        f"import aiostore\nstore = aiostore.ZipStore({path!r}, mode='a')\n"
        "store.set_sync('b', b'2')\nstore.close_sync()\n"
    )
    refused = _in_another_process(code)
    assert refused.returncode != 0
    assert "StoreLockedError" in refused.stderr and path in refused.stderr and "one writer" in refused.stderr
    reader = _in_another_process(
        f"import aiostore\nprint(aiostore.ZipStore({path!r}, mode='r').get_sync('a'))"
    )
    assert reader.stdout.strip() == "b'1'", reader.stderr  # readers take no lock
    same_process = ZipStore(path, mode="a")  # stores of one process share the lock
    same_process.close_sync()
    store.close_sync()
    assert _in_another_process(code).returncode == 0  # closed: the lock is free
    assert sorted(entries(path)) == [("a", b"1"), ("b", b"2")]


def test_a_dropped_store_releases_its_lock(path: str) -> None:
    store = ZipStore(path, mode="w")
    del store
    gc.collect()
    code = f"import aiostore\naiostore.ZipStore({path!r}, mode='a').close_sync()\n"
    assert _in_another_process(code).returncode == 0


# -- stores of one process share the open file ----------------------------------------------


@pytest.mark.parametrize("first_mode", ["w", "a"])
def test_two_writable_stores_in_one_process_keep_every_key(path: str, first_mode: Any) -> None:
    # Each used to have its own ZipFile and index: only the last closed one's keys
    # remained, or the file had bad CRCs.
    a = ZipStore(path, mode=first_mode)
    b = ZipStore(path, mode="a")
    a.set_many_sync({f"a/{i}": value_of(f"a/{i}", 2000) for i in range(20)})
    b.set_many_sync({f"b/{i}": value_of(f"b/{i}", 3000) for i in range(20)})
    a.set_sync("a/last", b"A")
    assert b.get_sync("a/0") == value_of("a/0", 2000) and a.get_sync("b/19") == value_of("b/19", 3000)
    assert sorted(a.list_sync()) == sorted(b.list_sync())
    a.close_sync()  # writes the central directory: the file is complete, b stays usable
    assert len(entries(path)) == 41
    b.set_sync("b/last", b"B")
    assert b.get_sync("a/last") == b"A"
    b.close_sync()
    found = dict(entries(path))
    assert len(found) == 42 and found["a/last"] == b"A" and found["b/last"] == b"B"
    assert all(found[k] == value_of(k, 2000 if k[0] == "a" else 3000) for k in found if "last" not in k)


def test_writers_in_many_threads_through_two_stores(path: str) -> None:
    stores = [aiostore.sync.ZipStore(path, mode="w"), aiostore.sync.ZipStore(path, mode="a")]

    def write(w: int) -> None:
        store = stores[w % 2]
        for i in range(0, 60, 6):
            store.setitems({f"w{w}/{j}": value_of(f"w{w}/{j}", 1500) for j in range(i, i + 6)})
            assert store[f"w{w}/{i}"] == value_of(f"w{w}/{i}", 1500)

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(write, w) for w in range(6)]:
            future.result()
    for store in stores:
        store.close()
    found = dict(entries(path))
    assert found == {f"w{w}/{j}": value_of(f"w{w}/{j}", 1500) for w in range(6) for j in range(60)}


def test_mode_w_is_refused_while_the_file_is_open_in_this_process(path: str) -> None:
    writer = ZipStore(path, mode="w")
    writer.set_sync("a", b"1")
    with pytest.raises(StoreLockedError, match="mode='a' to share it") as caught:
        ZipStore(path, mode="w")  # would truncate the file under the writer
    assert path in str(caught.value)
    with pytest.raises(FileExistsError):
        ZipStore(path, mode="x")
    writer.close_sync()
    reader = ZipStore(path, mode="r")
    with pytest.raises(StoreLockedError):
        ZipStore(path, mode="w")  # a reader has it open too
    reader.close_sync()
    assert entries(path) == [("a", b"1")]
    ZipStore(path, mode="w").close_sync()  # no one has it open: truncates
    assert entries(path) == []


@pytest.mark.anyio
async def test_a_reader_of_this_process_sees_the_writers_entries_at_once(path: str) -> None:
    writer = ZipStore(path, mode="w")
    reader = ZipStore(path, mode="r")
    await writer.set_many({"a/0": b"x", "a/1": b"y"})
    assert await reader.get_many(["a/0", "a/1"]) == {"a/0": b"x", "a/1": b"y"}
    assert await reader.listdir("a") == ["0", "1"] and await reader.contains("a/1")
    with pytest.raises(ReadOnlyError):
        await reader.set("b", b"2")
    await reader.flush()  # a reader's flush and close write nothing
    await reader.aclose()
    await writer.set("b", b"2")
    await writer.aclose()
    assert entries(path) == [("a/0", b"x"), ("a/1", b"y"), ("b", b"2")]


def test_writers_of_one_file_must_agree_on_allowzip64(path: str) -> None:
    writer = ZipStore(path, mode="w")
    with pytest.raises(SettingsConflictError, match="allowZip64"):
        ZipStore(path, mode="a", allowZip64=False)
    ZipStore(path, mode="r", allowZip64=False).close_sync()  # a reader writes nothing
    writer.close_sync()


def _write_in_another_process(path: str, key: str) -> subprocess.CompletedProcess[str]:
    """A writable ZipStore in another process writes ``key`` (value ``o``) and closes."""
    return _in_another_process(
        f"import aiostore\ns = aiostore.ZipStore({path!r}, mode='a')\n"
        f"s.set_sync({key!r}, b'o')\ns.close_sync()\n"
    )


def test_a_reader_opened_again_sees_what_another_process_wrote(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_sync("a", b"1")
    store.close_sync()
    reader = ZipStore(path, mode="r")
    assert _write_in_another_process(path, "b").returncode == 0
    again = ZipStore(path, mode="r")  # shares the first reader's file, read again
    assert again.get_sync("b") == b"o" and reader.get_sync("a") == b"1"
    again.close_sync()
    reader.close_sync()


# -- pickled copies ---------------------------------------------------------------------------


def test_a_pickled_copy_takes_the_writer_lock_at_its_first_write(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_sync("a", b"1")
    dump = pickle.dumps(store)
    store.close_sync()
    copy = pickle.loads(dump)
    assert copy._share is None  # opened nothing
    assert _write_in_another_process(path, "other").returncode == 0  # the copy holds no lock
    assert pickle.loads(pickle.dumps(copy))._share is None  # pickling it opens nothing either
    assert copy.get_sync("other") == b"o"  # opened for reading now, still no lock
    assert copy._share is not None and not copy._share.writing
    assert _write_in_another_process(path, "other2").returncode == 0
    copy.set_sync("b", b"2")  # its first write: takes the lock, reads the file again
    assert copy.get_sync("other2") == b"o"
    refused = _write_in_another_process(path, "other3")
    assert refused.returncode != 0 and "StoreLockedError" in refused.stderr
    copy.close_sync()
    assert sorted(entries(path)) == [("a", b"1"), ("b", b"2"), ("other", b"o"), ("other2", b"o")]


def test_a_copy_in_another_process_is_refused_at_its_write_not_at_unpickling(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_sync("a", b"1")
    dump = pickle.dumps(store)  # flushes: the copy reads a complete file
    code = (
        "import pickle, sys\n"
        "from aiostore.errors import StoreLockedError\n"
        f"copy = pickle.loads({dump!r})\n"
        "pickle.dumps(copy)\n"
        "print(copy.get_sync('a'))\n"
        "try:\n"
        "    copy.set_sync('b', b'2')\n"
        "except StoreLockedError as exc:\n"
        "    print('refused', 'one writer' in str(exc))\n"
        "copy.close_sync()\n"
    )
    result = _in_another_process(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["b'1'", "refused", "True"]
    store.set_sync("c", b"3")  # untouched
    store.close_sync()
    assert entries(path) == [("a", b"1"), ("c", b"3")]


def test_a_copy_in_the_writers_process_shares_its_file(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_sync("a", b"1")
    copy = pickle.loads(pickle.dumps(store))  # as the scheduler, in the client's process
    copy.set_sync("b", b"2")
    assert store.get_sync("b") == b"2"
    copy.close_sync()
    store.set_sync("c", b"3")
    store.close_sync()
    assert entries(path) == [("a", b"1"), ("b", b"2"), ("c", b"3")]


def test_a_corrupt_entry_read_through_zipfile_is_a_backend_error(path: str) -> None:
    with aiostore.sync.ZipStore(path, mode="w", compression=zipfile.ZIP_BZIP2) as store:
        store["k"] = b"b" * 1000
    store = aiostore.sync.ZipStore(path, mode="r")
    share = store.async_store._share
    assert share is not None
    share.index["k"].CRC ^= 1
    with pytest.raises(BackendError, match="CRC") as caught:
        store["k"]
    assert caught.value.path == path and isinstance(caught.value.__cause__, zipfile.BadZipFile)
    store.close()


# -- fork -------------------------------------------------------------------------------------------


def _fork(child: Any, timeout: int = 20) -> tuple[int, str]:
    """Run ``child()`` in a forked child (an alarm kills it if it hangs); its exit code
    (negative: the signal that killed it) and what it wrote to a pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(timeout)
            os.write(write_fd, str(child()).encode())
            code = 0
        except BaseException as exc:
            os.write(write_fd, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), report


def _child_reads_and_is_refused(store: ZipStore) -> str:
    assert store.get_many_sync(["a", "b"]) == {"a": b"1", "b": b"2"}
    try:
        store.set_sync("child", b"c")
    except StoreLockedError as exc:
        outcome = "refused: " + str(exc)
    else:
        outcome = "wrote"
    pickle.dumps(store)  # flushes nothing here
    store.flush_sync()
    store.close_sync()  # must not write the parent's central directory
    gc.collect()
    return outcome


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads running
def test_a_forked_childs_write_is_refused_and_the_parents_file_intact(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_many_sync({"a": b"1", "b": b"2"})  # not flushed: the child must not write it
    code, report = _fork(lambda: _child_reads_and_is_refused(store))
    assert code == 0, report
    assert report.startswith("refused: ") and "forked" in report and path in report
    store.set_sync("c", b"3")
    assert store.get_many_sync(["a", "c", "child"]) == {"a": b"1", "c": b"3"}
    store.close_sync()
    assert entries(path) == [("a", b"1"), ("b", b"2"), ("c", b"3")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_while_another_thread_holds_the_stores_locks_does_not_hang(path: str) -> None:
    from aiostore.stores._zipshared import registry_lock

    store = ZipStore(path, mode="w")
    store.set_many_sync({"a": b"1", "b": b"2"})
    share = store._share
    assert share is not None
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:  # as a thread in the middle of a write, a clear and an open
        with share.reader.exclusive(), share.lock, share.index_lock, registry_lock():
            holding.set()
            done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        code, report = _fork(lambda: _child_reads_and_is_refused(store), timeout=10)
    finally:
        done.set()
        holder.join()
    assert code == 0, f"the child hung or failed ({code}): {report}"
    assert report.startswith("refused: ")
    store.close_sync()
    assert entries(path) == [("a", b"1"), ("b", b"2")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_while_threads_write_and_read(path: str) -> None:
    store = ZipStore(path, mode="w")
    store.set_many_sync({"a": b"1", "b": b"2"})
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy(w: int) -> None:
        try:
            n = 0
            while not stop.is_set():
                store.set_many_sync({f"w{w}/{n % 50}": value_of(f"w{w}/{n}", 4000)})
                store.get_many_sync([f"w{w}/{n % 50}", "a"])
                n += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=busy, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(5):
            code, report = _fork(lambda: _child_reads_and_is_refused(store), timeout=10)
            assert code == 0 and report.startswith("refused: "), (code, report)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    store.close_sync()
    found = dict(entries(path))  # every CRC checked: nothing of a child reached the file
    assert "child" not in found and found["a"] == b"1"
