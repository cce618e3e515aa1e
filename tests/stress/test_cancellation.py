"""Cancellation: ``get_many``/``set_many`` cancelled at random points, under asyncio and trio.

Every round writes a random subset of the keys with a new generation while
``get_many`` batches and single ``get`` calls (coalesced) read them, and
cancels the lot at a random moment: before it starts, after a random short
delay from a sibling task, or at a deadline. After each round every key must
hold, in full, its last known value or the one the round tried to write (the
values describe themselves: key, generation, size and a checksum), and so must
every value a cancelled or finished read returned. Over the whole run the
process's open file descriptors and threads must not grow: a cancelled thread
hop waits for its thread, and a thread pool stays within its bound.

The seed is in every failure message; ``AIOSTORE_STRESS_SEED=<n>`` replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from stress_tally import TALLY, rounds

import aiostore
from aiostore._runtime.offload import executor_hops, thread_limit
from aiostore.abc import Buffer, ByteRange, Store

pytestmark = pytest.mark.anyio

BASE_SEED = int(os.environ.get("AIOSTORE_STRESS_SEED", random.SystemRandom().randrange(2**32)))
ROUNDS = rounds(quick=50, full=400)
NATIVE_ROUNDS = rounds(quick=25, full=200)
WARMUP_ROUNDS = 4
KEYS = 64  # four parts of 16 keys: a batch is split over the disk threads

StoreFactory = Callable[[Path], Store]


def _lru_over_directory(tmp: Path) -> Store:
    return aiostore.LRUStoreCache(aiostore.DirectoryStore(tmp / "cached"), max_size=2**20)


STORES: dict[str, StoreFactory] = {
    "memory": lambda tmp: aiostore.MemoryStore(),
    "directory": lambda tmp: aiostore.DirectoryStore(tmp / "dir"),
    "nested": lambda tmp: aiostore.NestedDirectoryStore(tmp / "nested"),
    "temp": lambda tmp: aiostore.TempStore(dir=tmp),
    "zip-w": lambda tmp: aiostore.ZipStore(tmp / "w.zip", mode="w"),
    "zip-a": lambda tmp: aiostore.ZipStore(tmp / "a.zip", mode="a"),
    "dbm": lambda tmp: aiostore.DBMStore(tmp / "store.dbm"),
    "lmdb": lambda tmp: aiostore.LMDBStore(tmp / "store.lmdb"),
    "lru-directory": _lru_over_directory,
}
#: A Zip file keeps every value ever written: small values keep it small.
MAX_VALUE_SIZE = {"zip-w": 2048, "zip-a": 2048}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def make_value(rng: random.Random, key: str, generation: int, max_size: int) -> bytes:
    """``key:generation:size:`` + payload + 8-byte digest of all that."""
    size = rng.choice((0, 1, 100, rng.randrange(max_size + 1)))
    body = f"{key}:{generation}:{size}:".encode() + rng.randbytes(size)
    return body + hashlib.blake2b(body, digest_size=8).digest()


def parse_value(key: str, value: bytes) -> int | None:
    """The generation a value holds, or None if it is torn or another key's."""
    value = bytes(value)  # LMDBStore's default values are memoryviews (no copy for bytes)
    body, digest = value[:-8], value[-8:]
    if len(value) < 8 or hashlib.blake2b(body, digest_size=8).digest() != digest:
        return None
    try:
        stored_key, generation, size, payload = body.split(b":", 3)
    except ValueError:
        return None
    if stored_key.decode() != key or int(size) != len(payload):
        return None
    return int(generation)


class Checker:
    """The generations each key may hold, and the check of what was read."""

    def __init__(self, seed: int, kind: str, backend: str, *, tally: bool = True) -> None:
        self.tally = tally
        self.context = f"store={kind} backend={backend} seed={seed} (AIOSTORE_STRESS_SEED={BASE_SEED})"
        self.keys = [f"g{i % 4}/c{i}" for i in range(KEYS)]
        self.committed = dict.fromkeys(self.keys, 0)
        self.attempted: dict[str, int] = {}
        self.round = -1

    def fail(self, message: str) -> None:
        if self.tally:
            TALLY.add(torn=1)
        pytest.fail(f"round {self.round}: {message} [{self.context}]")

    def allowed(self, key: str) -> set[int]:
        return {self.committed[key]} | ({self.attempted[key]} if key in self.attempted else set())

    def check_read(self, found: dict[str, bytes], *, complete: bool) -> None:
        """``found`` came from the store: every value whole, old or new."""
        for key, value in found.items():
            generation = parse_value(key, value)
            if generation is None:
                self.fail(f"torn value for {key!r}: {bytes(value[:60])!r}... ({len(value)} bytes)")
            if generation not in self.allowed(key):
                self.fail(f"{key!r} holds generation {generation}, expected one of {self.allowed(key)}")
        if complete and len(found) != len(self.keys):
            self.fail(f"keys lost: {sorted(set(self.keys) - set(found))}")
        if self.tally:
            TALLY.add(keys_checked=len(found))

    def settle(self, found: dict[str, bytes]) -> None:
        """After a round's check: what each key holds now is what it is known to hold."""
        for key, value in found.items():
            generation = parse_value(key, value)
            assert generation is not None
            self.committed[key] = generation
        self.attempted = {}


