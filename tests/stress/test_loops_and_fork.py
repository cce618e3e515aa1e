"""Event loops and processes: the sync store inside running event loops and after
``fork``, and closing a store while operations are in flight.

* The sync API called from a coroutine -- under asyncio and inside ``trio.run``,
  while the same loop has async operations of the same store in flight -- works
  and never deadlocks (natively async stores run on aiostore's background loop).
* A process forked from one that used the store (worker threads, the background
  loop, event loops all existed before the fork) reads and writes through the
  sync store, and the parent gets what the child wrote -- or, for a store with a
  single writer (Zip, DBM), the child's writes are refused with a clear error.
  Nothing is lost. Also forked while other threads of the parent are in the
  middle of operations on the store: no child deadlocks on what they held.
* Closing a store while many ``get_many``/``set_many`` are in flight (async, and
  sync from threads): each either completes or raises ``ClosedStoreError``, none
  hangs, and every operation after the close raises ``ClosedStoreError`` naming
  the store.

Every wait has a deadline: a deadlock fails the test instead of hanging it. The
seed is in every failure message; ``AIOSTORE_STRESS_SEED=<n>`` replays it.
"""

from __future__ import annotations

import faulthandler
import itertools
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from stress_tally import TALLY, rounds

import aiostore
import aiostore.sync
from aiostore.errors import ClosedStoreError
from aiostore.sync import SyncStore

BASE_SEED = int(os.environ.get("AIOSTORE_STRESS_SEED", random.SystemRandom().randrange(2**32)))
DEADLINE = 60.0  # seconds: generous, it only turns a deadlock into a failure
FORKS_WHILE_BUSY = rounds(quick=6, full=60)
CLOSE_ROUNDS = rounds(quick=4, full=60)
LOOP_ROUNDS = rounds(quick=10, full=100)

SyncFactory = Callable[[Path], SyncStore[Any]]


def _sync_lru(tmp: Path) -> SyncStore[Any]:
    # Small: values are evicted and read again, so fetches are often in flight.
    return aiostore.sync.LRUStoreCache(aiostore.sync.DirectoryStore(tmp / "cached"), max_size=2**12)


SYNC_STORES: dict[str, SyncFactory] = {
    "memory": lambda tmp: aiostore.sync.MemoryStore(),
    "directory": lambda tmp: aiostore.sync.DirectoryStore(tmp / "dir"),
    "nested": lambda tmp: aiostore.sync.NestedDirectoryStore(tmp / "nested"),
    "temp": lambda tmp: aiostore.sync.TempStore(dir=tmp),
    "zip-w": lambda tmp: aiostore.sync.ZipStore(tmp / "w.zip", mode="w"),
    "zip-a": lambda tmp: aiostore.sync.ZipStore(tmp / "a.zip", mode="a"),
    "dbm": lambda tmp: aiostore.sync.DBMStore(tmp / "store.dbm"),
    "lmdb": lambda tmp: aiostore.sync.LMDBStore(tmp / "store.lmdb"),
    "lru-directory": _sync_lru,
}
#: Natively async: its sync API runs on aiostore's background loop.
LOOP_STORES: dict[str, SyncFactory] = {
    **SYNC_STORES,
    "objectstore-memory": lambda tmp: aiostore.sync.ObjectStore("memory:///"),
}


ASYNC_STORES: dict[str, Callable[[Path], aiostore.Store]] = {
    "memory": lambda tmp: aiostore.MemoryStore(),
    "directory": lambda tmp: aiostore.DirectoryStore(tmp / "dir"),
    "nested": lambda tmp: aiostore.NestedDirectoryStore(tmp / "nested"),
    "temp": lambda tmp: aiostore.TempStore(dir=tmp),
    "zip-w": lambda tmp: aiostore.ZipStore(tmp / "w.zip", mode="w"),
    "zip-a": lambda tmp: aiostore.ZipStore(tmp / "a.zip", mode="a"),
    "dbm": lambda tmp: aiostore.DBMStore(tmp / "store.dbm"),
    "lmdb": lambda tmp: aiostore.LMDBStore(tmp / "store.lmdb"),
    "lru-directory": lambda tmp: aiostore.LRUStoreCache(
        aiostore.DirectoryStore(tmp / "cached"), max_size=2**20
    ),
}
#: The data a closed store left, opened again read-only (None: nothing is left).
REOPEN: dict[str, Callable[[Path], SyncStore[Any]] | None] = {
    "memory": None,
    "temp": None,
    "directory": lambda tmp: aiostore.sync.DirectoryStore(tmp / "dir", read_only=True),
    "nested": lambda tmp: aiostore.sync.NestedDirectoryStore(tmp / "nested", read_only=True),
    "zip-w": lambda tmp: aiostore.sync.ZipStore(tmp / "w.zip", mode="r"),
    "zip-a": lambda tmp: aiostore.sync.ZipStore(tmp / "a.zip", mode="r"),
    "dbm": lambda tmp: aiostore.sync.DBMStore(tmp / "store.dbm", flag="r"),
    "lmdb": lambda tmp: aiostore.sync.LMDBStore(tmp / "store.lmdb", read_only=True),
    "lru-directory": lambda tmp: aiostore.sync.DirectoryStore(tmp / "cached", read_only=True),
}
KEYS = [f"a/{i}" for i in range(64)]


