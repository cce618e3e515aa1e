"""aiostore's ZipStore against zarr 2.18's ZipStore: batch reads and batch writes.

Issue 4's Zip benchmark. In one run, 10,000 values of 16 KiB (``--count``,
``--size``) under zarr-2-style chunk keys, every way on the same keys and values:

* reads, warm page cache: one Zip file is written once; each way opens it
  (``mode="r"``, untimed) and reads every key in one batch. ``zarr 2.18
  ZipStore.getitems`` reads key by key through ``ZipFile.open`` under one lock.
* writes: each measurement writes every key into a new file (the previous one
  removed outside the timing) and closes the store: writing the central
  directory is part of the job. zarr 2.18's ZipStore has no ``setitems``; zarr 2
  then writes chunk by chunk with ``store[key] = value``, as measured here.

Async ways are timed inside their event loop (starting the loop is not counted).
The ways take turns, ``--repeat`` rounds, best round counts (the machine may be
shared). Every way's result is checked against the data afterwards (untimed).

Run::

    python benchmarks/bench_zip.py [--count N] [--size BYTES] [--repeat R] [--deflate]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import tempfile
import time
import zipfile
from collections.abc import Callable
from typing import Any

import anyio
from _common import Row, format_table, interleaved_best, machine_description

import aiostore
import aiostore.sync

GET_BASELINE = "aiostore ZipStore.get_many (asyncio)"
SET_BASELINE = "aiostore ZipStore.set_many (asyncio)"
NOTES = {
    "aiostore ZipStore.get per key, gathered (asyncio)": "zarr 3's access pattern: coalesced into batches",
    "aiostore sync ZipStore.getitems": "caller's thread, no event loop",
    "aiostore sync ZipStore.setitems": "caller's thread, no event loop",
    "zarr 2.18 ZipStore[key] = value": "zarr 2.18's ZipStore has no setitems",
}


def zarr2_zipstore() -> Any:
    """zarr 2's ZipStore class, or None when zarr 2 is not installed."""
    try:
        import zarr
    except ImportError:
        return None
    return zarr.ZipStore if zarr.__version__.startswith("2.") else None


#: A way to measure: ``(backend, work)``. ``backend`` None: ``work()`` is plain
#: blocking code; else ``work()`` returns a coroutine run in that event loop.
Way = tuple[str | None, Callable[[], Any]]


def measure(way: Way) -> tuple[float, Any]:
    """Seconds one call of the way takes, and what it returned. Async ways are timed
    inside their event loop, so starting the loop is not counted."""
    backend, work = way
    gc.collect()
    if backend is None:
        start = time.perf_counter()
        result = work()
        return time.perf_counter() - start, result

    async def run() -> tuple[float, Any]:
        start = time.perf_counter()
        result = await work()
        return time.perf_counter() - start, result

    return anyio.run(run, backend=backend)


def read_ways(path: str, keys: list[str]) -> dict[str, Way]:
    """name -> read every key once (stores opened here, outside the timing)."""
    ours = aiostore.ZipStore(path, mode="r")
    ours_sync = aiostore.sync.ZipStore(path, mode="r")

    async def gathered() -> dict[str, bytes]:
        found: dict[str, bytes] = {}

        async def get_one(key: str) -> None:
            found[key] = await ours.get(key)

        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(get_one, key)
        return found

    ways: dict[str, Way] = {
        "aiostore ZipStore.get_many (asyncio)": ("asyncio", lambda: ours.get_many(keys)),
        "aiostore ZipStore.get_many (trio)": ("trio", lambda: ours.get_many(keys)),
        "aiostore ZipStore.get per key, gathered (asyncio)": ("asyncio", gathered),
        "aiostore sync ZipStore.getitems": (None, lambda: ours_sync.getitems(keys, contexts={})),
    }
    theirs_cls = zarr2_zipstore()
    if theirs_cls is not None:
        theirs = theirs_cls(path, mode="r")
        ways["zarr 2.18 ZipStore.getitems"] = (None, lambda: theirs.getitems(keys, contexts={}))
    return ways


