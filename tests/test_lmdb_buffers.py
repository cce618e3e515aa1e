"""LMDBStore(buffers=True): zero-copy reads whose buffers keep their read snapshot open.

Issue 12, part 3: ``get``/``get_many`` return read-only memoryviews into LMDB's
map; each keeps its snapshot alive until released, so its bytes never change
under it, reader slots come back when the buffers go, closing waits for them,
and the garbage collector is paused (and restored) around a batch.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import lmdb
import numpy as np
import pytest
from forking import in_forked_child

# The whole async Store protocol suite again, with buffers=True (the reads are
# memoryviews: the one test asserting ``type(...) is bytes`` stays in test_lmdb).
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
from aiostore import BatchWriteError, ClosedStoreError, LMDBStore
from aiostore._runtime.gcpause import gc_paused
from aiostore.errors import BackendError, SettingsConflictError
from aiostore.stores import _lmdbenv
from aiostore.stores._lmdbenv import SharedEnv

pytestmark = pytest.mark.anyio

N = 10_000


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., LMDBStore]:
    counter = iter(range(1000))
    return lambda **kw: LMDBStore(tmp_path / f"db{next(counter)}", **kw)


@pytest.fixture
async def store(make_store: Callable[..., LMDBStore]) -> AsyncIterator[LMDBStore]:
    async with make_store(buffers=True) as s:
        yield s


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "data.mdb")


def shared_of(store: LMDBStore) -> SharedEnv:
    shared = store._shared
    assert shared is not None
    return shared


def reader_slots(env: lmdb.Environment, pid: int | None = None) -> int:
    """Reader slots of LMDB's lock table held by ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return sum(1 for line in env.readers().splitlines()[1:] if line.split()[:1] == [str(pid)])


async def settle() -> None:
    """Let the event loop finish its own references to the last results (a finished
    batch's future waits in the ready queue for a turn), then collect."""
    for _ in range(3):
        await anyio.lowlevel.checkpoint()
    gc.collect()


def value_of(i: int, round_: int = 0) -> bytes:
    """1 KiB, different for every key and round."""
    return (i.to_bytes(4, "little") + round_.to_bytes(4, "little")) * 128


# -- the test: 10,000 held buffers, 1,000 overwrites and deletes --------------------


