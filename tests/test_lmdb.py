"""LMDBStore: one transaction per batch, safe values, map growth, threads, processes, lifecycle."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import lmdb
import pytest
from forking import in_forked_child

# The whole async Store protocol suite, run on LMDBStore (fixtures below).
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
from aiostore import BatchWriteError, ClosedStoreError, LMDBStore, ReadOnlyError
from aiostore.errors import BackendError, SettingsConflictError, StoreError

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., LMDBStore]:
    counter = iter(range(1000))
    return lambda **kw: LMDBStore(tmp_path / f"db{next(counter)}", **kw)


@pytest.fixture
async def store(make_store: Callable[..., LMDBStore]) -> AsyncIterator[LMDBStore]:
    # The protocol suite, whose reads are bytes: buffers=False. (test_lmdb_buffers
    # runs it again with buffers=True, where reads are memoryviews.)
    async with make_store(buffers=False) as s:
        yield s


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "data.mdb")


class CountingEnv:
    """Stands in for a store's ``lmdb.Environment``, counting transactions."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.reads = 0
        self.writes = 0
        self.mapsizes: list[int] = []

    def begin(self, **kwargs: Any) -> Any:
        if kwargs.get("write"):
            self.writes += 1
        else:
            self.reads += 1
        return self.env.begin(**kwargs)

    def set_mapsize(self, size: int) -> None:
        self.mapsizes.append(size)
        self.env.set_mapsize(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


def count_transactions(store: LMDBStore) -> CountingEnv:
    shared = store._shared
    assert shared is not None
    counting = CountingEnv(shared.env)
    shared.env = counting  # type: ignore[assignment]
    return counting


# -- batches: one hop, one transaction ----------------------------------------------


async def test_get_many_of_1000_keys_is_one_hop_and_one_transaction(
    path: str, thread_hops: list[object]
) -> None:
    async with LMDBStore(path) as store:
        await store.set_many({f"c/{i}": str(i).encode() for i in range(1000)})
        assert len(thread_hops) == 1  # the whole set_many: one hop
        txns = count_transactions(store)
        thread_hops.clear()
        found = await store.get_many([f"c/{i}" for i in range(1000)] + ["c/missing"])
        assert len(found) == 1000 and found["c/999"] == b"999"
        assert len(thread_hops) == 1
        assert (txns.reads, txns.writes) == (1, 0)
        await store.set_many({f"c/{i}": b"new" for i in range(1000)})
        await store.delete_many([f"c/{i}" for i in range(500)])
        assert (txns.reads, txns.writes) == (1, 2)


async def test_concurrent_single_gets_are_coalesced(path: str, thread_hops: list[object]) -> None:
    async with LMDBStore(path) as store:
        await store.set_many({f"k{i}": bytes([i]) for i in range(200)})
        thread_hops.clear()
        results: dict[int, bytes] = {}

        async def get(i: int) -> None:
            results[i] = await store.get(f"k{i}")

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(get, i)
        assert results == {i: bytes([i]) for i in range(200)}
        assert len(thread_hops) <= 3


def test_sync_side_makes_no_thread_hops(path: str, thread_hops: list[object]) -> None:
    with aiostore.sync.LMDBStore(path) as store:
        store.setitems({f"k{i}": b"v" for i in range(100)})
        assert len(store.getitems([f"k{i}" for i in range(100)], contexts={})) == 100
    assert thread_hops == []


# -- values outlive their transaction safely ---------------------------------------------


@pytest.mark.parametrize("buffers", [True, False])
async def test_values_are_unaffected_by_later_writes(path: str, buffers: bool) -> None:
    async with LMDBStore(path, buffers=buffers) as store:
        await store.set_many({f"k{i}": bytes([i]) * 3000 for i in range(50)})
        before = await store.get_many([f"k{i}" for i in range(50)])
        single = await store.get("k7")
        ranged = await store.get("k9", byte_range=(10, 20))
        # Rewrite and delete everything many times, so LMDB reuses the pages
        # the earlier values were read from.
        for round_ in range(20):
            await store.set_many({f"k{i}": bytes([255 - round_]) * 3000 for i in range(50)})
            await store.delete_many([f"k{i}" for i in range(0, 50, 2)])
        # buffers=True: read-only memoryviews, whose snapshot stays open while they live.
        kind = memoryview if buffers else bytes
        assert all(type(v) is kind for v in [*before.values(), single, ranged])
        assert before == {f"k{i}": bytes([i]) * 3000 for i in range(50)}
        assert (single, ranged) == (bytes([7]) * 3000, bytes([9]) * 10)


@pytest.mark.parametrize("buffers", [True, False])
async def test_byte_ranges_with_and_without_buffers(path: str, buffers: bool) -> None:
    async with LMDBStore(path, buffers=buffers) as store:
        await store.set("k", b"0123456789")
        assert await store.get("k", byte_range=(2, 5)) == b"234"
        assert await store.get("k", byte_range=(-3, None)) == b"789"
        assert await store.get("k", byte_range=(8, 50)) == b"89"
        assert await store.getsize("k") == 10
        with pytest.raises(KeyError):
            await store.get("nope", byte_range=(0, 1))


# -- a full map grows; nothing half-written ------------------------------------------


async def test_full_map_grows_and_the_batch_is_written_whole(path: str) -> None:
    async with LMDBStore(path, map_size=64 * 1024) as store:
        txns = count_transactions(store)
        values = {f"big/{i}": os.urandom(8192) for i in range(128)}  # 1 MiB
        await store.set_many(values)
        await store.set("one/more", os.urandom(256 * 1024))
        assert len(txns.mapsizes) >= 4 and txns.mapsizes == sorted(txns.mapsizes)
        assert await store.get_many(list(values)) == values
        assert store.db.info()["map_size"] >= 1024 * 1024


def test_full_map_grows_with_many_threads_writing(path: str) -> None:
    store = aiostore.sync.LMDBStore(path, map_size=64 * 1024)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for j in range(10):
                store.setitems({f"t{n}/{j}/{i}": bytes([n]) * 4096 for i in range(8)})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store) == 6 * 10 * 8
    assert store.getitems(["t5/9/7"], contexts={}) == {"t5/9/7": bytes([5]) * 4096}
    store.close()