def write_ways(items: dict[str, bytes], compression: int, target: str) -> dict[str, Way]:
    """name -> write every item into a new file at ``target`` and close it."""

    async def async_write() -> None:
        async with aiostore.ZipStore(target, mode="w", compression=compression) as store:
            await store.set_many(items)

    def sync_write() -> None:
        with aiostore.sync.ZipStore(target, mode="w", compression=compression) as store:
            store.setitems(items)

    ways: dict[str, Way] = {
        "aiostore ZipStore.set_many (asyncio)": ("asyncio", async_write),
        "aiostore ZipStore.set_many (trio)": ("trio", async_write),
        "aiostore sync ZipStore.setitems": (None, sync_write),
    }
    theirs_cls = zarr2_zipstore()
    if theirs_cls is not None:

        def zarr2_write() -> None:
            with theirs_cls(target, mode="w", compression=compression) as store:
                for key, value in items.items():
                    store[key] = value

        ways["zarr 2.18 ZipStore[key] = value"] = (None, zarr2_write)
    return ways


def written_correctly(path: str, items: dict[str, bytes]) -> bool:
    with zipfile.ZipFile(path) as zf:
        return zf.testzip() is None and {i.filename: zf.read(i) for i in zf.infolist()} == items


def rows_of(best: dict[str, float | Exception]) -> list[Row]:
    rows = []
    for name, seconds in best.items():
        if isinstance(seconds, Exception):
            rows.append(Row(name, None, f"failed: {seconds!r}"))
        else:
            rows.append(Row(name, seconds, NOTES.get(name, "")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--deflate", action="store_true", help="ZIP_DEFLATED (values half zeros)")
    args = parser.parse_args()

    compression = zipfile.ZIP_DEFLATED if args.deflate else zipfile.ZIP_STORED
    keys = [f"arr/{i // 100}.{i % 100}" for i in range(args.count)]
    rng = random.Random(4)
    half = args.size // 2
    values = [
        rng.randbytes(half) + bytes(args.size - half) if args.deflate else rng.randbytes(args.size)
        for _ in keys
    ]
    items = dict(zip(keys, values, strict=True))
    method = "ZIP_DEFLATED" if args.deflate else "ZIP_STORED"
    what = f"{args.count:,} values of {args.size / 1024:g} KiB, {method}, best of {args.repeat}"

    print(machine_description(["zarr", "numcodecs", "anyio", "trio"]))
    print()
    missing = (
        [] if zarr2_zipstore() else [Row("zarr 2.18 ZipStore", None, "skipped: zarr 2 is not installed")]
    )
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as base:
        path = os.path.join(base, "read.zip")
        with aiostore.sync.ZipStore(path, mode="w", compression=compression) as store:
            store.setitems(items)

        reads = read_ways(path, keys)
        best = interleaved_best(
            {name: lambda _, way=way: measure(way)[0] for name, way in reads.items()}, args.repeat
        )
        for name, way in reads.items():  # untimed: every way read the right values
            if not isinstance(best[name], Exception) and measure(way)[1] != items:
                best[name] = AssertionError("read wrong values")
        print(format_table(f"Zip reads: {what}", rows_of(best) + missing, GET_BASELINE))
        print()

        target = os.path.join(base, "write.zip")

        def write_once(way: Way) -> float:
            if os.path.exists(target):
                os.remove(target)
            seconds = measure(way)[0]
            if not written_correctly(target, items):  # untimed
                raise AssertionError("wrote a wrong file")
            return seconds

        writes = write_ways(items, compression, target)
        best = interleaved_best(
            {name: lambda _, way=way: write_once(way) for name, way in writes.items()}, args.repeat
        )
        print(format_table(f"Zip writes: {what}", rows_of(best) + missing, SET_BASELINE))


if __name__ == "__main__":
    main()
