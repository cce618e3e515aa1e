"""DirectoryStore, NestedDirectoryStore, TempStore: behaviour, atomicity, cancellation,
concurrency, and the batching that keeps thread hops few.

Every key here is harmless: hostile keys (absolute, ``..``) are fed to these stores
only inside the read-only sandbox, by tests/stress/test_hostile_keys_sandboxed.py.
"""

from __future__ import annotations

import errno
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import numpy as np
import pytest

import aiostore.sync
from aiostore import (
    BatchWriteError,
    ClosedStoreError,
    DirectoryStore,
    NestedDirectoryStore,
    ReadOnlyError,
    TempStore,
)
from aiostore._runtime import offload as _threads
from aiostore.errors import KeyConflictError
from aiostore.keys import key_to_fs_path
from aiostore.stores.directory import TEMP_PREFIX


def temp_files(root: pathlib.Path | str) -> list[str]:
    """Every leftover temporary file below ``root``."""
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(TEMP_PREFIX)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")


async def collect(agen: Any) -> list[str]:
    return [k async for k in agen]


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "store.zarr"


@pytest.fixture
def store(root: pathlib.Path) -> DirectoryStore:
    return DirectoryStore(root)


# -- construction, identity, pickling ------------------------------------------------


def test_root_is_absolute_and_made_on_first_write(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = aiostore.sync.DirectoryStore(pathlib.Path("data") / "array.zarr")
    assert store.path == str(tmp_path / "data" / "array.zarr")
    assert not os.path.exists("data")
    assert store.listdir() == [] and len(store) == 0 and "x" not in store  # reads make nothing
    store["x"] = b"1"
    assert os.listdir("data/array.zarr") == ["x"]


def test_a_file_as_root_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ValueError, match="not a directory"):
        DirectoryStore(tmp_path / "file")


def test_equality_hash_repr_and_pickle(root: pathlib.Path) -> None:
    store = DirectoryStore(root, normalize_keys=True, dimension_separator="/", read_only=True)
    same = DirectoryStore(str(root) + os.sep)
    assert store == same and hash(store) == hash(same)
    assert store != DirectoryStore(root / "other") and store != aiostore.MemoryStore()
    assert repr(store) == f"DirectoryStore({str(root)!r})"
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store
    assert (copy.normalize_keys, copy.dimension_separator, copy.read_only) == (True, "/", True)
    nested = pickle.loads(pickle.dumps(NestedDirectoryStore(root)))
    assert type(nested) is NestedDirectoryStore and nested.dimension_separator == "/"


def test_nested_store_separator() -> None:
    assert NestedDirectoryStore("x").dimension_separator == "/"
    assert NestedDirectoryStore("x", dimension_separator=None).dimension_separator == "/"
    with pytest.raises(ValueError, match="only supports '/'"):
        NestedDirectoryStore("x", dimension_separator=".")
    with pytest.raises(ValueError):
        DirectoryStore("x", dimension_separator="-")


def test_fs_paths_are_key_to_fs_path(store: DirectoryStore) -> None:
    for key in ["a", "a/b", ".zarray", "foo/bar/0.0", "x y/ü/..z", "a..b/c"]:
        assert store._fs_path(key) == key_to_fs_path(store.path, key)
    assert store.dir_path("a/b/") == os.path.join(store.path, "a", "b")
    assert store.dir_path() == store.path


# -- reads and writes ------------------------------------------------------------------