async def test_map_that_cannot_grow_fails_clearly_and_writes_nothing(path: str) -> None:
    async with LMDBStore(path, map_size=64 * 1024) as store:
        await store.set("old", b"kept")
        shared = store._shared
        assert shared is not None

        class NoGrowth(CountingEnv):
            def set_mapsize(self, size: int) -> None:
                raise lmdb.MemoryError("mmap: cannot allocate memory")

        shared.env = NoGrowth(shared.env)  # type: ignore[assignment]
        with pytest.raises(BatchWriteError) as info:
            await store.set_many({f"big/{i}": os.urandom(8192) for i in range(64)} | {"old": b"new"})
        assert len(info.value.failed) == 65
        cause = info.value.failed["old"]
        assert isinstance(cause, OSError) and "is full at map_size=65536" in str(cause)
        assert [k async for k in store.list()] == ["old"]
        assert await store.get("old") == b"kept"


async def test_cancelled_set_many_is_all_or_nothing(path: str) -> None:
    async with LMDBStore(path) as store:
        values = {f"k/{i}": b"x" * 4096 for i in range(3000)}
        with anyio.move_on_after(0.001):
            await store.set_many(values)
        found = await store.get_many(list(values))
        assert len(found) in (0, len(values))


# -- keys, listing, whole-path operations ----------------------------------------------


