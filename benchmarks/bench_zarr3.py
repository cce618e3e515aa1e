"""zarr 3 over aiostore's DirectoryStore (through ZarrStore) against zarr 3's own LocalStore.

Issue 6's benchmark. In one run: a zarr 3 array of 4,096 small chunks (a 1024 x 1024
float32 array in 16 x 16 chunks of 1 KiB; ``--side``/``--chunk``), no compression, so
the time is the stores' and zarr's, not a codec's. Each way writes the whole array into
a freshly created array in an empty directory (emptied and ``os.sync()``-ed outside the
timing), then reads the whole array back with a warm page cache; best of ``--repeat``
rounds, the ways interleaved within each round, and every read checked against the data.

Rows besides the two under test:

* zarr 3's MemoryStore does no I/O at all: its time is zarr's own per-chunk work, a
  floor no store can go below (issue 12's read target is measured against it).
* "no inline reads" (reads only): ZarrStore with every read sent to the backend's threads,
  coalesced into batches -- what reading cheap values in the event loop's thread saves
  (``ZarrStore.inline_read_seconds``).
* "through anyio": that, with ZarrStore's asyncio thread hops switched off too, so every
  hop is ``anyio.to_thread.run_sync`` -- on zarr's own event loop (started with
  ``run_forever``) anyio scans every task in the process and starts a new thread on
  each hop; this row is why ZarrStore does not use it (see
  ``aiostore._runtime.offload.executor_hops``).

A third table times the stores alone: 4,096 concurrent ``get`` calls through zarr's
Store API (``asyncio.gather``) on zarr's loop, no array machinery -- what aiostore's
get-coalescing does by itself. The last tables read half of every shard of a sharded array
(``--shard``; 64 inner chunks a shard by default), so zarr's sharding codec reads each shard's
index and inner chunks with byte-range gets: once with zarr's default merging of adjacent ranges,
once with it off (one ranged get per inner chunk, the case aiostore's ranged-get coalescing
batches); ``--only-sharded`` runs just those. The array runs are repeated with zarr's opt-in
FusedCodecPipeline, which uses the synchronous store protocol (``get_sync`` ...), unless
``--no-fused``.

Last, the targets of issue 12 ("a leaner zarr 3 path"), each with ``met`` or ``MISSED``:

* full read, zarr's default pipeline: ZarrStore(DirectoryStore) at most 1.25x zarr's own
  no-I/O floor (MemoryStore); the same ratio with the FusedCodecPipeline is shown too;
* full write, default and fused pipelines: ZarrStore(DirectoryStore) no slower than LocalStore.

The read ratio is of the best rounds. Writes are file creations: on a shared machine their
times swing with the other tenants' disk work, and the way that runs first in a round is
often the slower one. So the ways run in an order rotated from round to round (8 write rounds
by default: every order equally often for up to four ways), and a write is judged on the
ratio of its median round to LocalStore's (the ratio of the best rounds is shown beside it).

zarr >= 3.2 needs Python >= 3.12. Under an interpreter without zarr 3 the script re-runs
itself under ``$AIOSTORE_BENCH_ZARR3_PYTHON`` if that is set, and otherwise says it
skipped.

Run::

    python benchmarks/bench_zarr3.py [--side N] [--chunk N] [--shard N] [--repeat R]
                                     [--write-repeat R] [--no-fused] [--only-sharded]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from _common import Row, format_table, fresh_dir, interleaved_best, machine_description, time_once

LOCAL = "zarr 3 LocalStore"
AIOSTORE = "aiostore ZarrStore(DirectoryStore)"
HOPS = "aiostore ZarrStore(DirectoryStore), no inline reads: every read a thread hop"
ANYIO = "aiostore ZarrStore(DirectoryStore), thread hops through anyio (no inline reads)"
MEMORY = "zarr 3 MemoryStore (no I/O: zarr's floor)"
FUSED = "zarr.core.codec_pipeline.FusedCodecPipeline"
#: Issue 12's limits: a full read through ZarrStore(DirectoryStore) over zarr's
#: MemoryStore floor, a full write over LocalStore.
READ_VS_FLOOR = 1.25
WRITE_VS_LOCAL = 1.0


@dataclass
class Timings:
    """One config's array timings: the best of each way, and every round's times."""

    writes: dict[str, float | Exception] = field(default_factory=dict)
    reads: dict[str, float | Exception] = field(default_factory=dict)
    write_rounds: dict[str, list[float]] = field(default_factory=dict)


def _have_zarr3() -> bool:
    try:
        import zarr
    except ImportError:
        return False
    return int(zarr.__version__.split(".")[0]) >= 3


@contextlib.contextmanager
def _patched(anyio_hops: bool, inline_reads: bool) -> Iterator[None]:
    """ZarrStore with its asyncio executor hops switched off (``anyio_hops``), or with
    every read a thread hop (not ``inline_reads``): for adapters made in the block."""
    import aiostore.zarr3._batching as batching
    import aiostore.zarr3._store as adapter

    originals = adapter.fast_hops, batching.fast_hops, adapter.ZarrStore.inline_read_seconds
    if anyio_hops:
        adapter.fast_hops = batching.fast_hops = contextlib.nullcontext  # type: ignore[assignment]
    if not inline_reads:
        adapter.ZarrStore.inline_read_seconds = 0
    try:
        yield
    finally:
        adapter.fast_hops, batching.fast_hops, adapter.ZarrStore.inline_read_seconds = originals


class Way:
    """One store to time: how to make it, where its files are, how to run it."""

    def __init__(
        self,
        make: Callable[[], Any],
        directory: str | None,
        anyio_hops: bool = False,
        inline_reads: bool = True,
    ) -> None:
        self.make = make
        self.directory = directory
        self.anyio_hops = anyio_hops
        self.inline_reads = inline_reads

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with _patched(self.anyio_hops, self.inline_reads):
            yield


def _ways(root: str, with_variants: bool) -> dict[str, Way]:
    import zarr.storage

    from aiostore.stores.directory import DirectoryStore
    from aiostore.zarr3 import ZarrStore

    def directory(name: str) -> Callable[[], Any]:
        return lambda: ZarrStore(DirectoryStore(f"{root}/{name}"))

    memory: dict[str, Any] = {}
    ways = {
        LOCAL: Way(lambda: zarr.storage.LocalStore(f"{root}/local"), f"{root}/local"),
        AIOSTORE: Way(directory("aiostore"), f"{root}/aiostore"),
        # reads what the AIOSTORE way wrote (it only reads: see array_tables)
        HOPS: Way(directory("aiostore"), f"{root}/aiostore", inline_reads=False),
        ANYIO: Way(directory("anyio"), f"{root}/anyio", anyio_hops=True, inline_reads=False),
        MEMORY: Way(lambda: zarr.storage.MemoryStore(memory), None),
    }
    if not with_variants:
        del ways[ANYIO], ways[HOPS]
    return ways


def rotated_rounds(
    runs: dict[str, Callable[[int], float]], repeat: int, rounds: dict[str, list[float]]
) -> dict[str, float | Exception]:
    """:func:`_common.interleaved_best`, with the order of the ways rotated from round
    to round (a write leaves work for the file system -- journal commits, freed
    blocks -- that the way right after it would always pay for), and every round's
    times kept in ``rounds``.

    >>> kept = {}
    >>> rotated_rounds({"a": lambda r: 2.0 - r, "b": lambda r: 1 / 0}, 2, kept), kept
    ({'a': 1.0, 'b': ZeroDivisionError('division by zero')}, {'a': [2.0, 1.0], 'b': []})
    """
    best: dict[str, float | Exception] = dict.fromkeys(runs, float("inf"))
    names = list(runs)
    for name in names:
        rounds[name] = []
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if isinstance(best[name], Exception):
                continue
            try:
                seconds = runs[name](round_)
            except Exception as exc:
                best[name] = exc
                continue
            rounds[name].append(seconds)
            best[name] = min(best[name], seconds)  # type: ignore[type-var]
    return best


def array_tables(
    root: str,
    side: int,
    chunk: int,
    repeat: tuple[int, int],
    config_name: str,
    config: dict[str, Any],
    timings: Timings,
) -> list[str]:
    """The write and read tables of one pipeline config (``repeat``: write and read
    rounds); the times go into ``timings`` too."""
    import numpy as np
    import zarr

    data = np.random.default_rng(0).random((side, side), dtype="float32")
    ways = _ways(root, with_variants=not config)

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

    # Inline reads change no write: that way only reads.
    writing = {name: way for name, way in ways.items() if name != HOPS}
    with zarr.config.set(config):
        writes = rotated_rounds(
            {name: writer(way) for name, way in writing.items()}, repeat[0], timings.write_rounds
        )
        reads = interleaved_best({name: reader(name, way) for name, way in ways.items()}, repeat[1])
    timings.writes, timings.reads = writes, reads
    what = f"{(side // chunk) ** 2} chunks of {chunk * chunk * 4} B, {config_name}"
    spread = "; ".join(
        f"{name}: {', '.join(f'{t:.2f}' for t in timings.write_rounds[name])}"
        for name in (LOCAL, AIOSTORE)
        if timings.write_rounds.get(name)
    )
    tables = [
        format_table(f"zarr 3, full write: {what}", _rows(writes), baseline=AIOSTORE)
        + f"\n\nWrite rounds (seconds, round by round): {spread}.",
        format_table(f"zarr 3, full read: {what}", _rows(reads), baseline=AIOSTORE),
    ]
    read_ratio = _ratio(reads, LOCAL, AIOSTORE)
    floor_ratio = _ratio(reads, LOCAL, MEMORY)
    tables.append(
        f"Read: ZarrStore(DirectoryStore) is {read_ratio} faster than LocalStore, and takes "
        f"{_ratio(reads, AIOSTORE, MEMORY)} the time of zarr's own floor (MemoryStore), which is "
        f"{floor_ratio} faster than LocalStore."
    )
    return tables


def store_table(root: str, side: int, chunk: int, repeat: int) -> str:
    """4,096 concurrent gets through zarr's Store API, on zarr's loop; no arrays."""
    import zarr.storage
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    ways = _ways(root, with_variants=True)
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
    ways = _ways(root, with_variants=False)
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


def targets_table(default: Timings, fused: Timings | None) -> str:
    """Issue 12's targets, each ``met`` or ``MISSED`` (a ratio that could not be
    measured is MISSED too)."""
    lines = [
        "**Targets (issue 12: a leaner zarr 3 path)**",
        "",
        "| target | measured | limit | verdict |",
        "| --- | ---: | ---: | --- |",
    ]

    def add(what: str, ratio: float | None, limit: float | None, note: str = "") -> None:
        shown = "-" if ratio is None else f"{ratio:.2f}"
        if limit is None:
            verdict = "shown (no target)"
        else:
            verdict = "met" if ratio is not None and ratio <= limit else "MISSED"
        lines.append(
            f"| {what} | {shown}{note} | {'-' if limit is None else f'<= {limit:.2f}'} | {verdict} |"
        )

    pipelines = [("default pipeline", default, True)]
    if fused is not None:
        pipelines.append(("FusedCodecPipeline", fused, False))
    for name, timings, is_target in pipelines:
        add(
            f"full read, {name}: ZarrStore(DirectoryStore) / MemoryStore (zarr's floor)",
            _number_ratio(timings.reads, AIOSTORE, MEMORY),
            READ_VS_FLOOR if is_target else None,
        )
    for name, timings, _ in pipelines:
        ours, theirs = timings.write_rounds.get(AIOSTORE, []), timings.write_rounds.get(LOCAL, [])
        medians = ours and theirs and statistics.median(ours) / statistics.median(theirs)
        best = _number_ratio(timings.writes, AIOSTORE, LOCAL)
        add(
            f"full write, {name}: ZarrStore(DirectoryStore) / LocalStore, median rounds ({len(ours)})",
            medians or None,
            WRITE_VS_LOCAL,
            "" if best is None else f" (best rounds: {best:.2f})",
        )
    return "\n".join(lines)


def _number_ratio(best: dict[str, float | Exception], numerator: str, denominator: str) -> float | None:
    a, b = best.get(numerator), best.get(denominator)
    return a / b if isinstance(a, float) and isinstance(b, float) and b > 0 else None


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
    parser.add_argument(
        "--write-repeat", type=int, default=None, help="rounds of the array writes (default: --repeat + 3)"
    )
    parser.add_argument("--fused", action="store_true", help="(the default) also run FusedCodecPipeline")
    parser.add_argument("--no-fused", action="store_true", help="skip the FusedCodecPipeline runs")
    args = parser.parse_args()
    if not _have_zarr3():
        other = os.environ.get("AIOSTORE_BENCH_ZARR3_PYTHON")
        if other:
            sys.exit(subprocess.call([other, *sys.argv]))
        print("bench_zarr3: skipped (zarr 3 is not installed; set AIOSTORE_BENCH_ZARR3_PYTHON)")
        return
    print(machine_description(["zarr", "numpy", "anyio"]))
    print()
    configs: list[tuple[str, dict[str, Any], Timings]] = [("zarr's default pipeline", {}, Timings())]
    if not args.no_fused:
        configs.append(("opt-in FusedCodecPipeline", {"codec_pipeline.path": FUSED}, Timings()))
    repeat = (args.repeat + 3 if args.write_repeat is None else args.write_repeat, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-zarr3-") as root:
        tables = []
        if not args.only_sharded:
            for config_name, config, timings in configs:
                tables += array_tables(root, args.side, args.chunk, repeat, config_name, config, timings)
            tables.append(store_table(root, args.side, args.chunk, args.repeat))
        tables += sharded_table(root, args.side, args.chunk, args.shard, args.repeat)
        if not args.only_sharded:
            tables.append(targets_table(configs[0][2], configs[1][2] if len(configs) > 1 else None))
    for table in tables:
        print(table)
        print()


if __name__ == "__main__":
    main()
