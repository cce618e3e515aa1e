"""Many writers: several processes and many threads write and read one store at once.

Directory, Nested and LMDB stores take any number of writers: processes
(``spawn``) each run writer threads (one of them through the async API, under
asyncio or trio) and reader threads against one path. Every value names its
key, its writer and that writer's sequence number, and ends with a checksum,
so a reader can tell a complete value from a torn one, and the final check can
tell which write survived: each key a single writer owns must hold exactly that
writer's last write (nothing lost), each key all writers share must hold the
last write of one of them, and nothing else may be listed.

Zip files and DBM databases take one writer: a second writing process is
refused at open with :class:`aiostore.errors.StoreLockedError` (naming the path
and saying why), and a second writable store on the path in the same process
must never silently lose the first one's writes.

Then the same through a ``dask.distributed`` cluster of two worker processes
(the original bug: writing to a ZipStore from two workers left a file that is
not a Zip file; to a DBMStore, a database whose values were all missing, and
neither raised).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import queue as queue_module
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import anyio
import pytest
from stress_tally import TALLY, rounds

import aiostore
from aiostore.errors import StoreError, StoreLockedError

#: Seconds any one wait on a child process or the cluster may take.
TIMEOUT = 60
#: Seconds to wait for a refused writer's error to come back from the cluster.
#: A refusal is immediate; a hang here means the error never reached the client.
LOCK_TIMEOUT = 15

MULTI_WRITER = ["directory", "nested", "lmdb"]
ONE_WRITER = ["zip", "dbm"]


# -- values that prove themselves ------------------------------------------------------


def encode(key: str, writer: str, seq: int, size: int) -> bytes:
    """``len | key NUL writer NUL seq | payload | digest``: complete or visibly not."""
    header = f"{key}\0{writer}\0{seq}".encode()
    payload = random.Random(f"{key}|{writer}|{seq}").randbytes(size)
    body = len(header).to_bytes(2, "big") + header + payload
    return body + hashlib.blake2b(body, digest_size=16).digest()


def decode(value: bytes) -> tuple[str, str, int] | None:
    """``(key, writer, seq)`` of a complete value, None for a torn or foreign one."""
    value = bytes(value)  # LMDBStore's default values are memoryviews (no copy for bytes)
    if len(value) < 18:
        return None
    body, digest = value[:-16], value[-16:]
    if hashlib.blake2b(body, digest_size=16).digest() != digest:
        return None
    n = int.from_bytes(body[:2], "big")
    try:
        key, writer, seq = body[2 : 2 + n].decode().split("\0")
        return key, writer, int(seq)
    except ValueError:
        return None


def value_size(rng: random.Random) -> int:
    # Small, page-sized and large values, so a torn overwrite changes the length.
    return rng.choice((rng.randrange(0, 200), rng.randrange(3000, 9000), rng.randrange(20_000, 40_000)))


# -- the stores ------------------------------------------------------------------------


def store_path(kind: str, root: str) -> str:
    return os.path.join(root, {"zip": "data.zip", "dbm": "data.db", "lmdb": "data.mdb"}.get(kind, "data"))


def open_store(
    kind: str, path: str, *, read_only: bool = False, new: bool = False, buffers: bool = True
) -> Any:
    """The store of ``kind`` at ``path``; ``buffers`` is LMDB's (False: values are bytes)."""
    if kind == "directory":
        return aiostore.DirectoryStore(path, read_only=read_only)
    if kind == "nested":
        return aiostore.NestedDirectoryStore(path, read_only=read_only)
    if kind == "lmdb":
        return aiostore.LMDBStore(path, buffers=buffers, read_only=read_only)
    if kind == "zip":
        return aiostore.ZipStore(path, mode="r" if read_only else "w" if new else "a")
    if kind == "dbm":
        return aiostore.DBMStore(path, flag="r" if read_only else "n" if new else "c")
    raise AssertionError(kind)