async def test_keys_too_long_for_lmdb(path: str) -> None:
    # A key LMDB cannot hold is bad input, like a ".." key: the key gate refuses it
    # with a ValueError naming it, and nothing of the call is written.
    long_key = "x" * 600
    async with LMDBStore(path) as store:
        with pytest.raises(ValueError, match="600 bytes long; this store's keys are at most 511 bytes"):
            await store.set_many({"ok": b"1", long_key: b"2"})
        assert not await store.contains("ok")
        for refused in (
            store.set(long_key, b"2"),
            store.get_many(["ok", long_key]),
            store.contains(long_key),
            store.get(long_key),
            store.delete(long_key),
            store.delete_many([long_key, "ok"]),
        ):
            with pytest.raises(ValueError, match="at most 511 bytes"):
                await refused
        await store.set("ok", b"1")
        assert await store.get("ok") == b"1"


async def test_listdir_and_getsize_skip_subtrees_correctly(path: str) -> None:
    # Neighbours of "a/b/" in LMDB's byte order: "a/b-" < "a/b." < "a/b/" < "a/b0".
    keys = {"a/b/c": b"1", "a/b/d/e": b"22", "a/b-": b"333", "a/b.x": b"4444", "a/b0": b"5", "a/c": b"66"}
    async with LMDBStore(path) as store:
        await store.set_many(keys)
        assert await store.listdir("a") == ["b", "b-", "b.x", "b0", "c"]
        assert await store.listdir("a/b") == ["c", "d"]
        assert await store.getsize("a") == 3 + 4 + 1 + 2
        assert await store.getsize("a/b") == 1
        assert await store.listdir("a/b0") == []


async def test_rename_is_one_write_transaction(path: str) -> None:
    async with LMDBStore(path) as store:
        await store.set_many({"a/b/x": b"1", "a/b/b/x": b"2", "a/y": b"3"})
        txns = count_transactions(store)
        await store.rename("a/b", "n")
        assert txns.writes == 1
        assert sorted([k async for k in store.list()]) == ["a/y", "n/b/x", "n/x"]
        assert await store.get_many(["n/x", "n/b/x"]) == {"n/x": b"1", "n/b/x": b"2"}


async def test_list_pages_over_many_transactions(path: str) -> None:
    keys = [f"k/{i:05d}" for i in range(3000)]
    async with LMDBStore(path) as store:
        await store.set_many(dict.fromkeys(keys, b""))
        await store.set("kz", b"")
        assert [k async for k in store.list("k/")] == keys
        assert len([k async for k in store.list()]) == 3001


async def test_keys_that_are_not_utf8_still_round_trip(path: str) -> None:
    env = lmdb.open(path, map_size=2**20)
    with env.begin(write=True) as txn:
        txn.put(b"raw/\xff\xfe", b"v")
    env.close()
    async with LMDBStore(path) as store:
        (key,) = [k async for k in store.list()]
        assert await store.get(key) == b"v"
        await store.delete(key)
        assert [k async for k in store.list()] == []


# -- read-only, sharing, closing, pickling --------------------------------------------


@pytest.mark.parametrize("how", [{"read_only": True}, {"readonly": True}])
async def test_read_only(path: str, how: dict[str, bool]) -> None:
    async with LMDBStore(path) as store:
        await store.set("a", b"1")
    async with LMDBStore(path, **how) as store:
        assert store.read_only
        assert await store.get("a") == b"1"
        for write in (store.set("a", b"2"), store.delete("a"), store.rmdir(""), store.rename("a", "b")):
            with pytest.raises(ReadOnlyError):
                await write
        with pytest.raises(SettingsConflictError, match="readonly=True there, False here"):
            LMDBStore(path)
    async with LMDBStore(path) as store:
        assert await store.get("a") == b"1"


async def test_stores_on_one_database_share_one_environment(path: str) -> None:
    first = LMDBStore(path)
    second = LMDBStore(path)  # py-lmdb alone refuses a second open in one process
    assert first.db is second.db
    await first.set("a", b"1")
    assert await second.get("a") == b"1"
    await first.aclose()
    assert await second.get("a") == b"1"  # still open for the other store
    await second.aclose()
    with pytest.raises(ClosedStoreError):
        second.db  # noqa: B018
    async with LMDBStore(path) as third:  # reopens after both closed
        assert await third.get("a") == b"1"