async def test_held_buffers_survive_1000_overwrites_and_deletes_and_free_their_slots(path: str) -> None:
    keys = [f"c/{i}" for i in range(N)]
    async with LMDBStore(path) as store:  # buffers=True is the default
        shared = shared_of(store)
        env = store.db
        await store.set_many({k: value_of(i) for i, k in enumerate(keys)})
        batch = await store.get_many(keys)  # one get_many
        singles: dict[str, Any] = {}

        async def get_all(chunk: list[str]) -> None:
            for k in chunk:
                singles[k] = await store.get(k)  # single gets (coalesced when concurrent)

        async with anyio.create_task_group() as tg:
            for start in range(0, N, N // 20):
                tg.start_soon(get_all, keys[start : start + N // 20])
        assert len(batch) == len(singles) == N
        assert all(type(v) is memoryview and v.readonly for v in [*batch.values(), *singles.values()])
        # Reads with no write in between share snapshots: a handful of reader slots, not 20,000.
        assert 1 <= shared.live_snapshots == reader_slots(env) <= 4

        # 1,000 write transactions over those keys: overwrites and deletes, so that
        # LMDB would reuse the pages the buffers point at if their snapshots had ended.
        for round_ in range(1, 501):
            part = keys[(round_ * 97) % N :][:200] or keys[:200]
            await store.set_many({k: value_of(int(k[2:]), round_) for k in part})
            await store.delete_many(keys[(round_ * 31) % N :][:100])
        for held in (batch, singles):
            for i, k in enumerate(keys):
                assert held[k] == value_of(i), k  # every byte of every held buffer
        await store.set("c/0", b"fresh")
        assert await store.get("c/0") == b"fresh" and batch["c/0"] == value_of(0)

        batch.clear()
        singles.clear()
        del held
        await settle()
        assert shared.live_snapshots == 0
        assert reader_slots(env) == 0  # every reader slot is free again


def test_the_same_writes_do_change_buffers_whose_transaction_ended(path: str) -> None:
    # The control of the test above: py-lmdb's own buffers, used as zarr 2 did (after
    # their transaction ended), see the same kind of writes change their bytes.
    env = lmdb.open(path, map_size=2**30, max_spare_txns=0)
    keys = [f"c/{i}".encode() for i in range(2000)]
    with env.begin(write=True) as txn:
        for i, k in enumerate(keys):
            txn.put(k, value_of(i))
    with env.begin(buffers=True) as txn:
        raw = [txn.get(k) for k in keys]
    for round_ in range(1, 51):
        with env.begin(write=True) as txn:
            for i, k in enumerate(keys[round_ * 7 % 2000 :][:500]):
                txn.put(k, value_of(i, round_))
            for k in keys[round_ * 13 % 2000 :][:200]:
                txn.delete(k)
    changed = sum(bytes(v) != value_of(i) for i, v in enumerate(raw))
    del raw
    env.close()
    assert changed > 0


# -- what a buffer is -------------------------------------------------------------------


async def test_buffers_are_read_only_memoryviews_and_missing_keys_are_absent(store: LMDBStore) -> None:
    await store.set_many({"a": b"0123456789", "e": b""})
    found = await store.get_many(["a", "missing", "e"])
    assert set(found) == {"a", "e"}
    view = found["a"]
    assert type(view) is memoryview and view.readonly and view.format == "B" and view.ndim == 1
    assert view == b"0123456789" and found["e"] == b"" and len(found["e"]) == 0
    with pytest.raises(TypeError):
        view[0] = 1
    assert not np.frombuffer(view, dtype="u1").flags.writeable
    with pytest.raises(KeyError):
        await store.get("missing")
    ranged = await store.get("a", byte_range=(2, 5))
    assert type(ranged) is memoryview and ranged == b"234"
    assert await store.get("a", byte_range=(-3, None)) == b"789"
    with pytest.raises(ValueError, match="byte_range"):
        await store.get("a", byte_range=(5, 2))


@pytest.mark.parametrize(
    "derive",
    [
        lambda v: v[10:20],
        lambda v: memoryview(v)[3:],
        lambda v: v.cast("B", (2, len(v) // 2)),
        lambda v: np.frombuffer(v, dtype="u1")[5:9],
        lambda v: np.frombuffer(v, dtype="<u4").reshape(2, -1),
        lambda v: np.asarray(v)[::2],
    ],
    ids=["slice", "memoryview", "cast", "np.frombuffer-slice", "np.frombuffer-reshape", "np.asarray"],
)
async def test_derived_views_keep_the_snapshot(store: LMDBStore, derive: Callable[[Any], Any]) -> None:
    shared = shared_of(store)
    await store.set("k", bytes(range(64)))
    view = await store.get("k")
    derived = derive(view)
    expected = bytes(derived)
    del view
    gc.collect()
    assert shared.live_snapshots == 1  # the derived view holds it
    for round_ in range(20):
        await store.set("k", bytes([round_]) * 64)
        await store.delete("k")
    assert bytes(derived) == expected
    del derived
    await settle()
    assert shared.live_snapshots == 0 and reader_slots(store.db) == 0


async def test_release_lets_the_snapshot_go_at_once(store: LMDBStore) -> None:
    await store.set("k", b"v")
    view = await store.get("k")
    assert shared_of(store).live_snapshots == 1
    await settle()
    assert shared_of(store).live_snapshots == 1
    view.release()
    assert shared_of(store).live_snapshots == 0  # at once


async def test_new_reads_see_new_commits_while_old_buffers_keep_old_values(store: LMDBStore) -> None:
    shared = shared_of(store)
    await store.set("k", b"old")
    old = await store.get("k")
    again = await store.get("k")
    assert shared.live_snapshots == 1  # no commit in between: one shared snapshot
    await store.set("k", b"new")
    new = await store.get("k")
    assert (old, again, new) == (b"old", b"old", b"new")
    await settle()
    assert shared.live_snapshots == 2
    del old, again
    assert shared.live_snapshots == 1


def test_another_process_commit_starts_a_new_snapshot(path: str) -> None:
    store = aiostore.sync.LMDBStore(path)
    store["k"] = b"parent"
    held = store["k"]
    code = "import sys, aiostore.sync as s; t = s.LMDBStore(sys.argv[1]); t['k'] = b'child'; t.close()"
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=60)
    assert store["k"] == b"child" and held == b"parent"
    del held
    store.close()


def test_buffers_false_returns_bytes_and_holds_nothing(path: str) -> None:
    with aiostore.sync.LMDBStore(path, buffers=False) as store:
        store["k"] = b"v"
        values = [
            store["k"],
            store.getitems(["k"], contexts={})["k"],
            store.get_ranges_sync([("k", (0, 1))])[0],
        ]
        assert [type(v) for v in values] == [bytes, bytes, bytes]
        assert reader_slots(store.db) == 0 and store.getsize() == 1 and "k" in store


# -- reader slots --------------------------------------------------------------------------


def test_many_single_gets_held_share_one_reader_slot(path: str) -> None:
    with aiostore.sync.LMDBStore(path) as store:
        store.setitems({f"k{i}": bytes([i % 256]) * 10 for i in range(1000)})
        held = [store[f"k{i}"] for i in range(1000)]
        assert reader_slots(store.db) == 1
        assert all(v == bytes([i % 256]) * 10 for i, v in enumerate(held))
        del held
        assert reader_slots(store.db) == 0


def test_running_out_of_reader_slots_is_a_clear_error(path: str) -> None:
    with aiostore.sync.LMDBStore(path, max_readers=4) as store:
        held = []
        for i in range(4):  # a commit before each read: a new snapshot each time
            store[f"k{i}"] = b"v"
            held.append(store[f"k{i}"])
        store["k4"] = b"v"
        with pytest.raises(BackendError, match=r"max_readers=4.*hold 4 read snapshots") as caught:
            store["k4"]
        assert isinstance(caught.value.__cause__, lmdb.ReadersFullError)
        assert "release those buffers" in str(caught.value).lower()
        held.pop()
        assert store["k4"] == b"v"  # a slot is free again
        del held


# -- threads ------------------------------------------------------------------------------


def test_a_buffer_released_in_another_thread_ends_its_snapshot(path: str) -> None:
    with aiostore.sync.LMDBStore(path) as store:
        store.setitems({f"k{i}": b"x" * 100 for i in range(100)})
        found = store.getitems([f"k{i}" for i in range(100)], contexts={})
        box = [found]
        del found
        errors: list[BaseException] = []

        def drop() -> None:
            try:
                assert all(v == b"x" * 100 for v in box[0].values())
                box.clear()  # the last references die here, in this thread
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=drop)
        thread.start()
        thread.join()
        assert errors == [] and reader_slots(store.db) == 0


def test_threads_reading_writing_and_holding_buffers(path: str) -> None:
    store = aiostore.sync.LMDBStore(path)
    store.setitems({f"s/{i}": bytes([i]) * 64 for i in range(64)})
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            held = []
            for j in range(40):
                store.setitems({f"{n}/{j}": bytes([j]) * 64})
                found = store.getitems([f"s/{i}" for i in range(64)] + [f"{n}/{j}"], contexts={})
                assert found[f"{n}/{j}"] == bytes([j]) * 64
                held.append(found)
                if len(held) > 5:
                    assert all(v == bytes([int(k[2:])]) * 64 for k, v in held.pop(0).items() if k[0] == "s")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    gc.collect()
    assert reader_slots(store.db) == 0
    store.close()


# -- closing, reopening, growing the map ---------------------------------------------------


async def test_buffers_survive_close_then_the_environment_really_closes(path: str) -> None:
    store = LMDBStore(path)
    await store.set_many({"a": b"1" * 1000, "b": b"2" * 1000})
    found = await store.get_many(["a", "b"])
    shared = shared_of(store)
    env = store.db
    await store.aclose()
    with pytest.raises(ClosedStoreError):
        await store.get("a")
    assert shared.closing and not shared.closed
    assert found == {"a": b"1" * 1000, "b": b"2" * 1000}  # still mapped, still right
    a = found.pop("a")
    del found
    assert shared.closing and bytes(a[:3]) == b"111"
    del a
    await settle()
    assert shared.closed and not shared.closing
    with pytest.raises(lmdb.Error):
        env.info()  # really closed


async def test_a_new_store_rejoins_an_environment_kept_open_by_buffers(path: str) -> None:
    async with LMDBStore(path, map_size=2**24) as store:
        await store.set("a", b"1")
        held = await store.get("a")
    with pytest.raises(SettingsConflictError) as caught:
        LMDBStore(path, map_size=2**25)  # the environment cannot be opened again yet
    assert "buffers read through them are alive" in "\n".join(caught.value.__notes__)
    again = LMDBStore(path, map_size=2**24)  # the same settings: it joins, and cancels the close
    del held
    await settle()
    assert await again.get("a") == b"1"
    await again.aclose()
    LMDBStore(path, map_size=2**25).close_sync()  # every store and buffer gone: new settings apply


async def test_the_map_cannot_grow_under_live_buffers(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lmdbenv, "SNAPSHOT_WAIT", 0.2)
    async with LMDBStore(path, map_size=64 * 1024) as store:
        await store.set("small", b"s")
        held = await store.get("small")
        big = {f"big/{i}": os.urandom(8192) for i in range(32)}
        with pytest.raises(BatchWriteError) as caught:
            await store.set_many(big)
        cause = caught.value.failed["big/0"]
        assert isinstance(cause, BackendError) and "cannot map a new size while buffers" in str(cause)
        assert held == b"s"
        del held
        await settle()
        await store.set_many(big)  # no buffer alive: the map grows
        assert await store.get_many(list(big)) == big


# -- fork -----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_buffers_in_a_forked_child(path: str) -> None:
    store = aiostore.sync.LMDBStore(path)
    store.setitems({f"k{i}": bytes([i]) * 500 for i in range(50)})
    held = store.getitems([f"k{i}" for i in range(50)], contexts={})
    parents = store.db

    def child() -> None:
        # Inherited buffers read right until the child's first transaction ...
        assert all(v == bytes([int(k[1:])]) * 500 for k, v in held.items())
        # ... which opens the child's own environment (unmapping the parent's: the
        # inherited buffers are not read again), dropping the parent's snapshot unended.
        assert store["k1"] == bytes([1]) * 500 and store.db is not parents
        store.setitems({f"k{i}": b"child" for i in range(50)})
        mine = store["k2"]
        assert mine == b"child" and reader_slots(store.db) == 1
        del mine
        assert reader_slots(store.db) == 0

    assert in_forked_child(child, seconds=20) == 0
    # The parent's snapshot, and its reader slot, were left alone by the child.
    assert reader_slots(parents) == 1 and store.db is parents
    store.setitems({f"k{i}": b"parent" for i in range(50)})
    assert all(v == bytes([int(k[1:])]) * 500 for k, v in held.items())
    assert store["k3"] == b"parent"
    held.clear()
    gc.collect()
    assert reader_slots(parents) == 0
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_child_uses_the_store_though_another_thread_held_buffers_at_the_fork(path: str) -> None:
    # The other thread's buffers are never released in the child (it does not run
    # there), so the child cannot wait for the buffers it inherited to go.
    store = aiostore.sync.LMDBStore(path)
    store["a"] = b"1"
    holding, leave = threading.Event(), threading.Event()

    def hold() -> None:
        view = store["a"]
        holding.set()
        leave.wait(10)
        assert view == b"1"

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    try:

        def child() -> None:
            assert store["a"] == b"1"
            store["b"] = b"2"
            store.close()

        assert in_forked_child(child, seconds=20) == 0
        assert reader_slots(store.db) == 1  # the thread's buffer: the parent's snapshot lives on
    finally:
        leave.set()
        thread.join()
    assert store["b"] == b"2"
    gc.collect()
    assert reader_slots(store.db) == 0
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_with_no_buffers_alive_uses_the_store_at_once(path: str) -> None:
    store = aiostore.sync.LMDBStore(path)
    store["a"] = b"1"
    view = store["a"]
    del view

    def child() -> None:
        assert store["a"] == b"1"
        store["b"] = b"2"

    assert in_forked_child(child, seconds=20) == 0
    assert store["b"] == b"2"
    store.close()


# -- the garbage collector --------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_reads_leave_the_garbage_collector_as_they_found_it(path: str, enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with aiostore.sync.LMDBStore(path) as store:
            store.setitems({f"k{i}": b"v" for i in range(100)})
            found = store.getitems([f"k{i}" for i in range(100)], contexts={})
            assert gc.isenabled() is enabled and len(found) == 100
            del found
    finally:
        (gc.enable if was else gc.disable)()


def test_gc_pause_is_counted_and_restores_what_it_found() -> None:
    assert gc.isenabled()
    pause = gc_paused()
    with pause:
        assert not gc.isenabled() and pause.depth == 1
        with pause:
            assert pause.depth == 2
        assert not gc.isenabled()
    assert gc.isenabled() and pause.depth == 0
    gc.disable()
    try:
        with pause:
            pass
        assert not gc.isenabled()  # never re-enabled if it was off
    finally:
        gc.enable()


def test_gc_pause_under_concurrent_threads() -> None:
    assert gc.isenabled()
    pause = gc_paused()
    start = threading.Barrier(8)
    seen_enabled_inside: list[bool] = []

    def work() -> None:
        start.wait()
        for _ in range(2000):
            with pause:
                if gc.isenabled():  # pragma: no cover - reported below
                    seen_enabled_inside.append(True)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen_enabled_inside == [] and pause.depth == 0 and gc.isenabled()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_another_threads_pause_has_its_collector_back() -> None:
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(10)
    try:
        assert not gc.isenabled()
        assert in_forked_child(lambda: None if gc.isenabled() else 1 / 0) == 0
    finally:
        leave.set()
        thread.join()
    assert gc.isenabled()


PROGRAM_EXITS = textwrap.dedent(
    """
    import gc, sys
    import numpy as np
    import aiostore.sync
    store = aiostore.sync.LMDBStore(sys.argv[1])
    store.setitems({f"k{i}": bytes([i]) * 100 for i in range(100)})
    found = store.getitems([f"k{i}" for i in range(100)], contexts={})

    class Cycle:
        pass

    # Buffers, their slices and arrays over them in garbage cycles: collected safely.
    for i in range(200):
        c = Cycle(); c.c = c; c.v = store[f"k{i % 100}"]; c.s = c.v[1:5]; c.a = np.frombuffer(c.v, "u1")
        del c
    try:
        raise ValueError(found["k1"])
    except ValueError as exc:
        err = exc  # a traceback cycle holding a frame that holds buffers
    del err
    gc.collect()
    keep = found["k7"][:10]
    store.close()  # buffers still alive at exit: the environment closes after them
    assert keep == bytes([7]) * 10
    print("ok")
    """
)


def test_buffers_alive_at_interpreter_exit_and_in_garbage_cycles(path: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM_EXITS, path], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "ok", "")