Work = Callable[[], Awaitable[object]]


def plan_round(
    store: Store, checker: Checker, rng: random.Random, generation: int, max_size: int
) -> list[Work]:
    """A round's operations, in random order: one ``set_many`` of a random subset
    of the keys with a new generation, one or two ``get_many`` and a few single
    ``get`` calls (coalesced into batches). A read answers ``{key: value}``."""
    subset = rng.sample(checker.keys, rng.randrange(1, len(checker.keys) + 1))
    new = {key: make_value(rng, key, generation, max_size) for key in subset}
    checker.attempted = dict.fromkeys(subset, generation)

    async def single_get(key: str) -> dict[str, bytes]:
        return {key: await store.get(key)}

    works: list[Work] = [lambda: store.set_many(new)]
    for _ in range(rng.randrange(1, 3)):
        keys = rng.sample(checker.keys, rng.randrange(1, len(checker.keys) + 1))
        works.append(lambda keys=keys: store.get_many(keys))
    for key in rng.sample(checker.keys, rng.randrange(0, 6)):
        works.append(lambda key=key: single_get(key))
    rng.shuffle(works)
    return works


def random_delay(rng: random.Random) -> float:
    return rng.choice((0.0, rng.uniform(0, 0.0005), rng.uniform(0, 0.003), rng.uniform(0, 0.015)))


async def run_round(
    store: Store, checker: Checker, rng: random.Random, generation: int, max_size: int
) -> int:
    """One round of writes and reads, some or all cancelled at a random point;
    returns how many were cut short."""
    works = plan_round(store, checker, rng, generation, max_size)
    reads: list[dict[str, bytes]] = []
    # Each operation in its own scope: a cancelled reader may lead a coalesced
    # batch others wait on, and a write may be cut short while reads go on.
    scopes = [anyio.CancelScope() for _ in works]
    done = [False] * len(works)
    all_done = anyio.Event()
    victims = rng.sample(scopes, rng.randrange(1, len(scopes) + 1)) if rng.random() < 0.5 else scopes
    how = rng.choice(("immediately", "sibling", "sibling", "deadline"))
    delay = random_delay(rng)

    async def op(index: int) -> None:
        with scopes[index]:
            result = await works[index]()
            if isinstance(result, dict):
                reads.append(result)
            done[index] = True
            if all(done):
                all_done.set()

    async def cancel_after() -> None:
        with anyio.move_on_after(delay):
            await all_done.wait()
        for scope in victims:
            scope.cancel()

    async with anyio.create_task_group() as tg:
        if how == "deadline":
            for scope in victims:
                scope.deadline = anyio.current_time() + delay
        for index in range(len(works)):
            tg.start_soon(op, index)
        if how == "immediately":
            for scope in victims:
                scope.cancel()
        elif how == "sibling":
            tg.start_soon(cancel_after)
    for found in reads:
        checker.check_read(found, complete=False)
    return sum(
        1 for scope, finished in zip(scopes, done, strict=True) if scope.cancelled_caught and not finished
    )


async def verify(store: Store, checker: Checker, kind: str, *, listing: bool) -> None:
    found = await store.get_many(checker.keys)
    checker.check_read(found, complete=True)
    if kind == "lru-directory":
        # The cache must agree with the store below it: a cancelled write may not
        # leave the cache holding one value and the store another.
        below = await store.store.get_many(checker.keys)  # type: ignore[attr-defined]
        if below != found:
            differ = sorted(k for k in found if below.get(k) != found[k])
            checker.fail(f"the cache and its store disagree on {differ[:5]}")
    if listing:
        listed = sorted([key async for key in store.list()])
        if listed != sorted(checker.keys):
            checker.fail(f"listed keys differ: extra {sorted(set(listed) - set(checker.keys))[:5]}")
    checker.settle(found)


