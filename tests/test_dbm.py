"""DBMStore: one lock hold per batch, threads, read-only, flush/close, pickling, any dbm-style open."""

from __future__ import annotations

import contextlib
import dbm.dumb
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import pytest

# The whole async Store protocol suite, run on DBMStore (fixtures below).
from test_store_protocol import (  # noqa: F401
    test_async_with_closes_and_aclose_is_idempotent,
    test_byte_range_of_missing_key,
    test_byte_ranges,
    test_clear,
    test_closed_store_raises_value_error,
    test_contains,
    test_delete_and_delete_many,
    test_every_bytes_like_value_is_stored_as_its_bytes,
    test_get_many_omits_missing_and_normalizes,
    test_get_set_roundtrip_and_missing,
    test_getsize_zarr2_semantics,
    test_invalid_byte_ranges,
    test_invalid_key_in_a_batch_writes_nothing,
    test_list_argument_checks,
    test_list_is_streamed,
    test_list_with_prefix,
    test_listdir,
    test_rename,
    test_rename_refuses_root_and_into_itself,
    test_rmdir,
    test_set_many_accepts_pairs_and_last_duplicate_wins,
    test_special_numpy_values,
    test_stored_values_do_not_alias_the_callers_buffer,
    test_wrong_value_type_is_type_error_and_writes_nothing,
)

import aiostore.sync
from aiostore import BatchWriteError, ClosedStoreError, DBMStore, ReadOnlyError
from aiostore.errors import BackendError, SettingsConflictError, StoreError, StoreLockedError

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., DBMStore]:
    counter = iter(range(1000))
    return lambda **kw: DBMStore(tmp_path / f"db{next(counter)}", flag="n", open=dbm.dumb.open, **kw)


@pytest.fixture
async def store(make_store: Callable[..., DBMStore]) -> AsyncIterator[DBMStore]:
    async with make_store() as s:
        yield s


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "data.db")


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


