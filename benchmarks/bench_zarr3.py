"""zarr 3 over aiostore's DirectoryStore (through ZarrStore) against zarr 3's own LocalStore.

Issue 6's benchmark. In one run: a zarr 3 array of 4,096 small chunks (a 1024 x 1024
float32 array in 16 x 16 chunks of 1 KiB; ``--side``/``--chunk``), no compression, so
the time is the stores' and zarr's, not a codec's. Each way writes the whole array into
a freshly created array in an empty directory (emptied and ``os.sync()``-ed outside the
timing), then reads the whole array back with a warm page cache; best of ``--repeat``
rounds, the ways interleaved within each round, and every read checked against the data.

Rows besides the two under test:

* zarr 3's MemoryStore does no I/O at all: its time is zarr's own per-chunk work, a
  floor no store can go below (the read target of 3x is measured against it too).
* "anyio hops": ZarrStore with its asyncio thread hops switched off, so every hop is
  ``anyio.to_thread.run_sync`` -- on zarr's own event loop (started with
  ``run_forever``) anyio scans every task in the process and starts a new thread on
  each hop; this row is why ZarrStore does not use it (see
  ``aiostore._runtime.offload.executor_hops``).

A third table times the stores alone: 4,096 concurrent ``get`` calls through zarr's
Store API (``asyncio.gather``) on zarr's loop, no array machinery -- what aiostore's
get-coalescing does by itself. The last tables read half of every shard of a sharded array
(``--shard``; 64 inner chunks a shard by default), so zarr's sharding codec reads each shard's
index and inner chunks with byte-range gets: once with zarr's default merging of adjacent ranges,
once with it off (one ranged get per inner chunk, the case aiostore's ranged-get coalescing
batches); ``--only-sharded`` runs just those. ``--fused`` repeats the array runs with zarr's opt-in
FusedCodecPipeline, which uses the synchronous store protocol (``get_sync`` ...).

zarr >= 3.2 needs Python >= 3.12. Under an interpreter without zarr 3 the script re-runs
itself under ``$AIOSTORE_BENCH_ZARR3_PYTHON`` if that is set, and otherwise says it
skipped.

Run::

    python benchmarks/bench_zarr3.py [--side N] [--chunk N] [--shard N] [--repeat R]
                                     [--fused] [--only-sharded]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from _common import Row, format_table, fresh_dir, interleaved_best, machine_description, time_once

LOCAL = "zarr 3 LocalStore"
AIOSTORE = "aiostore ZarrStore(DirectoryStore)"
ANYIO = "aiostore ZarrStore(DirectoryStore), anyio hops"
MEMORY = "zarr 3 MemoryStore (no I/O: zarr's floor)"
FUSED = "zarr.core.codec_pipeline.FusedCodecPipeline"


def _have_zarr3() -> bool:
    try:
        import zarr
    except ImportError:
        return False
    return int(zarr.__version__.split(".")[0]) >= 3


@contextlib.contextmanager
def _anyio_hops() -> Iterator[None]:
    """ZarrStore with its asyncio executor hops switched off."""
    import aiostore.zarr3._store as adapter

    original = adapter.fast_hops
    adapter.fast_hops = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        adapter.fast_hops = original


class Way:
    """One store to time: how to make it, where its files are, how to run it."""

    def __init__(self, make: Callable[[], Any], directory: str | None, anyio_hops: bool = False) -> None:
        self.make = make
        self.directory = directory
        self.anyio_hops = anyio_hops

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with _anyio_hops() if self.anyio_hops else contextlib.nullcontext():
            yield


def _ways(root: str, with_anyio: bool) -> dict[str, Way]:
    import zarr.storage

    from aiostore.stores.directory import DirectoryStore
    from aiostore.zarr3 import ZarrStore

    memory: dict[str, Any] = {}
    ways = {
        LOCAL: Way(lambda: zarr.storage.LocalStore(f"{root}/local"), f"{root}/local"),
        AIOSTORE: Way(lambda: ZarrStore(DirectoryStore(f"{root}/aiostore")), f"{root}/aiostore"),
        ANYIO: Way(lambda: ZarrStore(DirectoryStore(f"{root}/anyio")), f"{root}/anyio", anyio_hops=True),
        MEMORY: Way(lambda: zarr.storage.MemoryStore(memory), None),
    }
    if not with_anyio:
        del ways[ANYIO]
    return ways


def array_tables(
    root: str, side: int, chunk: int, repeat: int, config_name: str, config: dict[str, Any]
) -> list[str]:
    import numpy as np
    import zarr

    data = np.random.default_rng(0).random((side, side), dtype="float32")
    ways = _ways(root, with_anyio=not config)

    def writer(way: Way) -> Callable[[int], float]:
        def create() -> None:
            if way.directory is not None:
                fresh_dir(way.directory)
            zarr.create_array(
                way.make(),
                shape=data.shape,
                chunks=(chunk, chunk),
                dtype=data.dtype,
                compressors=None,
                overwrite=True,
            )

        def write() -> None:
            zarr.open_array(way.make(), mode="r+")[:] = data

        def run(_round: int) -> float:
            with way.running():
                return time_once(write, before=create)[0]

        return run

    def reader(name: str, way: Way) -> Callable[[int], float]:
        def run(_round: int) -> float:
            with way.running():
                seconds, out = time_once(lambda: zarr.open_array(way.make(), mode="r")[:])
            if not np.array_equal(out, data):
                raise AssertionError(f"{name} read back wrong data")
            return seconds

        return run

    with zarr.config.set(config):
        writes = interleaved_best({name: writer(way) for name, way in ways.items()}, repeat)
        reads = interleaved_best({name: reader(name, way) for name, way in ways.items()}, repeat)
    what = f"{(side // chunk) ** 2} chunks of {chunk * chunk * 4} B, {config_name}"
    tables = [
        format_table(f"zarr 3, full write: {what}", _rows(writes), baseline=AIOSTORE),
        format_table(f"zarr 3, full read: {what}", _rows(reads), baseline=AIOSTORE),
    ]
    read_ratio = _ratio(reads, LOCAL, AIOSTORE)
    floor_ratio = _ratio(reads, LOCAL, MEMORY)
    tables.append(
        f"Read: ZarrStore(DirectoryStore) is {read_ratio} faster than LocalStore; "
        f"zarr's own floor (MemoryStore) is {floor_ratio} faster than LocalStore."
    )
    return tables


def store_table(root: str, side: int, chunk: int, repeat: int) -> str:
    """4,096 concurrent gets through zarr's Store API, on zarr's loop; no arrays."""
    import zarr.storage
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    ways = _ways(root, with_anyio=True)
    n = side // chunk
    keys = [f"c/{i}/{j}" for i in range(n) for j in range(n)]
    prototype = default_buffer_prototype()
    payload = prototype.buffer.from_bytes(os.urandom(chunk * chunk * 4))
    for way in ways.values():
        if way.directory is not None:
            fresh_dir(way.directory)
        store = way.make()
        sync(store._set_many([(key, payload) for key in keys]))

    async def get_all(store: zarr.abc.store.Store) -> None:
        values = await asyncio.gather(*(store.get(key, prototype) for key in keys))
        if any(v is None or len(v) != len(payload) for v in values):
            raise AssertionError(f"{store!r} returned wrong values")

    def getter(way: Way) -> Callable[[int], float]:
        def run(_round: int) -> float:
            store = way.make()
            with way.running():
                return time_once(lambda: sync(get_all(store)))[0]

        return run

    gets = interleaved_best({name: getter(way) for name, way in ways.items()}, repeat)
    return (
        format_table(
            f"zarr 3 Store API alone: {len(keys)} concurrent get calls (asyncio.gather) on zarr's loop",
            _rows(gets),
            baseline=AIOSTORE,
        )
        + f"\n\nGets: ZarrStore(DirectoryStore) is {_ratio(gets, LOCAL, AIOSTORE)} faster than LocalStore."
    )


def sharded_table(root: str, side: int, chunk: int, shard: int, repeat: int) -> list[str]:
    """Partial-shard reads of a sharded array: every inner chunk read with a byte-range get."""
    import numpy as np
    import zarr

    data = np.random.default_rng(1).random((side, side), dtype="float32")
    ways = _ways(root, with_anyio=False)
    for way in ways.values():
        if way.directory is not None:
            fresh_dir(way.directory)
        array = zarr.create_array(
            way.make(),
            shape=data.shape,
            chunks=(chunk, chunk),
            shards=(shard, shard),
            dtype=data.dtype,
            compressors=None,
            overwrite=True,
        )
        array[:] = data
    # The first half of every shard's rows: never a whole shard, so zarr reads each
    # shard's index (a suffix range) and then its inner chunks by byte range.
    rows = np.array([r for r in range(side) if r % shard < shard // 2])
    expected = data[rows, :]

    def reader(name: str, way: Way) -> Callable[[int], float]:
        def run(_round: int) -> float:
            with way.running():
                seconds, out = time_once(lambda: zarr.open_array(way.make(), mode="r").oindex[rows, :])
            if not np.array_equal(out, expected):
                raise AssertionError(f"{name} read back wrong data")
            return seconds

        return run

    shards = (side // shard) ** 2
    inner = shards * (shard // chunk) ** 2 // 2
    tables = []
    configs: list[tuple[str, dict[str, Any]]] = [
        ("zarr merges adjacent ranges (default)", {}),
        ("merging off: one ranged get per inner chunk", {"array.sharding_coalesce_max_bytes": 0}),
    ]
    for config_name, config in configs:
        with zarr.config.set(config):
            reads = interleaved_best({name: reader(name, way) for name, way in ways.items()}, repeat)
        tables.append(
            format_table(
                f"zarr 3, sharded partial read: half of each of {shards} shards ({inner} inner chunks "
                f"of {chunk * chunk * 4} B), {config_name}",
                _rows(reads),
                baseline=AIOSTORE,
            )
            + f"\n\nSharded read: ZarrStore(DirectoryStore) is {_ratio(reads, LOCAL, AIOSTORE)} "
            "faster than LocalStore."
        )
    return tables


def _rows(best: dict[str, float | Exception]) -> list[Row]:
    return [
        Row(name, None, f"failed: {seconds!r}") if isinstance(seconds, Exception) else Row(name, seconds)
        for name, seconds in best.items()
    ]


def _ratio(best: dict[str, float | Exception], slow: str, fast: str) -> str:
    a, b = best.get(slow), best.get(fast)
    if isinstance(a, float) and isinstance(b, float):
        return f"{a / b:.2f}x"
    return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--side", type=int, default=1024, help="the array is side x side float32")
    parser.add_argument("--chunk", type=int, default=16, help="chunks are chunk x chunk")
    parser.add_argument("--shard", type=int, default=128, help="shards are shard x shard (sharded table)")
    parser.add_argument("--only-sharded", action="store_true", help="run the sharded-read tables only")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fused", action="store_true", help="also run with FusedCodecPipeline")
    args = parser.parse_args()
    if not _have_zarr3():
        other = os.environ.get("AIOSTORE_BENCH_ZARR3_PYTHON")
        if other:
            sys.exit(subprocess.call([other, *sys.argv]))
        print("bench_zarr3: skipped (zarr 3 is not installed; set AIOSTORE_BENCH_ZARR3_PYTHON)")
        return
    print(machine_description(["zarr", "numpy", "anyio"]))
    print()
    configs: list[tuple[str, dict[str, Any]]] = [("zarr's default pipeline", {})]
    if args.fused:
        configs.append(("opt-in FusedCodecPipeline", {"codec_pipeline.path": FUSED}))
    with tempfile.TemporaryDirectory(prefix="bench-zarr3-") as root:
        tables = []
        if not args.only_sharded:
            for config_name, config in configs:
                tables += array_tables(root, args.side, args.chunk, args.repeat, config_name, config)
            tables.append(store_table(root, args.side, args.chunk, args.repeat))
        tables += sharded_table(root, args.side, args.chunk, args.shard, args.repeat)
    for table in tables:
        print(table)
        print()


if __name__ == "__main__":
    main()
