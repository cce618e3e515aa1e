"""aiostore's LMDBStore against zarr 2.18's LMDBStore and raw py-lmdb loops.

Issue 4's LMDB benchmark, and issue 12's zero-copy reads. 100,000 values of 4 KiB
(``--count``, ``--size``), keys like zarr 2 chunk keys (``arr/12.34``), in one
LMDB database on a warm page cache.

Reads are measured with ``buffers=False`` (``bytes`` copied out in the
transaction) and ``buffers=True`` (read-only memoryviews into LMDB's map that
keep their read snapshot open while they live), and the two targets of issue 12
are checked after each table: ``get_many`` with ``buffers=True`` at least 3x
faster than zarr 2's ``getitems``, and at least 3x faster than ``buffers=False``
(both asyncio). Two more rows time a whole cycle -- read, then drop every value
-- since dropping 100,000 buffers ends their snapshot and dropping 400 MB of
``bytes`` frees them: neither is in the ``get_many`` rows.

Reads: one ``get_many`` of every key (``getitems`` for zarr 2). Every way reads
through the *same* ``lmdb.Environment`` (LMDB allows one per process; zarr 2's
store object is handed aiostore's), so the memory map is equally warm for all.
Writes: one ``set_many`` of ``--write-count`` keys into a new database.

Every way runs ``--repeat`` times in interleaved rounds and its best run counts;
each way's first result is checked (every value read back right).

Returning 400 MB of values means allocating 400 MB. With glibc's default
settings that memory goes back to the kernel when the result is dropped and is
faulted in again, 4 KiB at a time (about 100,000 page faults), by the next call;
in a worker thread (the async side) malloc uses a per-thread arena, which does
the same. Every way that returns copies pays for that; zarr 2's ``getitems``
with ``buffers=True`` does not, because it returns buffers into LMDB's map whose
transaction has already ended (they read right only while nothing writes).
LMDB writes without ``writemap`` stage dirty pages in malloc'd memory, so they
pay it too. So the whole run is done three times, each in a process of its
own: with default malloc; with malloc asking for transparent huge pages in one
arena (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1``: 512
times fewer faults); and with ``MALLOC_TRIM_THRESHOLD_``/``MALLOC_TOP_PAD_`` set
so freed memory stays in the process (no faults: the code paths alone).

Run with a Python that has zarr 2 (its row fails to run otherwise)::

    python benchmarks/bench_lmdb.py [--count N] [--size BYTES] [--repeat R] [--write-count N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import lmdb
from _common import Row, format_table, interleaved_best, machine_description, time_once

import aiostore
import aiostore.sync
from aiostore._runtime.offload import thread_limit

READ_BASELINE = "aiostore LMDBStore(buffers=False).get_many (asyncio)"
BUFFERS = "aiostore LMDBStore(buffers=True).get_many (asyncio)"
ZARR2 = "zarr 2.18 LMDBStore.getitems"
#: Issue 12's targets: (way, slower way it must beat, by at least this factor).
TARGETS = [(BUFFERS, ZARR2, 3.0), (BUFFERS, READ_BASELINE, 3.0)]
WRITE_BASELINE = "aiostore LMDBStore.set_many (asyncio)"
#: Each part of the run, in a process of its own: (heading, environment).
MALLOC_SETTINGS = [
    ("default malloc", {}),
    (
        "malloc tuned: GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1",
        {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1"},
    ),
    (
        "freed memory kept in the process",
        {"MALLOC_TRIM_THRESHOLD_": str(2**40), "MALLOC_TOP_PAD_": str(2**30)},
    ),
]

Way = Callable[[int], float]


def make_keys(count: int) -> list[str]:
    side = int(count**0.5) + 1
    return [f"arr/{i // side}.{i % side}" for i in range(count)]


def make_values(keys: list[str], size: int) -> dict[str, bytes]:
    # Distinct values, cheap to make: the key, then zeros.
    return {k: (k.encode() + b":" + bytes(size))[:size] for k in keys}


def import_zarr2_storage() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr 2.18's deprecation warnings
        import zarr.storage

    return zarr.storage


def zarr2_store_on(env: lmdb.Environment, path: str) -> Any:
    """zarr 2.18's LMDBStore (buffers=True, its default) on an already open environment."""
    storage = import_zarr2_storage()
    store = storage.LMDBStore.__new__(storage.LMDBStore)
    store.db, store.buffers, store.path, store.kwargs = env, True, path, {}
    store._dimension_separator = None
    return store