@pytest.mark.parametrize("kind", sorted(STORES))
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # a Zip file's rewrites
async def test_cancelled_batches_tear_nothing_and_leak_nothing(
    kind: str, anyio_backend: str, tmp_path: Path
) -> None:
    seed = BASE_SEED ^ zlib.crc32(f"{kind}/{anyio_backend}".encode())
    rng = random.Random(seed)
    checker = Checker(seed, kind, anyio_backend)
    max_size = MAX_VALUE_SIZE.get(kind, 16384)
    fds_before_open = open_fds()
    store = STORES[kind](tmp_path)
    cancelled = 0
    try:
        with anyio.fail_after(120):  # a deadlock guard only
            await store.set_many({key: make_value(rng, key, 0, max_size) for key in checker.keys})
            fds_after_warmup = threads_after_warmup = 0
            most_threads = 0
            for checker.round in range(WARMUP_ROUNDS + ROUNDS):
                if checker.round == WARMUP_ROUNDS:
                    fds_after_warmup, threads_after_warmup = open_fds(), threading.active_count()
                cancelled += await run_round(store, checker, rng, checker.round + 1, max_size)
                await verify(store, checker, kind, listing=checker.round % 5 == 0)
                if checker.round >= WARMUP_ROUNDS:
                    most_threads = max(most_threads, threading.active_count())
                    fds = open_fds()
                    assert fds <= fds_after_warmup, (
                        f"round {checker.round}: file descriptors grew from {fds_after_warmup} "
                        f"to {fds} [{checker.context}]"
                    )
            await verify(store, checker, kind, listing=True)
    finally:
        await store.aclose()
    TALLY.add(cancellations=cancelled)
    # Pool threads may come and go (an idle one ends, a busy pool starts one), but
    # never more than the disk pool's bound above the count after warm-up.
    bound = threads_after_warmup + thread_limit("disk")
    assert most_threads <= bound, (
        f"threads grew from {threads_after_warmup} to {most_threads} [{checker.context}]"
    )
    assert threading.active_count() <= bound
    # The store, closed, holds no descriptor (cancelled work closed what it opened).
    assert open_fds() <= fds_before_open, (
        f"{open_fds() - fds_before_open} descriptors leaked [{checker.context}]"
    )
    if kind != "memory":  # the memory store's batches never yield: nothing to cut short
        assert cancelled >= ROUNDS // 4, (
            f"only {cancelled} operations cut short in {ROUNDS} rounds [{checker.context}]"
        )


class TearingStore(Store):
    """A store that writes each value in two halves with a checkpoint between:
    what the checks above must catch."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, bytes] = {}

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        return self.data[key]

    async def _set(self, key: str, value: Buffer) -> None:
        half = len(value) // 2
        self.data[key] = bytes(value[:half])
        await anyio.lowlevel.checkpoint()
        self.data[key] += bytes(value[half:])

    async def _delete(self, key: str) -> None:
        del self.data[key]

    async def _contains(self, key: str) -> bool:
        return key in self.data

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        for key in list(self.data):
            if key.startswith(prefix):
                yield key


async def test_the_checks_catch_a_store_that_tears(anyio_backend: str) -> None:
    rng = random.Random(BASE_SEED)
    checker = Checker(BASE_SEED, "tearing", anyio_backend, tally=False)
    store = TearingStore()
    await store.set_many({key: make_value(rng, key, 0, 1000) for key in checker.keys})
    with pytest.raises(pytest.fail.Exception, match="torn value"):
        for checker.round in range(100):
            await run_round(store, checker, rng, checker.round + 1, 1000)
            await verify(store, checker, "tearing", listing=False)


async def run_native_round(
    store: Store, checker: Checker, rng: random.Random, generation: int, max_size: int, hop_path: str
) -> int:
    """A round under asyncio whose operations are asyncio tasks, some cancelled with
    ``task.cancel()`` (as ``asyncio.wait_for`` and ``asyncio.TaskGroup`` do, and zarr 3
    on its own loop): a native cancellation passes anyio's shields."""
    works = plan_round(store, checker, rng, generation, max_size)
    with executor_hops() if hop_path == "executor" else contextlib.nullcontext():
        tasks = [asyncio.ensure_future(work()) for work in works]
    delay = random_delay(rng)
    if delay:
        await asyncio.wait(tasks, timeout=delay)
    victims = rng.sample(tasks, rng.randrange(1, len(tasks) + 1))
    for task in victims:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, asyncio.CancelledError) and task in victims:
            continue
        if isinstance(result, BaseException):
            checker.fail(f"an operation that was not cancelled failed: {result!r}")
        if isinstance(result, dict):
            checker.check_read(result, complete=False)
    return sum(1 for task in tasks if task.cancelled())


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("hop_path", ["anyio", "executor"])
@pytest.mark.parametrize("kind", ["directory", "lmdb", "lru-directory", "zip-a"])
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
async def test_natively_cancelled_asyncio_tasks_tear_nothing(
    kind: str, hop_path: str, anyio_backend: str, tmp_path: Path
) -> None:
    """``task.cancel()`` of some of the operations (thread hops through anyio, or
    through asyncio's executor as :class:`aiostore.zarr3.ZarrStore`'s are): the
    others end normally, and nothing is torn."""
    seed = BASE_SEED ^ zlib.crc32(f"{kind}/native/{hop_path}".encode())
    rng = random.Random(seed)
    checker = Checker(seed, f"{kind} ({hop_path} hops)", "asyncio tasks")
    max_size = MAX_VALUE_SIZE.get(kind, 16384)
    store = STORES[kind](tmp_path)
    cancelled = 0
    try:
        with anyio.fail_after(120):  # a deadlock guard only
            await store.set_many({key: make_value(rng, key, 0, max_size) for key in checker.keys})
            for checker.round in range(NATIVE_ROUNDS):
                cancelled += await run_native_round(
                    store, checker, rng, checker.round + 1, max_size, hop_path
                )
                await verify(store, checker, kind, listing=checker.round % 5 == 0)
    finally:
        await store.aclose()
    TALLY.add(cancellations=cancelled)
    assert cancelled >= NATIVE_ROUNDS // 2, f"only {cancelled} operations cancelled [{checker.context}]"