@pytest.mark.anyio
async def test_roundtrip_files_and_values(store: DirectoryStore, root: pathlib.Path) -> None:
    await store.set_many(
        {
            "a/b/c": b"abc",
            "a/d": bytearray(b"d"),
            "e": np.arange(3, dtype="<u2"),
            "empty": b"",
        }
    )
    assert (root / "a" / "b" / "c").read_bytes() == b"abc"
    assert (root / "e").read_bytes() == np.arange(3, dtype="<u2").tobytes()
    assert await store.get("a/d") == b"d"
    assert await store.get("empty") == b""
    assert await store.get_many(["a/b/c", "nope", "a", "a/b/c/d"]) == {"a/b/c": b"abc"}
    assert await store.contains("a/b/c") and not await store.contains("a/b")
    with pytest.raises(KeyError):
        await store.get("a/b")  # a directory is not a value
    with pytest.raises(KeyError):
        await store.get("a/b/c/d")  # below a value
    await store.delete("a/b/c")
    assert not (root / "a" / "b" / "c").exists()
    with pytest.raises(KeyError):
        await store.delete("a/b/c")
    await store.delete_many(["a/d", "missing", "a/d/x"])
    assert sorted(await collect(store.list())) == ["e", "empty"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ((0, None), b"0123456789"),
        ((2, 5), b"234"),
        ((7, None), b"789"),
        ((8, 100), b"89"),
        ((12, 20), b""),
        ((4, 4), b""),
        ((-3, None), b"789"),
        ((-30, None), b"0123456789"),
    ],
)
async def test_byte_ranges(store: DirectoryStore, byte_range: Any, expected: bytes) -> None:
    await store.set("k", b"0123456789")
    assert await store.get("k", byte_range=byte_range) == expected


@pytest.mark.anyio
async def test_byte_ranges_of_a_large_value_and_of_missing_keys(store: DirectoryStore) -> None:
    value = np.random.default_rng(0).integers(0, 256, 3 * 2**20, dtype="u1").tobytes()
    await store.set("big", value)
    assert await store.get("big") == value
    assert await store.get("big", byte_range=(2**20, 2**21 + 5)) == value[2**20 : 2**21 + 5]
    assert await store.get("big", byte_range=(-(2**20) - 1, None)) == value[-(2**20) - 1 :]
    await store.set("dir/x", b"1")
    for key in ["missing", "dir", "big/below"]:
        with pytest.raises(KeyError):
            await store.get(key, byte_range=(0, 1))


def test_normalize_keys_lower_cases_file_names(root: pathlib.Path) -> None:
    store = aiostore.sync.DirectoryStore(root, normalize_keys=True)
    store["Foo/BAR"] = b"x"
    assert os.listdir(root / "foo") == ["bar"]
    assert store["FOO/bar"] == b"x" and "foo/Bar" in store
    assert list(store.async_store.normalize_keys and store) == ["foo/bar"]


def test_zarr2_level_rules(root: pathlib.Path) -> None:
    store = aiostore.sync.DirectoryStore(root)
    store["a/b"] = b"aaa"
    with pytest.raises(KeyConflictError, match="cannot store 'a/b/c': the key 'a/b' holds a value"):
        store["a/b/c"] = b"x"  # below a value: refused, nothing made
    with pytest.raises(KeyError):
        store["a/b/c/d"] = b"x"
    with pytest.raises(KeyError):
        del store["a/b/c"]
    assert store["a/b"] == b"aaa" and temp_files(root) == []
    store["x/y/z"] = b"z"
    store["x/y"] = b"y"  # a value replaces the directory at its key (zarr 2)
    assert "x/y/z" not in store
    assert store["x/y"] == b"y"
    store["r/s/t"] = b"t"
    del store["r/s"]  # deleting a directory's name removes it
    assert not (root / "r" / "s").exists()
    store.rmdir("a/b")  # rmdir of a plain key leaves it
    assert store["a/b"] == b"aaa"