def test_unclosed_stores_free_their_environment(path: str) -> None:
    import gc

    LMDBStore(path).db.close()  # create the database
    for _ in range(2):
        reader = LMDBStore(path, read_only=True)
        del reader  # dropped without close(): its read-only environment must go too
        gc.collect()
        writer = LMDBStore(path)  # would be refused if the read-only one lingered
        del writer
        gc.collect()


def test_pickle_round_trip(path: str) -> None:
    store = aiostore.sync.LMDBStore(path, map_size=2**24)
    store["a"] = b"1"
    dump = pickle.dumps(store)
    store.close()
    assert pickle.dumps(store) == dump  # picklable when closed, same state
    again = pickle.loads(dump)
    assert again["a"] == b"1"
    assert again.kwargs["map_size"] == 2**24 and again.buffers
    again.close()


def test_defaults_suit_large_stores(path: str) -> None:
    with aiostore.sync.LMDBStore(path) as store:
        flags = store.db.flags()
        assert not flags["sync"] and not flags["metasync"] and not flags["writemap"]
        assert store.db.info()["map_size"] >= 2**28
        store["a"] = b"1"
    # writemap=False keeps the data file as small as its data, not map_size.
    assert os.path.getsize(os.path.join(path, "data.mdb")) < 2**20


def test_subdir_false_is_one_file(tmp_path: Path) -> None:
    path = tmp_path / "single.lmdb"
    with aiostore.sync.LMDBStore(path, subdir=False) as store:
        store["a"] = b"1"
        again = aiostore.sync.LMDBStore(path, subdir=False)  # shares the environment
        assert again["a"] == b"1"
        again.close()
    assert path.is_file() and (tmp_path / "single.lmdb-lock").is_file()


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    with aiostore.sync.LMDBStore(tmp_path / "x" / "y" / "db.mdb") as store:
        store["a"] = b"1"
    assert (tmp_path / "x" / "y" / "db.mdb" / "data.mdb").exists()


# -- threads and processes -------------------------------------------------------------


def test_many_threads_read_and_write_consistently(path: str) -> None:
    store = aiostore.sync.LMDBStore(path)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for j in range(30):
                batch = {f"{n}/{j}/{i}": f"{n}-{j}-{i}".encode() for i in range(20)}
                store.setitems(batch)
                # A batch is one transaction: it is seen whole or not at all.
                assert store.getitems(list(batch), contexts={}) == batch
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store) == 8 * 30 * 20
    store.close()


CHILD = textwrap.dedent(
    """
    import sys
    import aiostore.sync
    store = aiostore.sync.LMDBStore(sys.argv[1], map_size=64 * 1024)
    store.setitems({f"child/{i}": bytes([i]) * 8192 for i in range(64)})
    store.close()
    """
)


def test_another_process_writes_and_grows_the_map(path: str) -> None:
    store = aiostore.sync.LMDBStore(path, map_size=64 * 1024)
    store["parent"] = b"p"
    subprocess.run([sys.executable, "-c", CHILD, path], check=True, timeout=60)
    # The child grew the map past ours: the next transaction adopts its size.
    found = store.getitems([f"child/{i}" for i in range(64)], contexts={})
    assert found == {f"child/{i}": bytes([i]) * 8192 for i in range(64)}
    del found  # buffers: while they live, the map cannot grow (test_lmdb_buffers)
    store.setitems({f"parent/{i}": b"x" * 8192 for i in range(64)})
    assert len(store) == 129
    store.close()


