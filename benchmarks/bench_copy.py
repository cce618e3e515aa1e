"""aiostore.copy_store against zarr 2.18's zarr.copy_store: time, and the copy's own memory.

Issue 13's benchmark. 100,000 small keys (``--count``; 100-300 random bytes, as
compressed chunks of a sparse or small-chunked array are) under zarr 2 chunk keys:

* **directory -> LMDB**: a DirectoryStore (written once, page cache warm) copied into a
  new LMDB database; zarr 2: ``zarr.copy_store(zarr.DirectoryStore, zarr.LMDBStore)``.
* **LMDB -> zip**: that LMDB database copied into a new Zip file, closed (the central
  directory is part of the job); zarr 2: ``zarr.LMDBStore`` -> ``zarr.ZipStore``.

aiostore runs ``await aiostore.copy_store(src, dst)`` (asyncio) on aiostore's stores with
their defaults (LMDB ``buffers=True``, as zarr 2's). Each copy is timed to its destination
closed, as durable on both sides: aiostore's LMDBStore syncs the database to disk when it
closes, so zarr 2's LMDB destination is flushed (``env.sync``) before it closes. The ways
take turns, ``--repeat`` rounds; the median round counts, and the ratio is zarr's time over
aiostore's.

**Memory**: each copy runs again in a fresh process under ``tracemalloc``, at 10k, 100k
and 1M keys (``--memory-counts``): the peak of the Python heap the copy allocated
(values, keys, lists), not the pages of the LMDB map or the page cache, which are the
operating system's. aiostore's stays flat (the listing is streamed, the bytes in flight
are bounded by ``max_memory``); zarr 2's holds every key (``sorted(source.keys())``).

Run::

    python benchmarks/bench_copy.py [--count N] [--repeat R] [--memory-counts 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import anyio
from _common import machine_description

import aiostore
import aiostore.sync


def make_source(path: str, count: int) -> None:
    """A directory store of ``count`` keys of 100-300 random bytes, and a group."""
    store = aiostore.sync.DirectoryStore(path)
    store[".zgroup"] = b'{"zarr_format": 2}'
    batch: dict[str, bytes] = {}
    rng = os.urandom(count * 3 + 300)
    for i in range(count):
        batch[f"data/{i // 1000}.{i % 1000}"] = rng[i * 3 : i * 3 + 100 + (i * 37) % 200]
        if len(batch) == 10_000:
            store.setitems(batch)
            batch = {}
    store.setitems(batch)


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def traced_now() -> int:
    """The Python heap traced now (0 when tracemalloc is off)."""
    import tracemalloc

    return tracemalloc.get_traced_memory()[0]


#: The heap traced when a copy had finished, before its destination was closed: what
#: the stores hold (a Zip file's index of entries, which its central directory needs).
HELD: list[int] = []


def aiostore_copy(kind: str, src: str, dst: str) -> float:
    async def run() -> float:
        source = aiostore.DirectoryStore(src) if kind == "dir-lmdb" else aiostore.LMDBStore(src)
        dest = aiostore.LMDBStore(dst) if kind == "dir-lmdb" else aiostore.ZipStore(dst, mode="w")
        start = time.perf_counter()
        await aiostore.copy_store(source, dest)
        HELD.append(traced_now())
        await dest.aclose()
        seconds = time.perf_counter() - start
        await source.aclose()
        return seconds

    return anyio.run(run)


def zarr_copy(kind: str, src: str, dst: str) -> float:
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # zarr 2.18: LMDBStore is deprecated
        source = zarr.DirectoryStore(src) if kind == "dir-lmdb" else zarr.LMDBStore(src)
        dest = zarr.LMDBStore(dst) if kind == "dir-lmdb" else zarr.ZipStore(dst, mode="w")
    start = time.perf_counter()
    zarr.copy_store(source, dest)
    HELD.append(traced_now())
    if kind == "dir-lmdb":
        dest.flush()  # env.sync(): aiostore's LMDBStore syncs at close, zarr 2's only here
    dest.close()
    seconds = time.perf_counter() - start
    source.close()
    return seconds


WAYS: dict[str, Callable[[str, str, str], float]] = {"aiostore": aiostore_copy, "zarr": zarr_copy}


def child(way: str, kind: str, src: str, dst: str) -> None:
    """One copy under tracemalloc, in this (fresh) process: prints seconds and peak bytes."""
    import tracemalloc

    if way == "zarr":
        import zarr  # noqa: F401  # imported before tracing, as aiostore is
    remove(dst)
    tracemalloc.start()
    seconds = WAYS[way](kind, src, dst)
    _, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"seconds": seconds, "peak": peak, "held": HELD[-1]}))


def measure_memory(way: str, kind: str, src: str, dst: str) -> tuple[int, int]:
    """(peak, held by the stores at the end) of one copy in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", way, kind, src, dst], capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return int(found["peak"]), int(found["held"])