def test_directories_are_made_once_per_batch_and_again_when_removed(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_makedirs = os.makedirs
    made: list[str] = []

    depth = 0

    def makedirs(path: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal depth
        if depth == 0:  # not os.makedirs' own recursion into the parents
            made.append(os.fspath(path))
        depth += 1
        try:
            real_makedirs(path, *args, **kwargs)
        finally:
            depth -= 1

    monkeypatch.setattr(os, "makedirs", makedirs)
    store = aiostore.sync.DirectoryStore(root)
    store.setitems({f"d{i % 3}/x/{i}": b"v" for i in range(30)})
    assert sorted(made) == [str(root / f"d{i}" / "x") for i in range(3)]  # one per new directory
    made.clear()
    store.setitems({f"d{i % 3}/x/{i}": b"w" for i in range(30, 60)})
    assert made == []  # existing directories cost nothing
    shutil.rmtree(root / "d0")  # removed behind the store's back (another process, say)
    store["d0/x/new"] = b"n"
    assert store["d0/x/new"] == b"n" and made == [str(root / "d0" / "x")]


def test_a_fifo_in_the_tree_is_not_a_value(root: pathlib.Path) -> None:
    store = aiostore.sync.DirectoryStore(root)
    store["k"] = b"1"
    os.mkfifo(root / "fifo")
    with pytest.raises(KeyError):
        store["fifo"]  # opened non-blocking, so this does not hang
    assert store.getitems(["fifo", "k"], contexts={}) == {"k": b"1"}
    assert list(store) == ["k"] and "fifo" not in store


# -- listing -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_list_prefixes(store: DirectoryStore) -> None:
    await store.set_many({k: b"" for k in ["a/b", "a/bc/d", "a/c", "ab", "b/x/y/z"]})
    assert sorted(await collect(store.list())) == ["a/b", "a/bc/d", "a/c", "ab", "b/x/y/z"]
    assert sorted(await collect(store.list("a/"))) == ["a/b", "a/bc/d", "a/c"]
    assert sorted(await collect(store.list("a/b"))) == ["a/b", "a/bc/d"]  # a plain string prefix
    assert sorted(await collect(store.list("a"))) == ["a/b", "a/bc/d", "a/c", "ab"]
    assert await collect(store.list("b/x/y/")) == ["b/x/y/z"]
    assert await collect(store.list("zzz/")) == []
    assert await collect(store.list("a/b/")) == []  # below a value
    for impossible in ["a//", "a/./", "./a", "a\\b/"]:  # no key starts like this
        assert await collect(store.list(impossible)) == []


def test_listing_is_the_same_with_a_trailing_slash_on_the_root(root: pathlib.Path) -> None:
    # What zarr's test_listing_keys_(no_)slash protect, on aiostore's own walk.
    store = aiostore.sync.DirectoryStore(root)
    store.setitems({".zgroup": b"{}", "d1/.zarray": b"{}", "g1/.zgroup": b"{}"})
    expected = {".zgroup", "d1/.zarray", "g1/.zgroup"}
    assert set(store) == expected
    assert set(aiostore.sync.DirectoryStore(str(root) + "/")) == expected


@pytest.mark.anyio
async def test_temporary_files_are_never_keys(store: DirectoryStore, root: pathlib.Path) -> None:
    await store.set_many({"a/x": b"12", "b": b"3"})
    # leftovers of a crashed writer, in the root and in a subdirectory
    (root / f"{TEMP_PREFIX}dead").write_bytes(b"torn")
    (root / "a" / f"{TEMP_PREFIX}dead").write_bytes(b"torn")
    assert sorted(await collect(store.list())) == ["a/x", "b"]
    assert await store.listdir() == ["a", "b"] and await store.listdir("a") == ["x"]
    assert await store.getsize("a") == 2
    for key in [f"{TEMP_PREFIX}dead", f"a/{TEMP_PREFIX}x", f"{TEMP_PREFIX.upper()}y"]:
        with pytest.raises(ValueError, match="reserved"):
            await store.get(key) if key.islower() else await store.set(key.lower(), b"")
    with pytest.raises(ValueError, match="reserved"):
        await store.listdir(f"a/{TEMP_PREFIX}dir")
    for batch_call in (store.get_many, store.delete_many):
        with pytest.raises(ValueError, match=f"'a/{TEMP_PREFIX}dead'"):
            await batch_call(["a/x", f"a/{TEMP_PREFIX}dead"])
    with pytest.raises(ValueError, match="reserved"):
        await store.set_many({"ok": b"", f"{TEMP_PREFIX}dead": b""})
    assert not await store.contains("ok")
    await store.clear()  # and clear removes them too
    assert os.listdir(root) == []


@needs_proc
@pytest.mark.anyio
async def test_list_streams_pages_and_closes_its_directories(
    store: DirectoryStore, root: pathlib.Path
) -> None:
    await store.set("k/0", b"v")
    for i in range(1, 2100):  # hard links: creating 2,100 inodes is slow on some disks
        os.link(root / "k" / "0", root / "k" / str(i))
    before = open_fds()
    agen = store.list("k/")
    seen = [await agen.__anext__() for _ in range(3)]
    await agen.aclose()
    assert len(seen) == 3 and open_fds() == before
    assert len(await collect(store.list("k/"))) == 2100


@pytest.mark.anyio
async def test_listdir_nested_chunks_as_zarr2(root: pathlib.Path) -> None:
    keys = {".zarray": b"{}", "0/0": b"a", "0/1": b"b", "1/0": b"c", "x": b"", "sub/.zgroup": b""}
    flat = DirectoryStore(root)
    await flat.set_many(keys)
    assert await flat.listdir() == [".zarray", "0", "1", "sub", "x"]
    nested = NestedDirectoryStore(root)
    # in an array's directory, numbered directories are listed as chunk keys (zarr 2)
    assert await nested.listdir() == [".zarray", "0/0", "0/1", "1/0", "sub", "x"]
    assert await nested.listdir("sub") == [".zgroup"]
    assert await nested.listdir("0") == ["0", "1"]


# -- hierarchy operations ------------------------------------------------------------------


@pytest.mark.anyio
async def test_rename(store: DirectoryStore, root: pathlib.Path) -> None:
    await store.set_many({"c/d": b"d", "c/e/f": b"f", "keep": b"k"})
    await store.rename("c/e", "x/y/z")
    assert sorted(await collect(store.list())) == ["c/d", "keep", "x/y/z/f"]
    await store.rename("x/y/z", "c/e")
    assert not (root / "x").exists()  # directories the move emptied are dropped
    await store.rename("c/d", "d")
    await store.rename("c/e/f", "f")
    assert sorted(os.listdir(root)) == ["d", "f", "keep"]  # ... but never the root
    await store.rename("d", "solo")
    await store.rename("solo", "d")
    with pytest.raises(KeyError):
        await store.rename("missing", "y")
    with pytest.raises(FileExistsError):
        await store.rename("d", "f")
    with pytest.raises(KeyError, match="holds a value"):
        await store.rename("d", "keep/d")
    assert sorted(await collect(store.list())) == ["d", "f", "keep"]


@pytest.mark.anyio
async def test_rmdir_getsize_clear(store: DirectoryStore, root: pathlib.Path) -> None:
    await store.set_many({"a": b"aaa", "c/d": b"dd", "c/e/f": b"f", "c/e/g": b"gggg"})
    assert await store.getsize() == 3
    assert await store.getsize("c") == 2
    assert await store.getsize("c/e") == 5
    assert await store.getsize("c/e/g") == 4
    assert await store.getsize("nope") == 0 and await store.getsize("a/x") == 0
    await store.rmdir("c/e")
    assert sorted(await collect(store.list())) == ["a", "c/d"]
    await store.rmdir("a")  # a plain key: left alone
    await store.rmdir("nope")
    assert await store.contains("a")
    await store.rmdir()
    assert await collect(store.list()) == [] and os.listdir(root) == []
    await store.clear()  # nothing there: fine
    await store.set("again", b"1")
    assert await store.get("again") == b"1"


def test_rmdir_and_delete_of_a_symlink_remove_the_link_only(tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    store = aiostore.sync.DirectoryStore(tmp_path / "root")
    store["x"] = b"1"
    os.symlink(outside, tmp_path / "root" / "link")
    os.symlink(outside, tmp_path / "root" / "link2")
    store.rmdir("link")
    del store["link2"]
    assert (outside / "keep").read_bytes() == b"k"
    assert os.listdir(tmp_path / "root") == ["x"]


@pytest.mark.anyio
async def test_read_only_and_closed(root: pathlib.Path) -> None:
    await DirectoryStore(root).set("k", b"v")
    ro = DirectoryStore(root, read_only=True)
    assert await ro.get("k") == b"v"
    for call in (ro.set("k", b"x"), ro.delete("k"), ro.rmdir("k"), ro.rename("k", "j"), ro.clear()):
        with pytest.raises(ReadOnlyError):
            await call
    await ro.aclose()
    with pytest.raises(ClosedStoreError):
        await ro.get("k")
    assert (root / "k").read_bytes() == b"v"


# -- atomicity: a failed write leaves the old value and no temporary file ------------------


def _failing_write(monkeypatch: pytest.MonkeyPatch, marker: bytes, error: BaseException) -> None:
    """os.write fails for values starting with ``marker``, after a partial first write."""
    real_write = os.write
    calls: dict[int, int] = {}

    def write(fd: int, data: Any) -> int:
        if bytes(data[: len(marker)]) == marker or calls.get(fd):
            calls[fd] = calls.get(fd, 0) + 1
            if calls[fd] == 1:
                return real_write(fd, bytes(data[:10]))  # partial: the store must go on writing
            del calls[fd]
            raise error
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.anyio
async def test_disk_full_on_one_key_of_a_batch(
    store: DirectoryStore, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.set_many({"a": b"old-a", "b": b"old-b", "c": b"old-c"})
    _failing_write(monkeypatch, b"FULL", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(BatchWriteError) as info:
        await store.set_many({"a": b"new-a", "b": b"FULL" + b"x" * 100, "c": b"new-c", "d/e": b"new"})
    assert list(info.value.failed) == ["b"]
    assert info.value.failed["b"].errno == errno.ENOSPC  # type: ignore[attr-defined]
    assert await store.get_many(["a", "b", "c", "d/e"]) == {
        "a": b"new-a",
        "b": b"old-b",
        "c": b"new-c",
        "d/e": b"new",
    }
    assert temp_files(root) == []


@needs_proc
def test_any_exception_in_a_write_leaves_no_temporary_file(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupt(BaseException):
        pass

    store = aiostore.sync.DirectoryStore(root)
    store["k"] = b"old"
    before = open_fds()
    _failing_write(monkeypatch, b"NEW", Interrupt())
    with pytest.raises(Interrupt):
        store["k"] = b"NEW" + b"x" * 50
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        raise Interrupt()

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Interrupt):
        store["k"] = b"other"
    monkeypatch.setattr(os, "replace", real_replace)
    assert store["k"] == b"old" and temp_files(root) == [] and open_fds() == before


# -- cancellation ---------------------------------------------------------------------------


@needs_proc
@pytest.mark.anyio
async def test_cancelled_set_many_leaves_each_key_old_or_new(
    store: DirectoryStore, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"k/{i:03d}" for i in range(200)]
    await store.set(keys[0], b"old")
    for key in keys[1:]:  # hard links: cheap "old" values
        os.link(root / keys[0], root / key)
    before = open_fds()
    # Leave one worker token free, so the batch's parts run one after another and
    # the cancellation lands while one part is in its thread and the others wait.
    limiter = _threads.capacity_limiter("disk")
    holders = [object() for _ in range(int(limiter.total_tokens) - 1)]
    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    real_replace = os.replace
    replaced = 0

    with anyio.CancelScope() as scope:

        def replace(src: Any, dst: Any) -> None:
            nonlocal replaced
            real_replace(src, dst)
            replaced += 1
            if replaced == 5:  # mid-way through the first part, from its worker thread
                anyio.from_thread.run_sync(scope.cancel)

        monkeypatch.setattr(os, "replace", replace)
        try:
            await store.set_many({key: b"new" for key in keys})
        finally:
            for holder in holders:
                limiter.release_on_behalf_of(holder)
    monkeypatch.setattr(os, "replace", real_replace)
    assert scope.cancelled_caught
    values = await store.get_many(keys)
    assert set(values) == set(keys) and set(values.values()) <= {b"old", b"new"}
    new = sum(v == b"new" for v in values.values())
    assert replaced == new and 5 <= new < len(keys)  # the running part finished, the rest never began
    assert temp_files(root) == [] and open_fds() == before


@needs_proc
@pytest.mark.anyio
async def test_cancelled_reads_leak_no_file_handles(store: DirectoryStore, root: pathlib.Path) -> None:
    await store.set("k/0", b"x" * 1000)
    for i in range(1, 300):
        os.link(root / "k" / "0", root / "k" / str(i))
    keys = [f"k/{i}" for i in range(300)]
    before = open_fds()
    with anyio.move_on_after(0):
        await store.get_many(keys)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(store.get, key)
            scope.cancel()
    assert open_fds() == before
    assert len(await store.get_many(keys)) == 300


# -- many writers ---------------------------------------------------------------------------


def _uniform(value: bytes, size: int) -> bool:
    return len(value) == size and value == value[:1] * size


def test_threads_writing_one_key_never_tear_it(root: pathlib.Path) -> None:
    store = aiostore.sync.DirectoryStore(root)
    size = 2**16
    store["k"] = b"\x00" * size
    done = threading.Event()
    torn: list[bytes] = []

    def writer(byte: int) -> None:
        for _ in range(30):
            store["k"] = bytes([byte]) * size

    def reader() -> None:
        while not done.is_set():
            value = store["k"]
            if not _uniform(value, size):
                torn.append(value)

    threads = [threading.Thread(target=writer, args=(b,)) for b in range(1, 5)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert torn == [] and _uniform(store["k"], size) and store["k"][0] != 0
    assert temp_files(root) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_processes_writing_one_key_never_tear_it(root: pathlib.Path) -> None:
    # Forked writers start at once (a fresh interpreter would spend most of the
    # test importing); each writes with its own DirectoryStore.
    size = 2**16
    store = aiostore.sync.DirectoryStore(root)
    store["a/k"] = b"\x00" * size
    pids = []
    for byte in (1, 2, 3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                mine = aiostore.sync.DirectoryStore(root)
                for _ in range(40):
                    mine["a/k"] = bytes([byte]) * size
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    torn = []
    running = set(pids)
    statuses = []
    while running:
        value = store["a/k"]
        if not _uniform(value, size):
            torn.append(value[:8])
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                running.discard(pid)
                statuses.append(os.waitstatus_to_exitcode(status))
    assert statuses == [0, 0, 0]
    assert torn == [] and store["a/k"][0] in (1, 2, 3) and temp_files(root) == []


# -- batching: few thread hops ---------------------------------------------------------------


@pytest.fixture
def count_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], int]]:
    real = anyio.to_thread.run_sync
    calls = 0

    async def run_sync(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)

    def hops() -> int:
        nonlocal calls
        n, calls = calls, 0
        return n

    yield hops


@pytest.mark.anyio
async def test_a_batch_of_1000_keys_takes_a_handful_of_thread_hops(
    store: DirectoryStore, root: pathlib.Path, count_hops: Callable[[], int]
) -> None:
    keys = [f"a/{i}" for i in range(1000)]
    await store.set("a/0", b"value")
    for key in keys[1:]:
        os.link(root / "a" / "0", root / key)
    count_hops()
    assert len(await store.get_many(keys)) == 1000
    assert 1 <= count_hops() <= _threads.thread_limit("disk")
    # concurrent single-key gets are coalesced into batches too
    async with anyio.create_task_group() as tg:
        for key in keys[:200]:
            tg.start_soon(store.get, key)
    assert 1 <= count_hops() <= 2 * _threads.thread_limit("disk")
    await store.delete_many(keys[500:])
    assert 1 <= count_hops() <= _threads.thread_limit("disk")
    assert len(await collect(store.list("a/"))) == 500
    assert count_hops() == 1


# -- sync twins and TempStore -------------------------------------------------------------------


def test_sync_twins_are_mutable_mappings(tmp_path: pathlib.Path) -> None:
    for cls in (aiostore.sync.DirectoryStore, aiostore.sync.NestedDirectoryStore):
        store = cls(tmp_path / cls.__name__)
        store.update({"a/b": b"1", "c": b"22"})
        assert dict(store.items()) == {"a/b": b"1", "c": b"22"}
        assert store.getitems(["a/b", "x"], contexts={}) == {"a/b": b"1"}
        store.delitems(["c"])
        assert store.listdir() == ["a"] and store.getsize("a") == 1
        assert pickle.loads(pickle.dumps(store)) == store
        assert isinstance(store.async_store, DirectoryStore)
    assert aiostore.sync.NestedDirectoryStore("x")._dimension_separator == "/"


def test_temp_store_is_removed_on_close(tmp_path: pathlib.Path) -> None:
    store = aiostore.sync.TempStore(prefix="t-", suffix=".zarr", dir=tmp_path, dimension_separator="/")
    path = store.path
    assert os.path.dirname(path) == str(tmp_path) and os.path.basename(path).startswith("t-")
    assert store._dimension_separator == "/"
    store["a/b"] = b"x"
    store.close()
    assert not os.path.exists(path)


def test_a_pickled_temp_store_is_left_to_interpreter_exit(tmp_path: pathlib.Path) -> None:
    store = aiostore.sync.TempStore(dir=tmp_path)
    store["k"] = b"v"
    copy = pickle.loads(pickle.dumps(store))
    store.close()  # a copy may still use the directory
    assert copy["k"] == b"v"
    copy.close()  # a copy never removes what it did not make
    assert os.path.isdir(store.path)


def test_temp_store_is_removed_at_interpreter_exit(tmp_path: pathlib.Path) -> None:
    script = "import aiostore; s = aiostore.sync.TempStore(dir=%r); s['a/b'] = b'1'; print(s.path)"
    out = subprocess.run(
        [sys.executable, "-c", "import aiostore.sync\n" + script % str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    path = out.stdout.strip()
    assert path.startswith(str(tmp_path)) and not os.path.exists(path)
    assert os.listdir(tmp_path) == []


def test_closing_a_temp_store_waits_for_writes_under_way(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write under way when close() removed the directory used to make it again.
    entered, release = threading.Event(), threading.Event()
    write = DirectoryStore._set_blocking

    def slow_write(self: DirectoryStore, items: Any) -> None:
        if any(key == "slow" for key, _ in items):
            entered.set()
            release.wait(10)
        write(self, items)

    monkeypatch.setattr(DirectoryStore, "_set_blocking", slow_write)
    store = aiostore.sync.TempStore(dir=tmp_path)
    store["a"] = b"1"
    writer = threading.Thread(target=store.__setitem__, args=("slow", b"v"))
    writer.start()
    assert entered.wait(10)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and os.path.isdir(store.path)  # waits for the write
    with pytest.raises(ClosedStoreError, match="closed"):
        store["b"] = b"2"  # no write begins after close()
    release.set()
    writer.join(10)
    closer.join(10)
    assert not closer.is_alive() and not os.path.exists(store.path)


def test_a_temp_store_closed_while_threads_write_leaves_nothing(tmp_path: pathlib.Path) -> None:
    errors: list[BaseException] = []

    def write(store: TempStore) -> None:
        try:
            while True:
                store.set_many_sync({f"a/{i}": b"x" * 1000 for i in range(64)})
        except ClosedStoreError:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for _ in range(5):
        store = TempStore(dir=tmp_path)
        threads = [threading.Thread(target=write, args=(store,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.01)
        store.close_sync()
        for thread in threads:
            thread.join(10)
        assert errors == [] and not os.path.exists(store.path)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_forked_childs_temp_store_leaves_the_directory_to_the_parent(tmp_path: pathlib.Path) -> None:
    store = aiostore.sync.TempStore(dir=tmp_path)
    store["a"] = b"1"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(10)
            store["child"] = b"2"
            store.close()  # the parent's directory: a copy never removes it
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store["child"] == b"2" and store["a"] == b"1"
    store.close()
    assert not os.path.exists(store.path)


@pytest.mark.anyio
async def test_async_temp_store(tmp_path: pathlib.Path) -> None:
    async with TempStore(dir=tmp_path) as store:
        await store.set("x/y", b"1")
        assert await store.listdir("x") == ["y"]
    assert os.listdir(tmp_path) == []


@pytest.mark.anyio
async def test_a_name_whose_last_key_is_deleted_leaves_the_listing(root: pathlib.Path) -> None:
    # zarr 3 deletes an array's only chunk a/c/0: "c" must not stay listed under "a".
    store = DirectoryStore(str(root))
    await store.set_many({"a/zarr.json": b"{}", "a/c/0": b"x", "a/d/e/f": b"y", "a/d/g": b"z"})
    await store.delete("a/c/0")
    assert await store.listdir("a") == ["d", "zarr.json"]
    await store.delete_many(["a/d/e/f", "missing/x"])
    assert await store.listdir("a") == ["d", "zarr.json"] and await store.listdir("a/d") == ["g"]
    store.delete_sync("a/d/g")
    assert await store.listdir("a") == ["zarr.json"]
    assert sorted(os.listdir(root)) == ["a"]  # the root itself is kept, however empty it gets
    store.delete_sync("a/zarr.json")
    assert os.listdir(root) == [] and await store.listdir() == []
    await store.set("a/c/0", b"again")  # a pruned path is made again on the next write
    assert await store.get("a/c/0") == b"again"


# -- issue 11: errors name the key, and killed writers' temporary files ------------------------


def test_a_failed_write_names_the_key_not_the_temporary_file(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = aiostore.sync.DirectoryStore(root)
    store["a/0"] = b"old"

    def full_disk(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError) as caught:
        store["a/0"] = b"new"
    monkeypatch.undo()
    error = caught.value
    assert error.errno == errno.ENOSPC and "'a/0'" in str(error) and TEMP_PREFIX not in str(error)
    assert error.filename == str(root / "a" / "0") and isinstance(error.__cause__, OSError)
    assert store["a/0"] == b"old" and temp_files(root) == []


def test_a_key_below_a_value_names_the_value_at_any_depth(root: pathlib.Path) -> None:
    store = aiostore.sync.DirectoryStore(root)
    store["a/b"] = b"v"
    with pytest.raises(KeyConflictError) as caught:
        store["a/b/c/d"] = b"x"
    assert (caught.value.key, caught.value.existing) == ("a/b/c/d", "a/b")
    store["c"] = b"w"
    with pytest.raises(KeyConflictError, match=r"'a/b/x/y'.*the key 'a/b'"):
        store.rename("c", "a/b/x/y")
    assert sorted(store) == ["a/b", "c"]


def test_remove_temp_files_removes_only_those_older_than_the_open(root: pathlib.Path) -> None:
    (root / "a").mkdir(parents=True)
    stale = root / "a" / f"{TEMP_PREFIX}killed-writer"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    store = DirectoryStore(str(root))
    fresh = root / f"{TEMP_PREFIX}in-flight"
    fresh.write_bytes(b"being written")
    os.utime(fresh, (store.opened_at + 5, store.opened_at + 5))
    assert list(store.list_sync()) == []  # never listed as keys
    assert anyio.run(store.remove_temp_files) == 1
    assert not stale.exists() and fresh.exists()
    assert store.remove_temp_files_sync() == 0
    with pytest.raises(aiostore.ReadOnlyError):
        DirectoryStore(str(root), read_only=True).remove_temp_files_sync()