def test_pickled_store_opens_in_another_process(path: str) -> None:
    with aiostore.sync.LMDBStore(path) as store:
        store["a/b"] = b"from the parent"
        dump = pickle.dumps(store)
    code = "import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); print(bytes(s['a/b']).decode())"
    out = subprocess.run(
        [sys.executable, "-c", code], input=dump, capture_output=True, check=True, timeout=60
    )
    assert out.stdout.decode().strip() == "from the parent"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_forked_children_open_their_own_environment_while_the_parent_works(path: str) -> None:
    # LMDB: an environment must not be used after fork. A child that used the
    # parent's broke both (MDB_BAD_RSLOT in the child, then in the parent's threads).
    store = aiostore.sync.LMDBStore(path)
    store.setitems({f"k{i}": b"x" * 100 for i in range(64)})
    parents = store.db
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy() -> None:
        try:
            while not stop.is_set():
                store.setitems({f"b{i}": b"y" * 100 for i in range(64)})
                assert len(store.getitems([f"k{i}" for i in range(64)], contexts={})) == 64
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def child(n: int) -> None:
        assert store["k1"] == b"x" * 100
        assert store.db is not parents  # its own environment
        store[f"child/{n}"] = b"c"
        assert str(n) in store.listdir("child")

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        codes = []
        for n in range(8):
            time.sleep(0.005)
            codes.append(in_forked_child(lambda n=n: child(n), seconds=20))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert codes == [0] * 8 and errors == []
    assert store.getitems([f"child/{n}" for n in range(8)], contexts={}) == {
        f"child/{n}": b"c" for n in range(8)
    }
    assert store.db is parents
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_that_closes_the_store_leaves_the_parents_environment(path: str) -> None:
    store = aiostore.sync.LMDBStore(path)
    store["a"] = b"1"
    other = aiostore.sync.LMDBStore(path)  # shares the environment

    def child() -> None:
        store.close()  # never used here: nothing of the parent's is touched
        assert other["a"] == b"1"
        other["b"] = b"2"
        other.close()

    assert in_forked_child(child, seconds=20) == 0
    assert store["b"] == b"2" and other["a"] == b"1"
    store["c"] = b"3"
    other.close()
    store.close()


# -- issue 11: a second open with other settings, paths that are not databases, bad settings ----


def test_a_second_open_with_other_settings_says_which_differ(tmp_path: Path) -> None:
    path = str(tmp_path / "data.mdb")
    first = LMDBStore(path, map_size=2**20)
    with pytest.raises(SettingsConflictError, match="map_size=1048576 there, 2097152 here") as caught:
        LMDBStore(path, map_size=2**21)
    assert isinstance(caught.value, ValueError) and path in str(caught.value)
    with pytest.raises(SettingsConflictError, match="writemap=False there, True here"):
        LMDBStore(path, map_size=2**20, writemap=True)
    same = LMDBStore(path, map_size=2**20)  # the same settings share the environment
    joined = LMDBStore(path)  # none asked: it joins, and reports what is in effect
    assert joined.kwargs["map_size"] == 2**20 == same.kwargs["map_size"]
    first.set_many_sync({f"k{i}": b"x" * 4096 for i in range(600)})  # grows the map past 2**20
    again = LMDBStore(path, map_size=2**20)  # compared with what was asked, not the grown map
    for store in (again, joined, same, first):
        store.close_sync()
    LMDBStore(path, map_size=2**21).close_sync()  # all closed: new settings apply


def test_paths_that_are_not_lmdb_databases_are_backend_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_bytes(b"not a database")
    with pytest.raises(StoreError) as caught:
        LMDBStore(str(a_file))
    assert isinstance(caught.value, BackendError) and str(a_file) in str(caught.value)
    assert isinstance(caught.value.__cause__, lmdb.Error)
    garbage = tmp_path / "garbage.mdb"
    garbage.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(BackendError, match="cannot open it as an LMDB database"):
        LMDBStore(str(garbage), subdir=False)
    assert garbage.read_bytes() == b"\x00garbage" * 1000
    with pytest.raises(BackendError):
        LMDBStore(str(tmp_path / "missing"), read_only=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"map_size": -1}, ValueError, "map_size"),
        ({"map_size": 0}, ValueError, "map_size"),
        ({"map_size": "1GB"}, TypeError, "map_size"),
        ({"max_dbs": -1}, ValueError, "max_dbs"),
        ({"bogus": 1}, TypeError, "bogus"),
    ],
)
def test_bad_settings_are_refused_naming_them(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        LMDBStore(str(tmp_path / "db"), **kwargs)
    assert not (tmp_path / "db").exists()