def zarr2_available() -> bool:
    try:
        import zarr
    except ImportError:
        return False
    return zarr.__version__.startswith("2.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-counts", default="10000,100000,1000000")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    ways = ["aiostore", "zarr"] if zarr2_available() else ["aiostore"]
    print(machine_description(["zarr", "lmdb", "aiostore"]))
    with tempfile.TemporaryDirectory(dir=os.environ.get("AIOSTORE_BENCH_DIR")) as tmp:
        src = os.path.join(tmp, "source.zarr")
        make_source(src, args.count)
        lmdb_src = os.path.join(tmp, "source.mdb")
        aiostore_copy("dir-lmdb", src, lmdb_src)  # the LMDB -> zip source, written once
        times: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.repeat):
            for kind, source in (("dir-lmdb", src), ("lmdb-zip", lmdb_src)):
                order = ways if round_ % 2 == 0 else ways[::-1]
                for way in order:
                    dst = os.path.join(tmp, f"out-{way}.{'mdb' if kind == 'dir-lmdb' else 'zip'}")
                    remove(dst)
                    times.setdefault((kind, way), []).append(WAYS[way](kind, source, dst))
                    remove(dst)
        print(f"\n**Copy {args.count:,} keys of 100-300 bytes (median of {args.repeat} rounds)**\n")
        print("| copy | aiostore.copy_store | zarr 2.18 zarr.copy_store | zarr / aiostore |")
        print("| --- | ---: | ---: | ---: |")
        for kind, label in (("dir-lmdb", "directory -> LMDB"), ("lmdb-zip", "LMDB -> zip")):
            ours = statistics.median(times[(kind, "aiostore")])
            theirs = statistics.median(times[(kind, "zarr")]) if "zarr" in ways else None
            ratio = f"{theirs / ours:.2f}x" if theirs else "n/a"
            shown = f"{theirs:.3f} s" if theirs else "no zarr 2"
            print(f"| {label} | {ours:.3f} s | {shown} | {ratio} |")

        counts = [int(c) for c in args.memory_counts.split(",") if c]
        print("\n**Peak memory of the copy (tracemalloc: the Python heap, not the LMDB map)**\n")
        print("peak: the most the copy's process held; held: what the stores still held when the")
        print("copy was done (a Zip file's entry index, which its central directory needs)\n")
        print("| keys | copy | " + " | ".join(f"{w} peak | {w} held" for w in ways) + " |")
        print("| ---: | --- | " + " | ".join("---: | ---:" for _ in ways) + " |")
        for count in counts:
            msrc = os.path.join(tmp, f"m{count}.zarr")
            make_source(msrc, count)
            mlmdb = os.path.join(tmp, f"m{count}.mdb")
            aiostore_copy("dir-lmdb", msrc, mlmdb)
            for kind, source in (("dir-lmdb", msrc), ("lmdb-zip", mlmdb)):
                dst = os.path.join(tmp, f"mem.{'mdb' if kind == 'dir-lmdb' else 'zip'}")
                cells = []
                for way in ways:
                    peak, held = measure_memory(way, kind, source, dst)
                    cells.append(f"{peak / 2**20:.1f} MiB | {held / 2**20:.1f} MiB")
                    remove(dst)
                print(f"| {count:,} | {kind} | " + " | ".join(cells) + " |")
            remove(msrc)
            remove(mlmdb)


if __name__ == "__main__":
    main()