def read_back(kind: str, path: str) -> dict[str, bytes]:
    """Every key and value (bytes, kept past the close), through a fresh read-only store."""
    store = open_store(kind, path, read_only=True, buffers=False)
    try:
        return store.get_many_sync(list(store.list_sync()))  # type: ignore[no-any-return]
    finally:
        store.close_sync()


# -- the plan of one many-writer run ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    processes: int
    writers: int  # writer threads per process (writer 0 uses the async API)
    readers: int  # reader threads per process
    rounds: int  # write batches per writer
    own: int  # keys each writer owns
    shared: int  # keys every writer writes

    def own_keys(self, p: int, t: int) -> list[str]:
        # Owned keys land in directories every writer creates at once.
        return [
            f"grid/{i % 4}/{p}.{t}.{i}" if i % 2 == 0 else f"deep/{i % 3}/{i % 5}/w{p}-{t}/{i}"
            for i in range(self.own)
        ]

    def shared_keys(self) -> list[str]:
        return [f"shared/{j}" if j % 2 == 0 else f"shared-dir/{j}/v" for j in range(self.shared)]

    def universe(self) -> list[str]:
        keys = list(self.shared_keys())
        for p in range(self.processes):
            for t in range(self.writers):
                keys += self.own_keys(p, t)
        return keys


PLAN = Plan(
    processes=rounds(3, 6),
    writers=rounds(4, 8),
    readers=2,
    rounds=rounds(8, 60),
    own=rounds(16, 64),
    shared=8,
)


@dataclasses.dataclass
class Findings:
    """What one process (or the final check) saw."""

    checked: int = 0
    torn: list[str] = dataclasses.field(default_factory=list)
    lost: list[str] = dataclasses.field(default_factory=list)
    stray: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    #: (key, writer) -> that writer's last sequence number written to key
    last: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def merge(self, other: Findings) -> None:
        self.checked += other.checked
        self.torn += other.torn
        self.lost += other.lost
        self.stray += other.stray
        self.errors += other.errors
        self.last.update(other.last)


def check_read(findings: Findings, key: str, value: bytes, lock: threading.Lock) -> tuple[str, int] | None:
    """Record a value read under ``key``; its ``(writer, seq)`` if complete."""
    meta = decode(value)
    with lock:
        findings.checked += 1
        if meta is None or meta[0] != key:
            findings.torn.append(f"{key}: {len(value)} bytes, {bytes(value[:40])!r}...")
            return None
    return meta[1], meta[2]


# -- one writing process ----------------------------------------------------------------


