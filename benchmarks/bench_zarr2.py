"""zarr 2 arrays on aiostore's sync DirectoryStore against zarr 2's own DirectoryStore.

The question (issue 12): does zarr 2 read and write its arrays faster through
``aiostore.sync.DirectoryStore`` -- whose ``getitems``/``setitems`` spread a
batch over threads by the adaptive policy of ``aiostore._runtime.fanout`` --
than through ``zarr.storage.DirectoryStore``, which reads and writes key by key?

A 2048 x 2048 float32 array in 32 x 32 chunks (4,096 chunks of 4 KiB), random
values, written whole (``z[:] = data``) into a fresh directory and read whole
(``z[:]``, warm page cache), every read checked. Each round runs the ways in
turn (the order alternating between rounds), each write into a new directory
made and ``os.sync()``-ed outside the timing: file creation on this disk swings
with its state, so the table gives each way's best and the spread of its rounds.

    python benchmarks/bench_zarr2.py --rounds 7 [--compressor blosc]

Needs zarr 2.18 (``nox -s bench`` runs it in the zarr2 environment).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Row, format_table, machine_description

import aiostore.sync

TARGET_READ = 1.5
TARGET_WRITE = 1.3


def _ways() -> dict[str, Callable[[str], Any]]:
    import zarr

    return {
        "aiostore.sync.DirectoryStore": lambda path: aiostore.sync.DirectoryStore(path),
        "zarr 2.18 DirectoryStore": lambda path: zarr.storage.DirectoryStore(path),
    }


def main() -> None:
    import zarr

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds; each way's best counts (default 7)")
    parser.add_argument("--side", type=int, default=2048, help="array side (default 2048)")
    parser.add_argument("--chunk", type=int, default=32, help="chunk side (default 32)")
    parser.add_argument("--compressor", choices=["none", "blosc"], default="none")
    args = parser.parse_args()
    compressor = None if args.compressor == "none" else zarr.storage.default_compressor
    data = np.random.default_rng(0).random((args.side, args.side), dtype="f4")
    ways = _ways()
    times: dict[str, dict[str, list[float]]] = {name: {"write": [], "read": []} for name in ways}
    with tempfile.TemporaryDirectory(dir=os.environ.get("AIOSTORE_BENCH_DIR")) as scratch:
        for round_ in range(args.rounds):
            order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
            for name in order:
                path = os.path.join(scratch, f"{name.split()[0]}-{round_}")
                os.makedirs(path)
                os.sync()
                store = ways[name](path)
                z = zarr.open_array(
                    store,
                    mode="w",
                    shape=data.shape,
                    chunks=(args.chunk, args.chunk),
                    dtype="f4",
                    compressor=compressor,
                )
                start = time.perf_counter()
                z[:] = data
                times[name]["write"].append(time.perf_counter() - start)
                z = zarr.open_array(ways[name](path), mode="r")
                start = time.perf_counter()
                back = z[:]
                times[name]["read"].append(time.perf_counter() - start)
                if not np.array_equal(back, data):
                    raise AssertionError(f"{name}: the array read back differs")
                shutil.rmtree(path)
    print(machine_description(["zarr", "numcodecs", "numpy", "anyio"]))
    print(
        f"\nA {args.side} x {args.side} float32 array, chunks of {args.chunk} x {args.chunk} "
        f"({(args.side // args.chunk) ** 2:,} chunks), compressor {args.compressor}; "
        f"best of {args.rounds} interleaved rounds.\n"
    )
    ours, theirs = "aiostore.sync.DirectoryStore", "zarr 2.18 DirectoryStore"
    for op, title in (("write", "z[:] = data (new directory)"), ("read", "z[:] (warm page cache)")):
        rows = []
        for name in ways:
            series = times[name][op]
            spread = max(series) / min(series) - 1
            rows.append(
                Row(name, min(series), f"rounds {min(series):.3f}-{max(series):.3f} s (spread {spread:.0%})")
            )
        print(format_table(f"zarr 2 array {title}", rows, ours))
        print()
    for op, target in (("read", TARGET_READ), ("write", TARGET_WRITE)):
        ratio = min(times[theirs][op]) / min(times[ours][op])
        medians = (
            sorted(times[theirs][op])[len(times[theirs][op]) // 2]
            / sorted(times[ours][op])[len(times[ours][op]) // 2]
        )
        verdict = "met" if ratio >= target else "MISSED"
        print(
            f"- {op}s: aiostore {ratio:.2f}x faster than zarr 2's DirectoryStore (best of rounds; "
            f"medians: {medians:.2f}x), target at least {target}x: {verdict}"
        )


if __name__ == "__main__":
    main()