def check_read(found: dict[str, Any], values: dict[str, bytes]) -> None:
    assert len(found) == len(values), (len(found), len(values))
    keys = list(values)
    for key in (keys[0], keys[len(keys) // 2], keys[-1]):
        assert bytes(found[key]) == values[key], key


def sync_way(run: Callable[[], Any], values: dict[str, bytes] | None) -> Way:
    """Time ``run()``; check its first result against ``values`` (unless None)."""
    checked = False

    def one(_round: int) -> float:
        nonlocal checked
        seconds, found = time_once(run)
        if values is not None and not checked:
            check_read(found, values)
            checked = True
        return seconds

    return one


def async_way(backend: str, run: Callable[[], Any], values: dict[str, bytes]) -> Way:
    """Time ``await run()`` inside an event loop (starting the loop is not counted)."""

    async def timed() -> tuple[float, Any]:
        start = time.perf_counter()
        found = await run()
        return time.perf_counter() - start, found

    checked = False

    def one(_round: int) -> float:
        nonlocal checked
        _, (seconds, found) = time_once(lambda: anyio.run(timed, backend=backend))
        if not checked:
            check_read(found, values)
            checked = True
        return seconds

    return one


SPLIT = "aiostore get_many, batch split over worker threads"
SYNC_BYTES = "aiostore sync LMDBStore(buffers=False).getitems (zarr 2's call)"
SYNC_BUFFERS = "aiostore sync LMDBStore(buffers=True).getitems (zarr 2's call)"
CYCLE_BYTES = "sync getitems(buffers=False), then every value dropped"
CYCLE_BUFFERS = "sync getitems(buffers=True), then every value dropped"
RAW_BUFFERS = "raw py-lmdb: one txn, buffers=True, get per key, dict of views"
READ_NOTES = {
    READ_BASELINE: "one thread hop, one read transaction, bytes copied inside it",
    "aiostore LMDBStore(buffers=False).get_many (trio)": "same",
    BUFFERS: "one thread hop; read-only views that keep their read snapshot open",
    "aiostore LMDBStore(buffers=True).get_many (trio)": "same",
    SYNC_BYTES: "no event loop, no thread hop",
    SYNC_BUFFERS: "no event loop, no thread hop",
    CYCLE_BYTES: "the copies freed",
    CYCLE_BUFFERS: "the views released, ending their snapshot",
    SPLIT: f"{thread_limit('disk')} transactions in worker threads, under the GIL (buffers=False)",
    "raw py-lmdb: one txn, get per key, dict of values": "the result get_many returns, by hand",
    RAW_BUFFERS: "unsafe floor: views that outlive their txn, owned by nothing",
    "raw py-lmdb: one txn, get per key, values dropped": "lower bound: pre-encoded keys, nothing kept",
    ZARR2: "2 txns + a cursor per key; its buffers outlive their txn",
}


def bench_reads(path: str, keys: list[str], values: dict[str, bytes], repeat: int) -> tuple[list[Row], int]:
    store = aiostore.LMDBStore(path, buffers=False)
    buffered = aiostore.LMDBStore(path, buffers=True)  # shares the environment
    split_store = aiostore.LMDBStore(path, buffers=False)
    split_store._split_batches = True  # type: ignore[misc]
    sync_store = aiostore.sync.SyncStore(store)
    sync_buffered = aiostore.sync.SyncStore(buffered)
    env = store.db
    encoded = [k.encode() for k in keys]

    def raw_dict() -> dict[str, bytes]:
        with env.begin() as txn:
            get = txn.get
            return {k: v for k in keys if (v := get(k.encode())) is not None}

    def raw_buffers() -> dict[str, Any]:
        txn = env.begin(buffers=True)  # left open: its views are used after it
        return dict(zip(keys, map(txn.get, encoded), strict=True))

    def raw_dropped() -> None:
        with env.begin() as txn:
            get = txn.get
            for key in encoded:
                get(key)

    def cycle(sync: Any) -> Callable[[], None]:
        def run() -> None:
            found = sync.getitems(keys, contexts={})
            assert len(found) == len(keys)
            del found

        return run

    def zarr2_way() -> Way:
        zarr2 = zarr2_store_on(env, path)  # fails here, and only this way, without zarr 2
        return sync_way(lambda: zarr2.getitems(keys, contexts={}), values)

    ways: dict[str, Way] = {
        READ_BASELINE: async_way("asyncio", lambda: store.get_many(keys), values),
        "aiostore LMDBStore(buffers=False).get_many (trio)": async_way(
            "trio", lambda: store.get_many(keys), values
        ),
        BUFFERS: async_way("asyncio", lambda: buffered.get_many(keys), values),
        "aiostore LMDBStore(buffers=True).get_many (trio)": async_way(
            "trio", lambda: buffered.get_many(keys), values
        ),
        SYNC_BYTES: sync_way(lambda: sync_store.getitems(keys, contexts={}), values),
        SYNC_BUFFERS: sync_way(lambda: sync_buffered.getitems(keys, contexts={}), values),
        CYCLE_BYTES: sync_way(cycle(sync_store), None),
        CYCLE_BUFFERS: sync_way(cycle(sync_buffered), None),
        SPLIT: async_way("asyncio", lambda: split_store.get_many(keys), values),
        "raw py-lmdb: one txn, get per key, dict of values": sync_way(raw_dict, values),
        RAW_BUFFERS: sync_way(raw_buffers, values),
        "raw py-lmdb: one txn, get per key, values dropped": sync_way(raw_dropped, None),
    }
    try:
        ways[ZARR2] = zarr2_way()
    except ImportError as exc:
        ways[ZARR2] = _failing(exc)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    best = interleaved_best(ways, repeat)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    for s in (store, buffered, split_store):
        anyio.run(s.aclose)
    rows = [
        Row(n, None, f"failed: {b!r}") if isinstance(b, Exception) else Row(n, b, READ_NOTES[n])
        for n, b in best.items()
    ]
    return rows, faults


def _failing(exc: Exception) -> Way:
    def run(_round: int) -> float:
        raise exc

    return run


def targets(rows: list[Row]) -> str:
    """Issue 12's targets, each ``met`` or ``MISSED`` with the ratio measured."""
    seconds = {row.name: row.seconds for row in rows}
    lines = []
    for fast, slow, factor in TARGETS:
        a, b = seconds.get(fast), seconds.get(slow)
        if a is None or b is None:
            lines.append(f"- {fast} vs {slow}: not measured")
            continue
        verdict = "met" if b / a >= factor else "MISSED"
        lines.append(f"- {verdict}: {fast} is {b / a:.2f}x faster than {slow} (target {factor:g}x)")
    return "\n".join(lines)


def fill(path: str, values: dict[str, bytes]) -> None:
    env = lmdb.open(path, map_size=2**40, sync=False, metasync=False)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key.encode(), value)
    env.sync(True)
    env.close()


WRITE_NOTES = {
    WRITE_BASELINE: "one thread hop, one write transaction (all or nothing)",
    "aiostore LMDBStore(writemap=True).set_many": "opt-in: zarr 2's default on Linux (see RESULTS.md)",
    "aiostore sync LMDBStore.setitems (zarr 2's call)": "no event loop, no thread hop",
    "raw py-lmdb: one write txn, put per key": "lower bound (writemap=False)",
    "zarr 2.18 LMDBStore, store[key] = value per key": "no setitems in zarr 2: a txn per key; writemap=True",
}


def bench_writes(root: str, values: dict[str, bytes], repeat: int) -> list[Row]:
    counter = iter(range(10**6))

    def new_path() -> str:
        os.sync()  # the previous round's write-back stays out of this timing
        return os.path.join(root, f"w{next(counter)}.mdb")

    def check(path: str) -> None:
        with aiostore.sync.LMDBStore(path, read_only=True) as store:
            assert len(store) == len(values)

    def aiostore_async(writemap: bool) -> Way:
        def one(_round: int) -> float:
            path = new_path()

            async def main() -> float:
                async with aiostore.LMDBStore(path, writemap=writemap) as store:
                    start = time.perf_counter()
                    await store.set_many(values)
                    return time.perf_counter() - start

            seconds = anyio.run(main)
            check(path)
            return seconds

        return one

    def aiostore_sync(_round: int) -> float:
        path = new_path()
        with aiostore.sync.LMDBStore(path) as store:
            seconds, _ = time_once(lambda: store.setitems(values))
        check(path)
        return seconds

    def raw(_round: int) -> float:
        env = lmdb.open(new_path(), map_size=2**40, sync=False, metasync=False, meminit=False)

        def run() -> None:
            with env.begin(write=True) as txn:
                put = txn.put
                for key, value in values.items():
                    put(key.encode(), value)

        seconds, _ = time_once(run)
        env.close()
        return seconds

    def zarr2(_round: int) -> float:
        path = new_path()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = import_zarr2_storage().LMDBStore(path)

        def run() -> None:
            for key, value in values.items():
                store[key] = value

        seconds, _ = time_once(run)
        store.close()
        check(path)
        return seconds

    ways: dict[str, Way] = {
        WRITE_BASELINE: aiostore_async(writemap=False),
        "aiostore LMDBStore(writemap=True).set_many": aiostore_async(writemap=True),
        "aiostore sync LMDBStore.setitems (zarr 2's call)": aiostore_sync,
        "raw py-lmdb: one write txn, put per key": raw,
        "zarr 2.18 LMDBStore, store[key] = value per key": zarr2,
    }
    best = interleaved_best(ways, repeat)
    return [
        Row(n, None, f"failed: {b!r}") if isinstance(b, Exception) else Row(n, b, WRITE_NOTES[n])
        for n, b in best.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write-count", type=int, default=20_000, help="values in the set_many")
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.setting is None:
        # Each malloc setting needs a process of its own: glibc reads it at start.
        print(machine_description(["lmdb", "zarr", "anyio", "trio"]), flush=True)
        for setting, env in MALLOC_SETTINGS:
            argv = [sys.executable, __file__, "--setting", setting, "--count", str(args.count)]
            argv += ["--size", str(args.size), "--repeat", str(args.repeat)]
            argv += ["--write-count", str(args.write_count)]
            subprocess.run(argv, env=dict(os.environ, **env), check=True)
        return

    keys = make_keys(args.count)
    values = make_values(keys, args.size)
    kib = f"{args.size / 1024:g} KiB"
    print(f"\n### {args.setting}\n")
    with tempfile.TemporaryDirectory(prefix="bench_lmdb_") as root:
        path = os.path.join(root, "read.mdb")
        fill(path, values)
        title = f"LMDB reads: one get_many of {args.count:,} values of {kib}"
        rows, faults = bench_reads(path, keys, values, args.repeat)
        print(format_table(title, rows, READ_BASELINE, "buffers=False"))
        print(f"\nPage faults in these {args.repeat} rounds: {faults:,}.\n")
        print(f"Issue 12's targets (load average {os.getloadavg()[0]:.2f}):\n{targets(rows)}\n", flush=True)
        write_values = {k: values[k] for k in keys[: args.write_count]}
        title = f"LMDB writes: one set_many of {len(write_values):,} values of {kib} into a new database"
        rows = bench_writes(root, write_values, args.repeat)
        print(format_table(title, rows, WRITE_BASELINE, "aiostore"), flush=True)


if __name__ == "__main__":
    main()