def hammer(kind: str, path: str, p: int, plan: Plan, barrier: Any, results: Any) -> None:
    """Process ``p``: writer and reader threads on one path; puts its Findings on ``results``."""
    findings = Findings()
    lock = threading.Lock()
    writers_done = threading.Event()
    universe = plan.universe()
    shared_keys = plan.shared_keys()
    stores: list[Any] = []
    try:
        common = open_store(kind, path)
        stores.append(common)

        def writer(t: int) -> None:
            # Odd writers open a store of their own on the path, even ones share one.
            store = common
            if t % 2:
                store = open_store(kind, path)
                with lock:
                    stores.append(store)
            rng = random.Random(f"{p}.{t}")
            name = f"p{p}t{t}"
            own = plan.own_keys(p, t)
            last: dict[str, int] = {}

            def batches() -> Iterator[tuple[int, dict[str, bytes]]]:
                for seq in range(plan.rounds):
                    keys = own if seq == 0 else rng.sample(own, max(1, len(own) // 4))
                    keys = keys + rng.sample(shared_keys, 3)
                    yield seq, {k: encode(k, name, seq, value_size(rng)) for k in keys}

            def written(seq: int, batch: Mapping[str, bytes], back: Mapping[str, bytes]) -> None:
                # Read your own writes: an owned key holds exactly what was just written.
                for key in batch:
                    last[key] = seq
                for key in own:
                    if key not in batch:
                        continue
                    got = back.get(key)
                    meta = None if got is None else check_read(findings, key, got, lock)
                    if meta != (name, seq):
                        with lock:
                            findings.lost.append(f"{key}: read {meta} right after writing {(name, seq)}")

            if t == 0:
                # The async API, under asyncio in even processes and trio in odd ones.
                async def main() -> None:
                    for seq, batch in batches():
                        if seq % 3 == 1:
                            async with anyio.create_task_group() as tg:
                                for key, value in batch.items():
                                    tg.start_soon(store.set, key, value)
                        else:
                            await store.set_many(batch)
                        written(seq, batch, await store.get_many(list(batch)))

                anyio.run(main, backend="trio" if p % 2 else "asyncio")
            else:
                for seq, batch in batches():
                    if seq % 3 == 1:
                        for key, value in batch.items():
                            store.set_sync(key, value)
                    else:
                        store.set_many_sync(batch)
                    written(seq, batch, store.get_many_sync(list(batch)))
            with lock:
                for key, seq in last.items():
                    findings.last[(key, name)] = seq

        def reader(r: int) -> None:
            rng = random.Random(f"reader {p}.{r}")
            store = open_store(kind, path) if r % 2 else common
            if store is not common:
                with lock:
                    stores.append(store)
            known = set(universe)
            n = 0
            while not writers_done.is_set():
                n += 1
                for key, value in store.get_many_sync(rng.sample(universe, 16)).items():
                    check_read(findings, key, value, lock)
                if n % 5 == 0:
                    if store.contains_sync(key := rng.choice(universe)):
                        with contextlib.suppress(KeyError):  # cannot vanish: no one deletes
                            check_read(findings, key, store.get_sync(key), lock)
                if n % 7 == 0:
                    listed = list(store.list_sync(rng.choice(("grid/", "deep/", "shared", ""))))
                    with lock:
                        findings.stray += [k for k in listed if k not in known]

        def guarded(fn: Callable[[int], None], i: int) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn(i)
                except BaseException:
                    with lock:
                        findings.errors.append(f"process {p}, {fn.__name__} {i}: {traceback.format_exc()}")

            return run

        writer_threads = [threading.Thread(target=guarded(writer, t)) for t in range(plan.writers)]
        reader_threads = [threading.Thread(target=guarded(reader, r)) for r in range(plan.readers)]
        barrier.wait(TIMEOUT)  # every process has its store open: go
        for thread in writer_threads + reader_threads:
            thread.start()
        for thread in writer_threads:
            thread.join()
        writers_done.set()
        for thread in reader_threads:
            thread.join()
    except BaseException:
        findings.errors.append(f"process {p}: {traceback.format_exc()}")
        barrier.abort()  # the others need not wait for this one
    finally:
        for store in stores:
            with contextlib.suppress(Exception):
                store.close_sync()
        results.put(findings)


def spawn_all(
    target: Callable[..., None], args_of: Callable[[int, Any, Any], tuple[Any, ...]], n: int
) -> list[Any]:
    """Run ``target(*args_of(i, barrier, results))`` in ``n`` spawned processes; their results."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=args_of(i, barrier, results), daemon=True) for i in range(n)]
    for proc in procs:
        proc.start()
    out = []
    deadline = time.monotonic() + TIMEOUT * 2
    try:
        for _ in procs:
            try:
                out.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue_module.Empty:
                codes = [proc.exitcode for proc in procs]
                pytest.fail(f"a child process gave no result in time (exit codes {codes})")
        for proc in procs:
            proc.join(TIMEOUT)
            assert proc.exitcode == 0
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    return out


# -- many processes x many threads on one multi-writer store ------------------------------


@pytest.mark.parametrize("kind", MULTI_WRITER)
def test_many_processes_and_threads_write_and_read_one_store(kind: str, tmp_path: Any) -> None:
    path = store_path(kind, str(tmp_path))
    open_store(kind, path).close_sync()
    plan = PLAN
    found = Findings()
    for f in spawn_all(
        hammer, lambda p, barrier, results: (kind, path, p, plan, barrier, results), plan.processes
    ):
        found.merge(f)
    assert not found.errors, found.errors[0]
    in_flight = found.checked

    # The final state: every owned key holds its writer's last write, every shared
    # key the last write of one of the writers, and nothing else is there.
    final = read_back(kind, path)
    known = set(plan.universe())
    found.stray += [key for key in final if key not in known]
    last_of: dict[str, dict[str, int]] = {}
    for (key, writer), seq in found.last.items():
        last_of.setdefault(key, {})[writer] = seq
    shared = set(plan.shared_keys())
    for key, writers in last_of.items():
        if key not in final:
            found.lost.append(f"{key}: missing at the end")
            continue
        meta = decode(final[key])
        found.checked += 1
        if meta is None or meta[0] != key:
            found.torn.append(f"{key}: torn at the end")
        elif key not in shared and (meta[1], meta[2]) != next(iter(writers.items())):
            found.lost.append(f"{key}: holds {meta[1:]}, but the last write was {writers}")
        elif writers.get(meta[1]) != meta[2]:
            found.lost.append(f"{key}: holds {meta[1:]}, which is no writer's last write ({writers})")
    owned = {k for k in known if k not in shared}
    assert owned <= set(last_of), "a writer did not write all its keys"

    TALLY.add(
        processes=plan.processes, keys_checked=found.checked, lost=len(found.lost), torn=len(found.torn)
    )
    assert in_flight > plan.processes * plan.writers * plan.rounds  # the readers did read
    assert not found.torn, found.torn[:5]
    assert not found.lost, found.lost[:5]
    assert not found.stray, found.stray[:5]  # no temp file or foreign name listed as a key


# -- Zip and DBM: one writing process at a time -------------------------------------------


def try_to_write(kind: str, path: str, i: int, go: Any, results: Any) -> None:
    """Child ``i``, twice: wait for ``go[phase]``, open ``path`` for writing, write
    ``child{i}/{phase}``, close. Puts ``(phase, "ok", i)`` or ``(phase, "refused", i,
    type name, message, is StoreLockedError)`` on ``results``."""
    for phase in range(2):
        try:
            if not go[phase].wait(TIMEOUT):
                raise TimeoutError(f"no go for phase {phase}")
            try:
                store = open_store(kind, path)
            except Exception as exc:
                results.put(
                    (phase, "refused", i, type(exc).__name__, str(exc), isinstance(exc, StoreLockedError))
                )
                continue
            try:
                key = f"child{i}/{phase}"
                store.set_sync(key, encode(key, f"child{i}", phase, 100))
            finally:
                store.close_sync()
            results.put((phase, "ok", i))
        except BaseException:
            results.put((phase, "error", i, traceback.format_exc()))


@pytest.mark.parametrize("kind", ONE_WRITER)
def test_second_writing_process_is_refused_with_a_reason(kind: str, tmp_path: Any) -> None:
    """While this process writes, every other process's writable open is refused with
    StoreLockedError naming the path; once it closes, other processes may write one at
    a time (or be refused), and nothing anyone wrote is lost."""
    path = store_path(kind, str(tmp_path))
    ctx = multiprocessing.get_context("spawn")
    go = [ctx.Event(), ctx.Event()]
    results = ctx.Queue()
    n = 2
    mine = {f"parent/{i}": encode(f"parent/{i}", "parent", 0, 5000) for i in range(20)}
    procs = [
        ctx.Process(target=try_to_write, args=(kind, path, i, go, results), daemon=True) for i in range(n)
    ]
    for proc in procs:
        proc.start()
    try:
        writer = open_store(kind, path, new=True)
        try:
            writer.set_many_sync(mine)
            go[0].set()  # all at once, while this process holds the writer
            first = [results.get(timeout=TIMEOUT) for _ in procs]
        finally:
            writer.close_sync()
        go[1].set()  # the writer is closed: one at a time, or refused, never lost
        later = [results.get(timeout=TIMEOUT) for _ in procs]
    finally:
        for proc in procs:
            proc.join(TIMEOUT)
            if proc.is_alive():
                proc.kill()
    assert all(o[1] != "error" for o in first + later), first + later
    assert [o[1] for o in first] == ["refused"] * n, first
    for _, _, _, name, message, locked in first:
        assert locked, f"refused with {name}, not StoreLockedError: {message}"
        assert path in message and "one writer" in message, message
    ok = sorted(o[2] for o in later if o[1] == "ok")
    assert ok, f"no process could write after the writer closed: {later}"
    for o in later:
        if o[1] == "refused":
            assert o[5], f"refused with {o[3]}, not StoreLockedError: {o[4]}"
    final = read_back(kind, path)
    expected = set(mine) | {f"child{i}/1" for i in ok}
    lost = sorted(expected - set(final))
    torn = [k for k, v in final.items() if (decode(v) or ("",))[0] != k]
    TALLY.add(processes=n, keys_checked=len(final), lost=len(lost), torn=len(torn))
    assert not lost and not torn, (lost, torn)
    assert set(final) == expected


@pytest.mark.parametrize("kind", ONE_WRITER)
def test_two_writable_stores_in_one_process_lose_nothing(kind: str, tmp_path: Any) -> None:
    """Two writable stores on one Zip/DBM path in one process, written from many
    threads: either the second open is refused, or every key either wrote survives."""
    path = store_path(kind, str(tmp_path))
    first = open_store(kind, path, new=True)
    try:
        second = open_store(kind, path)
    except StoreLockedError:
        first.close_sync()
        TALLY.add(keys_checked=0)
        return
    written: dict[str, bytes] = {}
    lock = threading.Lock()

    def write(store: Any, name: str) -> None:
        rng = random.Random(name)
        for i in range(10):
            batch = {f"{name}/{i}/{j}": encode(f"{name}/{i}/{j}", name, 0, value_size(rng)) for j in range(4)}
            store.set_many_sync(batch)
            with lock:
                written.update(batch)

    threads = [
        threading.Thread(target=write, args=(store, f"{which}{t}"))
        for which, store in (("a", first), ("b", second))
        for t in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.close_sync()
    second.close_sync()
    final = read_back(kind, path)
    lost = sorted(k for k in written if final.get(k) != written[k])
    TALLY.add(keys_checked=len(written), lost=len(lost))
    assert not lost, f"{len(lost)} of {len(written)} keys lost, e.g. {lost[:3]}"


# -- through a dask.distributed cluster of worker processes ---------------------------------


@contextlib.contextmanager
def cluster() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed", reason="the cluster tests need dask.distributed")
    local = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
        death_timeout=TIMEOUT,
    )
    try:
        client = distributed.Client(local, timeout=TIMEOUT, set_as_default=False)
    except BaseException:
        local.close(timeout=TIMEOUT)
        raise
    try:
        client.wait_for_workers(2, timeout=TIMEOUT)
        TALLY.add(processes=2)
        yield client
    finally:
        client.close(timeout=TIMEOUT)
        local.close(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One cluster of two worker processes, two threads each, for the module."""
    with cluster() as c:
        yield c


def worker_addresses(client: Any) -> list[str]:
    """The two workers' addresses (after waiting for them: a failed test may have killed one)."""
    client.wait_for_workers(2, timeout=LOCK_TIMEOUT)
    pids = dict(client.run(os.getpid, wait=True))
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    return sorted(pids)


def outcomes(futures: list[Any], timeout: float) -> list[BaseException | Any]:
    """Each future's result, or the exception it raised; fails if any is not done in time."""
    deadline = time.monotonic() + timeout
    out: list[BaseException | Any] = []
    for future in futures:
        try:
            out.append(future.result(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            pytest.fail(
                f"a task on the cluster gave neither a result nor an error within {timeout} s "
                "(did the store raise while being unpickled? that kills a dask worker, and the "
                "error never reaches the client)"
            )
        except Exception as exc:
            out.append(exc)
    return out


def dask_batches(n: int, seed: str, overwrite: Sequence[str] = ()) -> list[dict[str, bytes]]:
    """``n`` write batches: 8 keys each owns, 3 of 6 keys they share, and the
    ``b``-th key of ``overwrite`` (each rewritten by one batch)."""
    rng = random.Random(seed)
    shared = [f"dask-shared/{j}" for j in range(6)]
    batches = []
    for b in range(n):
        keys = [f"dask/{b}/{i}" for i in range(8)] + rng.sample(shared, 3) + list(overwrite[b : b + 1])
        batches.append({k: encode(k, f"batch{b}", 0, value_size(rng)) for k in keys})
    return batches


def accepted(base: Mapping[str, bytes], batches: list[dict[str, bytes]]) -> dict[str, set[bytes]]:
    """Each key's possible final values once ``batches`` ran, in any order, over ``base``:
    the value of any batch that wrote it (one, unless it is shared), else its value in ``base``."""
    out: dict[str, set[bytes]] = {}
    for batch in batches:
        for k, v in batch.items():
            out.setdefault(k, set()).add(v)
    return {**{k: {v} for k, v in base.items()}, **out}


def differences(
    seen: Mapping[str, bytes], allowed: Mapping[str, set[bytes]]
) -> tuple[list[str], list[str], list[str]]:
    """Keys missing from ``seen``, keys holding a value not allowed, keys not expected at all."""
    missing = sorted(k for k in allowed if k not in seen)
    wrong = sorted(k for k in allowed if k in seen and seen[k] not in allowed[k])
    extra = sorted(k for k in seen if k not in allowed)
    return missing, wrong, extra


@pytest.mark.parametrize("kind", MULTI_WRITER)
def test_dask_workers_write_and_read_one_store(client: Any, kind: str, tmp_path: Any) -> None:
    """Both worker processes (two threads each) write batches with set_many_sync and
    read with get_many_sync, while this process holds the store open too: every read
    is complete, and afterwards every key holds a value some batch wrote (exactly its
    batch's value for the keys a batch owns)."""
    path = store_path(kind, str(tmp_path))
    # bytes: the values read are looked up in sets of bytes, and kept past the close
    store = open_store(kind, path, buffers=False)
    try:
        store.set_sync("from-client", encode("from-client", "client", 0, 10))
        batches = dask_batches(rounds(16, 80), kind)
        written = accepted({}, batches)
        universe = sorted(written)
        rng = random.Random(1)
        reads = [rng.sample(universe, 12) for _ in range(len(batches))]
        w1, w2 = worker_addresses(client)
        half = len(batches) // 2
        futures = (
            client.map(store.set_many_sync, batches[:half], workers=[w1], pure=False)
            + client.map(store.set_many_sync, batches[half:], workers=[w2], pure=False)
            + client.map(store.get_many_sync, reads, pure=False)
        )
        done = outcomes(futures, TIMEOUT)
        errors = [o for o in done if isinstance(o, BaseException)]
        assert not errors, errors[0]
        checked = torn = 0
        for got in done[len(batches) :]:
            for key, value in got.items():
                checked += 1
                torn += (decode(value) or ("",))[0] != key
        final = store.get_many_sync(universe)
        lost = [k for k in universe if final.get(k) not in written[k]]
        torn += sum((decode(v) or ("",))[0] != k for k, v in final.items())
        assert store.get_sync("from-client") == encode("from-client", "client", 0, 10)
    finally:
        store.close_sync()
    again = read_back(kind, path)
    lost += [k for k in universe if again.get(k) != final.get(k)]
    assert set(again) == set(universe) | {"from-client"}
    TALLY.add(keys_checked=checked + 2 * len(universe), lost=len(lost), torn=torn)
    assert not torn and not lost, (torn, lost[:5])


def assert_locked(exc: BaseException, path: str) -> None:
    assert isinstance(exc, StoreLockedError), f"expected StoreLockedError, got {type(exc).__name__}: {exc}"
    assert path in str(exc) and "one writer" in str(exc), str(exc)


@pytest.mark.parametrize("kind", ONE_WRITER)
def test_dask_workers_are_refused_while_the_client_writes(client: Any, kind: str, tmp_path: Any) -> None:
    """The client holds the writer; every worker's writing copy is refused with
    StoreLockedError, and the error reaches the client. The file stays valid."""
    path = store_path(kind, str(tmp_path))
    store = open_store(kind, path, new=True)
    mine = {f"client/{i}": encode(f"client/{i}", "client", 0, 1000) for i in range(10)}
    try:
        store.set_many_sync(mine)
        batches = dask_batches(rounds(8, 32), kind)
        w1, w2 = worker_addresses(client)
        half = len(batches) // 2
        futures = client.map(store.set_many_sync, batches[:half], workers=[w1], pure=False) + client.map(
            store.set_many_sync, batches[half:], workers=[w2], pure=False
        )
        done = outcomes(futures, LOCK_TIMEOUT)
        assert all(isinstance(o, BaseException) for o in done), (
            "a worker wrote while the client held the writer"
        )
        for exc in done:
            assert_locked(exc, path)
        store.set_sync("client/after", b"still mine")  # the client's writer is untouched
    finally:
        store.close_sync()
    final = read_back(kind, path)
    TALLY.add(keys_checked=len(final))
    assert final == {**mine, "client/after": b"still mine"}


@pytest.mark.parametrize("kind", ONE_WRITER)
def test_dask_second_worker_is_refused_and_nothing_is_silently_lost(kind: str, tmp_path: Any) -> None:
    """The client wrote and closed its store first. One worker process writes through
    its copy (new keys, and rewrites of the client's) and keeps it: dask caches it with
    the task's function. The other worker's writes are then refused with
    StoreLockedError, or serialised. Reading the file back right after the first
    worker's tasks succeeded gives all they wrote, or an aiostore error: never a
    silently stale, empty or corrupt store. Once the workers exit, the file holds the
    client's keys and exactly the batches that succeeded."""
    path = store_path(kind, str(tmp_path))
    store = open_store(kind, path, new=True)
    mine = {f"client/{i}": encode(f"client/{i}", "client", 0, 1000) for i in range(10)}
    store.set_many_sync(mine)
    store.close_sync()
    batches = dask_batches(rounds(8, 32), kind, overwrite=sorted(mine))
    half = len(batches) // 2
    succeeded = batches[:half]
    silent: list[str] = []
    with cluster() as c:
        w1, w2 = worker_addresses(c)
        first = outcomes(c.map(store.set_many_sync, batches[:half], workers=[w1], pure=False), LOCK_TIMEOUT)
        errors = [o for o in first if isinstance(o, BaseException)]
        assert not errors, f"the only writer was refused: {errors[0]!r}"
        # As a user would once compute() returned: read what the workers wrote.
        try:
            seen = read_back(kind, path)
        except StoreError:
            pass  # an aiostore error says something is wrong: not silent
        else:
            missing, wrong, extra = differences(seen, accepted(mine, succeeded))
            if missing or wrong or extra:
                silent.append(
                    f"after the workers' set_many_sync returned, a read-only {kind} store raises nothing, "
                    f"but of the keys written {len(missing)} are missing {missing[:3]} and {len(wrong)} "
                    f"hold other values {wrong[:3]}"
                )
        second = outcomes(c.map(store.set_many_sync, batches[half:], workers=[w2], pure=False), LOCK_TIMEOUT)
        for batch, outcome in zip(batches[half:], second, strict=True):
            if isinstance(outcome, BaseException):
                assert_locked(outcome, path)
            else:
                succeeded.append(batch)
    # The workers have exited, and closed their copies.
    final = read_back(kind, path)
    missing, wrong, extra = differences(final, accepted(mine, succeeded))
    TALLY.add(keys_checked=len(final), lost=len(missing) + len(wrong) + len(silent))
    assert not silent and not missing and not wrong and not extra, (
        silent
        + [f"after the workers exited, {len(missing)} keys are missing: {missing[:5]}"] * bool(missing)
        + [f"after the workers exited, {len(wrong)} keys hold other values: {wrong[:5]}"] * bool(wrong)
        + [f"after the workers exited, {len(extra)} keys no one wrote: {extra[:5]}"] * bool(extra)
    )