def seed_for(*parts: str) -> int:
    return BASE_SEED ^ zlib.crc32("/".join(parts).encode())


def replay(seed: int) -> str:
    return f"seed={seed} (AIOSTORE_STRESS_SEED={BASE_SEED})"


def value_of(key: str, tag: str) -> bytes:
    return f"{key}={tag}|".encode() * 20


def stacks() -> str:
    """Every thread's stack, for a deadlock report."""
    frames = sys._current_frames()
    return "\n".join(
        f"--- {thread.name}\n" + "".join(traceback.format_stack(frames[thread.ident]))
        for thread in threading.enumerate()
        if thread.ident in frames
    )


def run_with_deadline(fn: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Run ``fn()`` in a daemon thread; fail, with every stack, if it does not end in time."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"deadline: {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{what}: deadlocked (still running after {timeout} s)\n{stacks()}")
    if errors:
        raise errors[0]


# -- the sync store inside running event loops -----------------------------------------------


def exercise_sync(store: SyncStore[Any], prefix: str, tag: str) -> int:
    """The sync API, each method once; returns the number of keys checked."""
    key = f"{prefix}/k"
    store[key] = value_of(key, tag)
    assert store[key] == value_of(key, tag)
    batch = {f"{prefix}/b{i}": value_of(f"{prefix}/b{i}", tag) for i in range(8)}
    store.setitems(batch)
    assert store.getitems(list(batch), contexts={}) == batch
    assert key in store and f"{prefix}/missing" not in store
    assert "k" in store.listdir(prefix)
    assert store.getsize(key) == len(value_of(key, tag))
    assert sum(1 for k in store if k.startswith(prefix + "/")) == len(batch) + 1
    store.async_store.set_sync(key, value_of(key, tag + "!"))
    assert store.async_store.get_many_sync([key]) == {key: value_of(key, tag + "!")}
    return len(batch) + 2


@pytest.mark.parametrize("kind", sorted(LOOP_STORES))
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # a Zip file's rewrites
def test_sync_store_inside_a_running_event_loop(kind: str, backend: str, tmp_path: Path) -> None:
    """The sync API from a coroutine, while async work on the same store is in flight
    in the same loop: it works (a natively async store runs on the background loop)."""
    seed = seed_for(kind, backend, "loop")
    rng = random.Random(seed)
    store = LOOP_STORES[kind](tmp_path)
    async_store = store.async_store
    keys = [f"async/{i}" for i in range(48)]
    checked = 0

    async def async_traffic(stop: anyio.Event) -> None:
        generation = 0
        while not stop.is_set():
            generation += 1
            await async_store.set_many({k: value_of(k, str(generation)) for k in keys})
            found = await async_store.get_many(keys)
            assert found == {k: value_of(k, str(generation)) for k in keys}, replay(seed)
            await async_store.get(rng.choice(keys))
            await anyio.lowlevel.checkpoint()  # a memory store's calls never yield

    async def main() -> None:
        nonlocal checked
        checked += exercise_sync(store, "before", "0")  # no async work yet
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(async_traffic, stop)
            for i in range(LOOP_ROUNDS):
                # Block the loop with sync calls while its async work is in threads.
                await anyio.sleep(rng.uniform(0, 0.002))
                checked += exercise_sync(store, f"during{i % 3}", str(i))
            # And from one of the loop's worker threads, as blocking code run from async code is.
            checked += await anyio.to_thread.run_sync(exercise_sync, store, "thread", "t")
            stop.set()

    try:
        run_with_deadline(lambda: anyio.run(main, backend=backend), f"{kind} inside {backend}")
    finally:
        store.close()
    TALLY.add(keys_checked=checked)


# -- fork ---------------------------------------------------------------------------------------


def in_child(body: Callable[[], str], timeout: int = 10) -> tuple[int, str]:
    """Fork; run ``body`` in the child; return the child's exit code (negative:
    killed by that signal) and what it reported: ``body``'s answer, or its error.
    A deadlocked child reports every thread's stack and exits."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: leave only through os._exit
        code = 1
        try:
            os.close(read_fd)
            faulthandler.dump_traceback_later(timeout, exit=True, file=write_fd)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(timeout + 5)  # if even faulthandler cannot run
            os.write(write_fd, body().encode())
            code = 0
        except BaseException:
            os.write(write_fd, traceback.format_exc()[-8000:].encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    TALLY.add(processes=1)
    deadline = time.monotonic() + timeout + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read().decode(errors="replace")
    # pytest's and pluggy's frames say nothing about a deadlock.
    report = "\n".join(line for line in report.splitlines() if not re.search(r"_pytest|pluggy|<frozen", line))
    return os.waitstatus_to_exitcode(status), report


def use_everything_before_fork(store: SyncStore[Any], keys: list[str]) -> None:
    """Start what a process using aiostore has running: worker threads of both
    event loops, the background loop (a natively async call), a cache's fetches."""
    store.setitems({k: value_of(k, "parent") for k in keys})
    for backend in ("asyncio", "trio"):
        found = anyio.run(store.async_store.get_many, keys, backend=backend)
        assert found == {k: value_of(k, "parent") for k in keys}
    aiostore.sync.ObjectStore("memory:///")["x"] = b"starts the background loop"


#: One writing process at a time: a forked child's writes may be refused instead.
SINGLE_WRITER = {"zip-w", "zip-a", "dbm"}
#: Where the parent sees a child's writes at once, through the same store.
LIVE = {"directory", "nested", "temp", "lmdb", "lru-directory"}


def child_keys(tag: str) -> dict[str, bytes]:
    return {f"{tag}/{i}": value_of(f"{tag}/{i}", tag) for i in range(16)}


def child_reads_and_writes(kind: str, store: SyncStore[Any], keys: list[str], tag: str) -> str:
    """What a forked child does with the store it inherited: "wrote", or
    "refused: <why>" for a store with a single writer that refuses a second."""
    assert store.getitems(keys, contexts={}) == {k: value_of(k, "parent") for k in keys}
    assert store[keys[0]] == value_of(keys[0], "parent")
    mine = child_keys(tag)
    try:
        store.setitems(dict(list(mine.items())[:-1]))
        store[f"{tag}/15"] = mine[f"{tag}/15"]
    except aiostore.StoreError as exc:
        if kind not in SINGLE_WRITER or isinstance(exc, ClosedStoreError):
            raise
        return f"refused: {exc}"
    assert store.getitems(list(mine), contexts={}) == mine
    assert store[f"{tag}/0"] == mine[f"{tag}/0"]
    assert store.listdir(tag) == sorted(str(i) for i in range(16))
    assert anyio.run(store.async_store.get_many, list(mine)) == mine
    store.flush()
    return "wrote"


def check_what_children_wrote(
    kind: str, store: SyncStore[Any], directory: Path, expected: dict[str, bytes], children: dict[str, str]
) -> None:
    """The parent sees its own data and what each child wrote (at once where the
    store shares it, else once reopened); a refused child wrote nothing."""
    wrote = {tag for tag, status in children.items() if status == "wrote"}
    for tag, status in children.items():
        assert status == "wrote" or status.startswith("refused: "), f"child {tag}: {status}"
    if kind in LIVE:
        for tag in wrote:
            assert store.getitems(list(child_keys(tag)), contexts={}) == child_keys(tag), tag
    store["parent/after"] = b"after the fork"
    assert store["parent/after"] == b"after the fork"
    store.close()
    reopen = REOPEN[kind]
    if reopen is None:
        return
    again = reopen(directory)
    try:
        found = dict(again.items())
    finally:
        again.close()
    missing = {**expected, "parent/after": b"after the fork"}
    for tag in wrote:
        missing.update(child_keys(tag))
    lost = sorted(k for k, v in missing.items() if found.get(k) != v)
    TALLY.add(keys_checked=len(missing))
    if lost:
        TALLY.add(lost=len(lost))
        pytest.fail(f"{kind}: {len(lost)} key(s) lost or wrong after the fork, e.g. {lost[:5]}")
    refused = [k for tag in set(children) - wrote for k in child_keys(tag) if k in found]
    assert not refused, f"{kind}: a child's refused writes are in the store: {refused[:5]}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", sorted(SYNC_STORES))
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_sync_store_works_in_a_forked_child(kind: str, tmp_path: Path) -> None:
    """A child forked after the store was used reads and writes through it, and the
    parent gets what the child wrote -- or, for a single-writer store, the child's
    writes are refused with a clear error. Nothing is lost."""
    store = SYNC_STORES[kind](tmp_path)
    keys = [f"pre/{i}" for i in range(32)]
    try:
        use_everything_before_fork(store, keys)
        code, report = in_child(lambda: child_reads_and_writes(kind, store, keys, "child"))
        assert code == 0, f"the child failed ({code}):\n{report}"
        assert store.getitems(keys, contexts={}) == {k: value_of(k, "parent") for k in keys}
        expected = {k: value_of(k, "parent") for k in keys}
        check_what_children_wrote(kind, store, tmp_path, expected, {"child": report})
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", sorted(SYNC_STORES))
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_fork_while_other_threads_use_the_store(kind: str, tmp_path: Path) -> None:
    """Forked at random moments while other threads of the parent (sync calls, and
    async ones under asyncio and trio) are in the middle of operations on the store:
    no child deadlocks on what those threads held, nothing is lost."""
    seed = seed_for(kind, "busy-fork")
    rng = random.Random(seed)
    store = SYNC_STORES[kind](tmp_path)
    keys = [f"pre/{i}" for i in range(32)]
    stop = threading.Event()
    errors: list[BaseException] = []
    busy: dict[str, list[str]] = {
        name: [f"{name}/{i}" for i in range(48)] for name in ("sync", "asyncio", "trio")
    }

    def busy_sync() -> None:
        try:
            while not stop.is_set():
                store.setitems({k: value_of(k, "sync") for k in busy["sync"]})
                store.getitems(busy["sync"] + keys, contexts={})
        except BaseException as exc:
            errors.append(exc)

    def busy_async(backend: str) -> None:
        async def loop() -> None:
            while not stop.is_set():
                await store.async_store.set_many({k: value_of(k, backend) for k in busy[backend]})
                await store.async_store.get_many(busy[backend] + keys)

        try:
            anyio.run(loop, backend=backend)
        except BaseException as exc:
            errors.append(exc)

    workers = [
        threading.Thread(target=busy_sync, daemon=True),
        threading.Thread(target=busy_async, args=("asyncio",), daemon=True),
        threading.Thread(target=busy_async, args=("trio",), daemon=True),
    ]
    children: dict[str, str] = {}
    try:
        use_everything_before_fork(store, keys)
        for worker in workers:
            worker.start()
        for round_ in range(FORKS_WHILE_BUSY):
            time.sleep(rng.uniform(0, 0.02))
            tag = f"child{round_}"
            code, report = in_child(lambda tag=tag: child_reads_and_writes(kind, store, keys, tag))
            assert code == 0, f"child {round_} failed ({code}) [{kind} {replay(seed)}]:\n{report}"
            children[tag] = report
    finally:
        stop.set()
        for worker in workers:
            worker.join(DEADLINE)
    assert not errors, f"the parent's busy threads failed: {errors!r}"
    expected = {k: value_of(k, "parent") for k in keys}
    expected.update({k: value_of(k, name) for name, names in busy.items() for k in names})
    try:
        check_what_children_wrote(kind, store, tmp_path, expected, children)
    finally:
        store.close()


# -- closing while operations are in flight ------------------------------------------------------


def check_whole(found: dict[str, bytes], context: str) -> None:
    """Every value is one a writer wrote, in full."""
    for key, buffer in found.items():
        value = bytes(buffer)  # LMDBStore's default values are memoryviews
        tag = value.split(b"|", 1)[0].split(b"=", 1)[-1].decode()
        if value != value_of(key, tag):
            TALLY.add(torn=1)
            pytest.fail(f"torn value for {key!r}: {value[:80]!r} [{context}]")
    TALLY.add(keys_checked=len(found))


def check_after_close(store: aiostore.Store, kind: str, directory: Path, context: str) -> None:
    """Every call of the closed store raises ``ClosedStoreError`` naming it; what it
    left on disk opens again, every key present and whole."""
    for name, call in {
        "get": lambda: store.get_sync("a/0"),
        "get_many": lambda: store.get_many_sync(["a/0"]),
        "set": lambda: store.set_sync("a/0", b"x"),
        "set_many": lambda: store.set_many_sync({"a/0": b"x"}),
        "listdir": lambda: store.listdir_sync("a"),
        "contains": lambda: store.contains_sync("a/0"),
    }.items():
        with pytest.raises(ClosedStoreError, match="closed") as info:
            call()
        assert repr(store) in str(info.value), f"{name}: {info.value} does not name the store [{context}]"
    if isinstance(store, aiostore.TempStore):
        assert not os.path.exists(store.path), f"a closed TempStore left {store.path} [{context}]"
    reopen = REOPEN[kind]
    if reopen is not None:
        again = reopen(directory)
        try:
            found = again.getitems(KEYS, contexts={})
        finally:
            again.close()
        assert sorted(found) == sorted(KEYS), f"keys lost: {sorted(set(KEYS) - set(found))} [{context}]"
        check_whole(found, context)


async def close_round(store: aiostore.Store, seed: int, context: str) -> int:
    """16 tasks run ``get_many``/``set_many`` until ``aclose()`` (after a random
    moment) ends them; returns how many ended with ``ClosedStoreError``."""
    unexpected: list[BaseException] = []
    ended_by_close = 0

    async def operate(index: int) -> None:
        nonlocal ended_by_close
        rng = random.Random(seed + index)
        for generation in itertools.count(1):
            try:
                if rng.random() < 0.5:
                    await store.set_many({k: value_of(k, f"{index}.{generation}") for k in KEYS})
                else:
                    check_whole(await store.get_many(KEYS), context)
                await anyio.lowlevel.checkpoint()  # a memory store's calls never yield
            except ClosedStoreError:
                ended_by_close += 1
                return
            except Exception as exc:
                unexpected.append(exc)
                return

    with anyio.fail_after(DEADLINE):  # a deadlock guard only
        async with anyio.create_task_group() as tg:
            for index in range(16):
                tg.start_soon(operate, index)
            await anyio.sleep(random.Random(seed).uniform(0, 0.02))
            await store.aclose()
    assert not unexpected, f"{unexpected[:3]!r} [{context}]"
    return ended_by_close


@pytest.mark.anyio
@pytest.mark.parametrize("kind", sorted(ASYNC_STORES))
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
async def test_closing_while_operations_are_in_flight(kind: str, anyio_backend: str, tmp_path: Path) -> None:
    """``aclose()`` while 16 tasks run ``get_many``/``set_many``: each call in flight
    completes or raises ``ClosedStoreError``, and every task ends."""
    for round_ in range(CLOSE_ROUNDS):
        seed = seed_for(kind, anyio_backend, "close", str(round_))
        context = f"{kind} {anyio_backend} round {round_} {replay(seed)}"
        directory = tmp_path / str(round_)
        directory.mkdir()
        store = ASYNC_STORES[kind](directory)
        await store.set_many({k: value_of(k, "0") for k in KEYS})
        assert await close_round(store, seed, context) == 16
        await anyio.to_thread.run_sync(check_after_close, store, kind, directory, context)


def sync_close_round(store: SyncStore[Any], seed: int, context: str) -> None:
    """Six threads run ``getitems``/``setitems`` until ``close()`` (after a random
    moment, from this thread) ends them."""
    unexpected: list[BaseException] = []

    def operate(index: int) -> None:
        rng = random.Random(seed + index)
        for generation in itertools.count(1):
            try:
                if rng.random() < 0.5:
                    store.setitems({k: value_of(k, f"{index}.{generation}") for k in KEYS})
                else:
                    check_whole(store.getitems(KEYS, contexts={}), context)
            except ClosedStoreError:
                return
            except BaseException as exc:
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=operate, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(random.Random(seed).uniform(0, 0.02))
    run_with_deadline(store.close, f"{context}: close() with calls in flight")
    for thread in threads:
        thread.join(DEADLINE)
        if thread.is_alive():
            pytest.fail(f"an operation still runs {DEADLINE} s after close [{context}]\n{stacks()}")
    assert not unexpected, f"{unexpected[:3]!r} [{context}]"


@pytest.mark.parametrize("kind", sorted(ASYNC_STORES))
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_closing_while_sync_calls_are_in_flight(kind: str, tmp_path: Path) -> None:
    """``close()`` in one thread while six others run ``getitems``/``setitems``."""
    for round_ in range(CLOSE_ROUNDS):
        seed = seed_for(kind, "sync-close", str(round_))
        context = f"{kind} sync round {round_} {replay(seed)}"
        directory = tmp_path / str(round_)
        directory.mkdir()
        store = SyncStore(ASYNC_STORES[kind](directory))
        store.setitems({k: value_of(k, "0") for k in KEYS})
        sync_close_round(store, seed, context)
        check_after_close(store.async_store, kind, directory, context)