class CountingLock:
    """Stands in for a store's lock, counting how often it is taken."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.holds = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.holds += 1

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


# -- batches: one hop, one lock hold ---------------------------------------------------


async def test_get_many_of_1000_keys_is_one_hop_and_one_lock_hold(
    path: str, thread_hops: list[object]
) -> None:
    async with DBMStore(path, open=dbm.dumb.open) as store:
        await store.set_many({f"c/{i}": str(i).encode() for i in range(1000)})
        assert len(thread_hops) == 1
        lock = CountingLock()
        store._lock = lock
        thread_hops.clear()
        found = await store.get_many([f"c/{i}" for i in range(1000)] + ["c/missing"])
        assert len(found) == 1000 and found["c/999"] == b"999"
        assert (len(thread_hops), lock.holds) == (1, 1)
        await store.set_many({f"c/{i}": b"new" for i in range(1000)})
        await store.delete_many([f"c/{i}" for i in range(50)])  # dbm.dumb rewrites its index per delete
        assert (len(thread_hops), lock.holds) == (3, 3)


def test_sync_side_makes_no_thread_hops(path: str, thread_hops: list[object]) -> None:
    with aiostore.sync.DBMStore(path, open=dbm.dumb.open) as store:
        store.setitems({f"k{i}": b"v" for i in range(100)})
        assert len(store.getitems([f"k{i}" for i in range(100)], contexts={})) == 100
    assert thread_hops == []


def test_many_threads_on_dbm_dumb_stay_consistent(path: str) -> None:
    # dbm.dumb is plain Python with no locking of its own: without the store's
    # lock, concurrent writers corrupt its index.
    store = aiostore.sync.DBMStore(path, open=dbm.dumb.open)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for j in range(20):
                batch = {f"{n}/{j}/{i}": f"{n}-{j}-{i}".encode() * 10 for i in range(10)}
                store.setitems(batch)
                assert store.getitems(list(batch), contexts={}) == batch
                store[f"{n}/single"] = bytes([j])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.close()
    with aiostore.sync.DBMStore(path, flag="r", open=dbm.dumb.open) as reopened:
        assert len(reopened) == 8 * 20 * 10 + 8
        assert reopened["7/19/9"] == b"7-19-9" * 10 and reopened["3/single"] == bytes([19])


# -- whole-path operations ---------------------------------------------------------------


async def test_rename_moves_in_one_lock_hold(path: str) -> None:
    async with DBMStore(path, open=dbm.dumb.open) as store:
        await store.set_many({"a/b/x": b"1", "a/b/b/x": b"2", "a/y": b"3"})
        lock = CountingLock()
        store._lock = lock
        await store._rename("a/b", "n")  # the move itself; rename() first checks src and dst
        assert lock.holds == 1
        assert sorted([k async for k in store.list()]) == ["a/y", "n/b/x", "n/x"]
        assert await store.get_many(["n/x", "n/b/x"]) == {"n/x": b"1", "n/b/x": b"2"}


async def test_keys_are_utf8(path: str) -> None:
    async with DBMStore(path, open=dbm.dumb.open) as store:
        await store.set("ünï/cödé", b"1")
        assert [k async for k in store.list()] == ["ünï/cödé"]
        assert store.db.keys() == ["ünï/cödé".encode()]
        assert await store.listdir() == ["ünï"]


# -- flags, read-only, flush, close -----------------------------------------------------


async def test_read_only_flag(path: str) -> None:
    async with DBMStore(path, open=dbm.dumb.open) as store:
        await store.set("a", b"1")
    async with DBMStore(path, flag="r", open=dbm.dumb.open) as store:
        assert store.read_only
        assert await store.get("a") == b"1"
        for write in (store.set("a", b"2"), store.delete("a"), store.rmdir(""), store.rename("a", "b")):
            with pytest.raises(ReadOnlyError):
                await write
    with pytest.raises(ValueError, match="flag"):
        DBMStore(path, flag="x")


def test_flush_makes_writes_visible_to_another_opener(path: str) -> None:
    writer = aiostore.sync.DBMStore(path, open=dbm.dumb.open)
    writer["a"] = b"1"
    writer.flush()  # dbm.dumb writes its index only on sync/close
    with aiostore.sync.DBMStore(path, flag="r", open=dbm.dumb.open) as reader:
        assert reader["a"] == b"1"
    writer.close()


def test_flag_n_starts_empty_but_unpickling_does_not_empty(path: str) -> None:
    with aiostore.sync.DBMStore(path, open=dbm.dumb.open) as store:
        store["old"] = b"1"
    store = aiostore.sync.DBMStore(path, flag="n", open=dbm.dumb.open)
    assert len(store) == 0
    store["a"] = b"1"
    dump = pickle.dumps(store)  # flushes, so the copy sees "a"
    store.close()
    assert pickle.dumps(store) == dump  # picklable when closed, same state
    again = pickle.loads(dump)
    assert again.flag == "c" and again["a"] == b"1"
    again.close()


async def test_closing_waits_for_a_running_batch_and_later_calls_fail_clearly(path: str) -> None:
    store = DBMStore(path, open=dbm.dumb.open)
    await store.set("a", b"1")
    store._close_blocking()  # as if closed from another thread mid-way
    with pytest.raises(ClosedStoreError, match="is closed"):
        store._get_blocking([("a", None)])
    with pytest.raises((BatchWriteError, ClosedStoreError)) as info:
        await store.set_many({"a": b"2"})
    # A batch failed only by the close may be reported as a ClosedStoreError caused by it.
    batch = info.value if isinstance(info.value, BatchWriteError) else info.value.__cause__
    assert isinstance(batch, BatchWriteError) and isinstance(batch.failed["a"], ClosedStoreError)


def test_write_lock_false_works_and_survives_pickling(path: str) -> None:
    # zarr's Gnu variant runs with write_lock=False (gdbm locks for itself).
    store = aiostore.sync.DBMStore(path, open=dbm.dumb.open, write_lock=False)
    store.setitems({"a": b"1", "b/c": b"2"})
    assert store.getitems(["a", "b/c"], contexts={}) == {"a": b"1", "b/c": b"2"}
    copy = pickle.loads(pickle.dumps(store))
    store.close()
    assert copy.write_lock is False and copy["b/c"] == b"2"
    copy.close()


# -- any dbm-style open ------------------------------------------------------------------


class FakeDBM:
    """A third-party dbm-style database kept in memory, with no ``sync``
    (like dbm.ndbm): the store flushes it by closing and reopening."""

    files: ClassVar[dict[str, dict[bytes, bytes]]] = {}
    opens: ClassVar[list[tuple[str, str, int, dict[str, Any]]]] = []

    def __init__(self, path: str, flag: str, mode: int, **kwargs: Any) -> None:
        FakeDBM.opens.append((path, flag, mode, kwargs))
        if flag[0] == "n" or path not in self.files:
            self.files[path] = {}
        self.data = dict(self.files[path])
        self.path = path

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        assert type(key) is bytes and type(value) is bytes
        self.data[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self.data[key]

    def __contains__(self, key: bytes) -> bool:
        return key in self.data

    def keys(self) -> list[bytes]:
        return list(self.data)

    def close(self) -> None:
        self.files[self.path] = dict(self.data)


@pytest.fixture
def fake_dbm() -> Iterator[type[FakeDBM]]:
    FakeDBM.files.clear()
    FakeDBM.opens.clear()
    yield FakeDBM


def test_a_third_party_open_without_sync(path: str, fake_dbm: type[FakeDBM]) -> None:
    store = aiostore.sync.DBMStore(path, flag="n", mode=0o600, open=fake_dbm, extra=1)
    store.setitems({"a/b": b"1", "a/c": b"22"})
    assert fake_dbm.files[store.path] == {}
    store.flush()  # no sync(): close and reopen -- with "c", never "n" again
    assert fake_dbm.files[store.path] == {b"a/b": b"1", b"a/c": b"22"}
    assert [o[1:] for o in fake_dbm.opens] == [("n", 0o600, {"extra": 1}), ("c", 0o600, {"extra": 1})]
    assert store.listdir("a") == ["b", "c"] and store.getsize("a") == 3
    store.close()


def test_equality_follows_path_and_open(path: str, fake_dbm: type[FakeDBM]) -> None:
    a = DBMStore(path, open=fake_dbm)
    assert a == DBMStore(path, flag="r", open=fake_dbm)
    assert a != DBMStore(path + "x", open=fake_dbm)
    with pytest.raises(SettingsConflictError, match="open="):  # one open database per path
        DBMStore(path, open=dbm.dumb.open)
    a.close_sync()
    assert a == pickle.loads(pickle.dumps(a))
    assert a != DBMStore(path, open=dbm.dumb.open)


# -- issue 11: one writing process, files that are not databases ------------------------------


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_second_process_is_refused_while_one_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "data.db")
    store = DBMStore(path, open=dbm.dumb.open)
    store.set_many_sync({"a": b"1"})
    store.flush_sync()
    opener = (
        "import dbm.dumb, aiostore\ntry:\n"
        "    aiostore.DBMStore({!r}, {!r}, open=dbm.dumb.open).close_sync()\n"
    )
    refusal = (
        "except aiostore.StoreLockedError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "else:\n"
        "    print('opened')\n"
    )
    for flag in ("c", "r"):  # a writer, and a reader too (it would read a stale index)
        refused = _run(opener.format(path, flag) + refusal)
        assert refused.stdout.startswith("WriterHoldsLockError"), (flag, refused.stdout, refused.stderr)
        assert path in refused.stdout and "one writer" in refused.stdout
        assert "open for writing" in refused.stdout
    copy = pickle.loads(pickle.dumps(store))  # a copy in this process shares the database
    assert copy.get_sync("a") == b"1" and copy.db is store.db
    copy.close_sync()
    store.close_sync()
    assert not os.path.exists(path + ".lock")  # the last writer removes its lock file
    assert _run(opener.format(path, "r") + refusal).stdout.strip() == "opened"
    assert _run(opener.format(path, "c") + refusal).stdout.strip() == "opened"


def test_a_file_that_is_not_a_database_is_a_backend_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, not a database")
    with pytest.raises(StoreError) as caught:
        DBMStore(str(path))
    assert isinstance(caught.value, BackendError) and str(path) in str(caught.value)
    assert caught.value.__cause__ is not None
    assert path.read_bytes() == b"just some text, not a database"
    assert not os.path.exists(str(path) + ".lock")  # a failed open lets go of its lock
    with pytest.raises(BackendError, match="cannot open it as a DBM database"):
        DBMStore(str(tmp_path / "missing.db"), flag="r")
    with pytest.raises(IsADirectoryError, match="not a directory"):
        DBMStore(str(tmp_path))
    with pytest.raises(TypeError, match="open must be a dbm-style open function"):
        DBMStore(str(tmp_path / "x.db"), open="dbm.dumb")  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="SIGKILL of a forked writer")
@pytest.mark.xfail(strict=True, reason="dbm.dumb is not crash-safe: DBMStore's docs say so (issue 11)")
def test_dbm_dumb_keeps_old_or_new_values_when_its_writer_is_killed(tmp_path: Path) -> None:
    # dbm.dumb rewrites a value in place when the new one fits (its index keeps the old
    # length until sync), and keeps a grown value's new place only in memory.
    path = str(tmp_path / "x.db")
    store = DBMStore(path, open=dbm.dumb.open)
    store.set_many_sync({"shrinks": b"A" * 1000, "grows": b"A" * 10})
    store.close_sync()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        child = DBMStore(path, open=dbm.dumb.open)
        child.set_many_sync({"shrinks": b"B" * 10, "grows": b"B" * 1000})
        os.kill(os.getpid(), 9)
    os.waitpid(pid, 0)
    after = DBMStore(path, "r", open=dbm.dumb.open).get_many_sync(["shrinks", "grows"])
    assert after["shrinks"] in (b"A" * 1000, b"B" * 10)  # torn: b"BBBBBBBBBBAAA..."
    assert after["grows"] == b"B" * 1000  # the write had returned: lost


# -- one open database per process, copies, readers elsewhere, fork (the stress suite's bugs) ------


@contextlib.contextmanager
def opened(*args: Any, **kwargs: Any) -> Iterator[DBMStore]:
    """A DBMStore, closed (close_sync) at the end of the block."""
    store = DBMStore(*args, **kwargs)
    try:
        yield store
    finally:
        store.close_sync()


def test_writable_stores_of_one_process_share_one_database_and_lose_nothing(path: str) -> None:
    # dask and zarr 2 unpickle a copy of the store per task in one worker process: each
    # had its own dbm.dumb index, and whichever closed last wrote its index over the other's.
    first = DBMStore(path, open=dbm.dumb.open)
    second = DBMStore(path, open=dbm.dumb.open)
    copy = pickle.loads(pickle.dumps(first))
    assert first.db is second.db
    written: dict[str, bytes] = {}
    lock = threading.Lock()

    def write(store: DBMStore, name: str) -> None:
        for i in range(20):
            batch = {f"{name}/{i}/{j}": f"{name}{i}{j}".encode() * 50 for j in range(5)}
            store.set_many_sync(batch)
            with lock:
                written.update(batch)

    threads = [
        threading.Thread(target=write, args=(store, f"{name}{t}"))
        for name, store in (("a", first), ("b", second), ("c", copy))
        for t in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert copy.db is first.db
    reader = DBMStore(path, flag="r", open=dbm.dumb.open)  # shares the writable one: sees it all
    assert reader.get_many_sync(list(written)) == written
    first.close_sync()  # the first to close used to lose the others' keys, or they its
    copy.close_sync()
    assert reader.get_sync("a0/0/0") == written["a0/0/0"]
    second.close_sync()
    reader.close_sync()
    again = DBMStore(path, flag="r", open=dbm.dumb.open)
    assert again.get_many_sync(list(written)) == written and len(list(again.list_sync())) == len(written)
    again.close_sync()


def test_flag_n_is_refused_while_the_database_is_open_in_this_process(path: str) -> None:
    store = DBMStore(path, open=dbm.dumb.open)
    store.set_sync("a", b"1")
    with pytest.raises(SettingsConflictError, match="flag='c' there, 'n' here"):
        DBMStore(path, flag="n", open=dbm.dumb.open)  # would empty it under `store`
    with pytest.raises(SettingsConflictError, match="open="):
        DBMStore(path, open=dbm.open)  # another implementation's object on the same files
    assert store.get_sync("a") == b"1"
    store.close_sync()
    with opened(path, flag="n", open=dbm.dumb.open) as fresh:  # closed: "n" empties it
        assert list(fresh.list_sync()) == []


_SUBPROCESS_COPY = """
import pickle, sys
import aiostore
copy = pickle.load(open(sys.argv[1], "rb"))  # must not raise: dask unpickles in its comm handler
print("unpickled", copy.db is None)
for name, call in [("get", lambda: copy.get_sync("a")), ("set", lambda: copy.set_sync("b", b"2"))]:
    try:
        print(name, call())
    except aiostore.StoreLockedError as exc:
        print(name, "refused", type(exc).__name__)
copy.close_sync()
"""


def test_unpickling_takes_no_lock_and_a_copy_is_refused_at_first_use(tmp_path: Path) -> None:
    path = str(tmp_path / "data.db")
    store = DBMStore(path, open=dbm.dumb.open)
    store.set_sync("a", b"1")
    dump = tmp_path / "store.pickle"
    dump.write_bytes(pickle.dumps(store))
    script = [sys.executable, "-c", _SUBPROCESS_COPY, str(dump)]
    out = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == [
        "unpickled True",
        "get refused WriterHoldsLockError",  # a read would be stale: refused, inside the task
        "set refused WriterHoldsLockError",
    ], out.stdout
    # The scheduler's copy, in the client's process: never used, it holds no lock, so
    # once the client closes its store a worker process may write.
    scheduler_copy = pickle.loads(dump.read_bytes())
    store.close_sync()
    assert not os.path.exists(path + ".lock")
    out = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert out.stdout.split("\n")[:3] == ["unpickled True", "get b'1'", "set None"], out.stderr
    # This process's copy takes the lock at its first write, and sees the worker's.
    assert scheduler_copy.get_sync("b") == b"2"
    scheduler_copy.set_sync("c", b"3")
    assert scheduler_copy.db is not None and os.path.exists(path + ".lock")
    scheduler_copy.close_sync()


class SyncCountingDBM(FakeDBM):
    """A FakeDBM with ``sync``, counting its calls."""

    syncs: ClassVar[int] = 0

    def sync(self) -> None:
        SyncCountingDBM.syncs += 1
        self.files[self.path] = dict(self.data)


def test_pickling_a_copy_that_never_wrote_does_not_flush(path: str, fake_dbm: type[FakeDBM]) -> None:
    SyncCountingDBM.syncs = 0
    store = DBMStore(path, flag="n", open=SyncCountingDBM)
    store.set_sync("a", b"1")
    copy = pickle.loads(pickle.dumps(store))  # the writer flushes what it wrote
    assert SyncCountingDBM.syncs == 1 and copy.flag == "c"
    assert copy.get_sync("a") == b"1"  # shares the open database
    pickle.dumps(copy)  # distributed pickles task specs again: no flush, no lock
    pickle.dumps(pickle.loads(pickle.dumps(copy)))
    assert SyncCountingDBM.syncs == 1
    copy.set_sync("b", b"2")
    pickle.dumps(copy)  # now it wrote
    assert SyncCountingDBM.syncs == 2
    copy.close_sync()
    store.close_sync()


_SUBPROCESS_READER = """
import sys, dbm.dumb
import aiostore
reader = aiostore.DBMStore(sys.argv[1], "r", open=dbm.dumb.open)
print(reader.get_sync("a"), flush=True)
sys.stdin.readline()  # hold it open until told
reader.close_sync()
"""


def test_no_process_reads_stale_data_while_another_writes(tmp_path: Path) -> None:
    # dbm.dumb writes its index only at sync or close: a reader elsewhere read every
    # value the writer had not synced as missing (zarr: as fill values), silently.
    path = str(tmp_path / "data.db")
    with opened(path, open=dbm.dumb.open) as store:
        store.set_sync("a", b"1")
    reader = subprocess.Popen(
        [sys.executable, "-c", _SUBPROCESS_READER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "b'1'"
        with pytest.raises(StoreLockedError, match="open for reading elsewhere") as info:
            DBMStore(path, open=dbm.dumb.open)  # a writer is refused while readers read
        assert path in str(info.value) and "one writer" in str(info.value)
        assert pickle.loads(pickle.dumps(info.value)).args == info.value.args  # reaches a dask client
        with opened(path, flag="r", open=dbm.dumb.open) as also_reading:
            assert also_reading.get_sync("a") == b"1"
        reader.stdin.write("done\n")
        reader.stdin.flush()
        assert reader.wait(60) == 0, reader.stderr.read() if reader.stderr else ""
    finally:
        if reader.poll() is None:
            reader.kill()
    with opened(path, open=dbm.dumb.open) as store:  # the readers are gone: it may write
        store.set_sync("a", b"2")
        out = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS_READER, path], input="\n", capture_output=True, text=True
        )
        assert out.returncode != 0 and "WriterHoldsLockError" in out.stderr  # never b'1', stale
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_READER, path], input="\n", capture_output=True, text=True
    )
    assert out.stdout.strip() == "b'2'", out.stderr


def test_a_reader_turned_writer_is_refused_while_others_read_and_keeps_reading(tmp_path: Path) -> None:
    path = str(tmp_path / "data.db")
    with opened(path, open=dbm.dumb.open) as store:
        store.set_sync("a", b"1")
    mine = DBMStore(path, flag="r", open=dbm.dumb.open)
    original = DBMStore(path, flag="r", open=dbm.dumb.open)
    copy = pickle.loads(pickle.dumps(original))
    reader = subprocess.Popen(
        [sys.executable, "-c", _SUBPROCESS_READER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "b'1'"
        with pytest.raises(StoreLockedError, match="open for reading elsewhere"):
            DBMStore(path, open=dbm.dumb.open)  # this process's read lock becomes a write lock: refused
        assert mine.get_sync("a") == b"1"  # and this process still holds its read lock
        reader.stdin.write("done\n")
        reader.stdin.flush()
        assert reader.wait(60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
    writer = DBMStore(path, open=dbm.dumb.open)  # the other reader is gone
    writer.set_sync("b", b"2")
    assert mine.get_many_sync(["a", "b"]) == {"a": b"1", "b": b"2"}  # the readers here share it
    assert copy.get_sync("b") == b"2" and copy.db is writer.db
    for store in (writer, mine, copy, original):
        store.close_sync()
    assert not os.path.exists(path + ".lock")


def _in_forked_child(body: Callable[[], int]) -> int:
    """Fork, run ``body`` in the child (its return value is the exit code), guarded by
    an alarm: a child that hangs is killed, and the exit code says so."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            signal.alarm(20)
            code = body()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_child_forked_while_a_thread_holds_the_stores_locks_does_not_hang(tmp_path: Path) -> None:
    import aiostore.stores._dbmshared as dbmshared

    store = DBMStore(tmp_path / "data.db", open=dbm.dumb.open)
    store.set_sync("a", b"1")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # as a thread in the middle of a batch, and of an open
        with store._lock, dbmshared._OPEN_LOCK:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)

        def child() -> int:
            assert store.get_sync("a") == b"1"
            with opened(tmp_path / "other.db", open=dbm.dumb.open) as other:
                other.set_sync("x", b"y")
            return 0

        assert _in_forked_child(child) == 0  # -SIGALRM: it hung on a lock the thread held
    finally:
        release.set()
        thread.join()
    assert store.get_sync("a") == b"1"
    store.close_sync()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_childs_writes_are_refused_not_lost(tmp_path: Path) -> None:
    path = str(tmp_path / "data.db")
    store = DBMStore(path, open=dbm.dumb.open)
    store.set_many_sync({"a": b"1", "b": b"2"})

    def child() -> int:
        assert store.get_many_sync(["a", "b"]) == {"a": b"1", "b": b"2"}  # reads work
        for write in (
            lambda: store.set_sync("child", b"x"),
            lambda: store.set_many_sync({"child": b"x"}),
            lambda: store.delete_sync("a"),
            lambda: store.rmdir_sync(""),
        ):
            try:
                write()
            except StoreLockedError as exc:
                assert "forked" in str(exc) and path in str(exc), str(exc)
            else:
                return 1  # written into the child's copy of the index: lost
        try:
            DBMStore(path, open=dbm.dumb.open)  # nor through a store of its own
        except StoreLockedError:
            pass
        else:
            return 2
        store.close_sync()  # never syncs or closes the parent's database, keeps its lock file
        return 0 if os.path.exists(path + ".lock") else 3

    assert _in_forked_child(child) == 0
    store.set_sync("c", b"3")  # the parent still writes
    store.close_sync()
    with opened(path, flag="r", open=dbm.dumb.open) as again:
        assert sorted(again.list_sync()) == ["a", "b", "c"]
        assert again.get_many_sync(["a", "b", "c", "child"]) == {"a": b"1", "b": b"2", "c": b"3"}
