"""aiostore's DirectoryStore against the other ways of reading and writing many small files.

Issue 2's benchmark. In one run, 10,000 values of 16 KiB (``--count``, ``--size``)
under the same keys for every way: zarr-3-style nested chunk keys, 100 files per
directory. Reads have a warm page cache: the files are written once, then each way
reads all of them; writes go into a new empty directory (made and ``os.sync()``-ed
outside the timing), fsync off for everyone. Each way runs ``--repeat`` times, in
interleaved rounds, and its best run counts. Each way's first result is checked:
every value read, every file written (and no temp file left behind).

zarr 2.18 needs a Python without zarr 3, and zarr >= 3.2 needs Python >= 3.12, so
zarr 3's rows run in a worker process, this same script under
``$AIOSTORE_BENCH_ZARR3_PYTHON`` (any Python with zarr >= 3; ``nox -s bench`` makes
one), on the same data, taking its turn in each round. Without it those rows say
they were skipped.

Run::

    python benchmarks/bench_directory.py [--count N] [--size BYTES] [--repeat R] [--only WORDS]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from _common import (
    Row,
    format_table,
    fresh_dir,
    interleaved_best,
    machine_description,
    time_once,
    time_once_async,
)

GET_BASELINE = "aiostore DirectoryStore.get_many"
SET_BASELINE = "aiostore DirectoryStore.set_many"
ZARR3_ENV = "AIOSTORE_BENCH_ZARR3_PYTHON"


class Skipped(Exception):
    """A way that cannot run here (its library is missing); the message says why."""


@dataclass
class Context:
    """What every way works on: the same keys, values and directories."""

    keys: list[str]
    values: list[bytes]
    base: str

    @property
    def root(self) -> str:
        """The directory every read benchmark reads."""
        return os.path.join(self.base, "data")

    @property
    def items(self) -> dict[str, bytes]:
        return dict(zip(self.keys, self.values, strict=True))


def make_context(count: int, size: int, base: str) -> Context:
    """Keys like zarr 3's chunk keys, and distinct values that any Python regenerates
    identically from the seed (so the zarr 3 worker can check what it reads)."""
    keys = [f"arr/c/{i // 100}/{i % 100}" for i in range(count)]
    rng = random.Random(2)
    return Context(keys, [rng.randbytes(size) for _ in range(count)], base)


# -- checks (never timed) ------------------------------------------------------
def check_read(ctx: Context, got: Mapping[str, Any] | Sequence[Any]) -> None:
    """Fail unless ``got`` (by key, or a list in key order) holds exactly the values."""
    if isinstance(got, Mapping):
        missing = [k for k in ctx.keys if k not in got]
        if missing:
            raise AssertionError(f"{len(missing)} keys missing from the result, e.g. {missing[0]!r}")
        got = [got[k] for k in ctx.keys]
    if len(got) != len(ctx.values):
        raise AssertionError(f"read {len(got)} values, expected {len(ctx.values)}")
    for key, value, expected in zip(ctx.keys, got, ctx.values, strict=True):
        if bytes(value) != expected:
            raise AssertionError(f"wrong value read for {key!r}")


def check_written(ctx: Context, root: str) -> None:
    """Fail unless ``root`` holds exactly the expected files (no temp files left)."""
    files = sum(len(names) for _, _, names in os.walk(root))
    if files != len(ctx.keys):
        raise AssertionError(f"{files} files written under {root}, expected {len(ctx.keys)}")
    check_read(ctx, plain_read(root, ctx.keys))


# -- the ways: each factory returns run(check) -> seconds for one timed run ---------
Run = Callable[[bool], float]


def reader(ctx: Context, once: Callable[[], tuple[float, Any]]) -> Run:
    """A read way from ``once() -> (seconds, values read)``."""

    def run(check: bool) -> float:
        seconds, got = once()
        if check:
            check_read(ctx, got)
        return seconds

    return run


def writer(ctx: Context, name: str, once: Callable[[str], float]) -> Run:
    """A write way from ``once(target directory) -> seconds``.

    Each run writes into a new directory, and all are removed only at the end:
    on ext4 (with ``discard`` at least), writing into space just freed costs
    several times more kernel time than writing into fresh space, which made a
    way's time depend on what ran before it.
    """
    prefix = os.path.join(ctx.base, "write-" + "".join(c if c.isalnum() else "-" for c in name))
    runs = itertools.count()

    def run(check: bool) -> float:
        target = f"{prefix}-{next(runs)}"
        fresh_dir(target)
        seconds = once(target)
        if check:
            check_written(ctx, target)
        return seconds

    return run


def plain_read(root: str, keys: Sequence[str]) -> dict[str, bytes]:
    found = {}
    for key in keys:
        with open(os.path.join(root, key), "rb") as f:
            found[key] = f.read()
    return found


def plain_write(root: str, items: Mapping[str, bytes], *, atomic: bool = False) -> None:
    made: set[str] = set()
    for key, value in items.items():
        path = os.path.join(root, key)
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(path + ".partial" if atomic else path, "wb") as f:
            f.write(value)
        if atomic:
            os.replace(path + ".partial", path)


def read_plain(ctx: Context) -> Run:
    return reader(ctx, lambda: time_once(lambda: plain_read(ctx.root, ctx.keys)))


def write_plain(ctx: Context, name: str, atomic: bool = False) -> Run:
    items = ctx.items
    return writer(ctx, name, lambda target: time_once(lambda: plain_write(target, items, atomic=atomic))[0])


def _aiostore_directory_store() -> Any:
    try:
        from aiostore.stores.directory import DirectoryStore
    except ImportError as exc:
        raise Skipped(f"skipped: aiostore.stores.directory not importable ({exc})") from None
    return DirectoryStore


def read_aiostore(ctx: Context) -> Run:
    import anyio

    directory_store = _aiostore_directory_store()

    async def once() -> tuple[float, dict[str, bytes]]:
        async with directory_store(ctx.root) as store:
            return await time_once_async(lambda: store.get_many(ctx.keys))

    return reader(ctx, lambda: anyio.run(once))


def read_aiostore_gathered(ctx: Context, backend: str) -> Run:
    """One ``get`` per key, all in flight at once: zarr 3's access pattern, coalesced."""
    import anyio

    directory_store = _aiostore_directory_store()

    async def once() -> tuple[float, dict[str, bytes]]:
        async with directory_store(ctx.root) as store:
            found: dict[str, bytes] = {}

            async def get(key: str) -> None:
                found[key] = await store.get(key)

            async def gather() -> dict[str, bytes]:
                async with anyio.create_task_group() as tg:
                    for key in ctx.keys:
                        tg.start_soon(get, key)
                return found

            return await time_once_async(gather)

    return reader(ctx, lambda: anyio.run(once, backend=backend))


def write_aiostore(ctx: Context, name: str) -> Run:
    import anyio

    directory_store = _aiostore_directory_store()
    items = ctx.items

    async def once(target: str) -> float:
        store = directory_store(target)
        seconds, _ = await time_once_async(lambda: store.set_many(items))
        await store.aclose()  # outside the timing, like the other ways' (absent) close
        return seconds

    return writer(ctx, name, lambda target: anyio.run(once, target))


def read_aiostore_sync(ctx: Context) -> Run:
    _aiostore_directory_store()
    from aiostore.sync import DirectoryStore

    def once() -> tuple[float, Mapping[str, bytes]]:
        with DirectoryStore(ctx.root) as store:
            return time_once(lambda: store.getitems(ctx.keys, contexts={}))

    return reader(ctx, once)


def write_aiostore_sync(ctx: Context, name: str) -> Run:
    _aiostore_directory_store()
    from aiostore.sync import DirectoryStore

    items = ctx.items

    def once(target: str) -> float:
        with DirectoryStore(target) as store:
            return time_once(lambda: store.setitems(items))[0]

    return writer(ctx, name, once)


def _tensorstore_kvstore(root: str) -> Any:
    try:
        import tensorstore as ts
    except ImportError:
        raise Skipped("skipped: tensorstore not installed") from None
    spec = {"driver": "file", "path": root.rstrip("/") + "/"}
    return ts.KvStore.open(spec, context=ts.Context({"file_io_sync": False})).result()


def read_tensorstore(ctx: Context) -> Run:
    kv = _tensorstore_kvstore(ctx.root)

    def read_all() -> list[bytes]:
        # Issue every read, then wait: tensorstore runs them on its own thread pool.
        futures = [kv.read(key) for key in ctx.keys]
        return [future.result().value for future in futures]

    return reader(ctx, lambda: time_once(read_all))


def write_tensorstore(ctx: Context, name: str) -> Run:
    def once(target: str) -> float:
        kv = _tensorstore_kvstore(target)

        def write_all() -> None:
            futures = [kv.write(key, value) for key, value in zip(ctx.keys, ctx.values, strict=True)]
            for future in futures:
                future.result()

        return time_once(write_all)[0]

    return writer(ctx, name, once)


def _zarr2_directory_store() -> Any:
    try:
        version = importlib.metadata.version("zarr")
    except importlib.metadata.PackageNotFoundError:
        raise Skipped("skipped: zarr 2 not installed") from None
    if not version.startswith("2."):
        raise Skipped(f"skipped: zarr {version} installed here, not zarr 2")
    from zarr.storage import DirectoryStore

    return DirectoryStore


def read_zarr2(ctx: Context) -> Run:
    store = _zarr2_directory_store()(ctx.root)
    return reader(ctx, lambda: time_once(lambda: store.getitems(ctx.keys, contexts={})))


def write_zarr2(ctx: Context, name: str) -> Run:
    directory_store = _zarr2_directory_store()
    items = ctx.items

    def once(target: str) -> float:
        store = directory_store(target)

        def write_all() -> None:
            # What zarr 2's Array does: setitems if the store has it, else key by key.
            if hasattr(store, "setitems"):
                store.setitems(items)
            else:
                for key, value in items.items():
                    store[key] = value

        return time_once(write_all)[0]

    return writer(ctx, name, once)


def _aiofiles() -> Any:
    try:
        import aiofiles
        import aiofiles.os
    except ImportError:
        raise Skipped("skipped: aiofiles not installed") from None
    return aiofiles


def read_aiofiles(ctx: Context) -> Run:
    aiofiles = _aiofiles()

    async def read_one(path: str) -> bytes:
        async with aiofiles.open(path, "rb") as f:
            return await f.read()  # type: ignore[no-any-return]

    async def once() -> tuple[float, list[bytes]]:
        paths = [os.path.join(ctx.root, k) for k in ctx.keys]
        return await time_once_async(lambda: asyncio.gather(*(read_one(p) for p in paths)))

    return reader(ctx, lambda: asyncio.run(once()))


def write_aiofiles(ctx: Context, name: str) -> Run:
    aiofiles = _aiofiles()

    async def write_one(path: str, value: bytes) -> None:
        async with aiofiles.open(path, "wb") as f:
            await f.write(value)

    async def write_all(target: str) -> None:
        paths = [os.path.join(target, k) for k in ctx.keys]
        parents = {os.path.dirname(p) for p in paths}
        await asyncio.gather(*(aiofiles.os.makedirs(p, exist_ok=True) for p in parents))
        await asyncio.gather(*(write_one(p, v) for p, v in zip(paths, ctx.values, strict=True)))

    async def once(target: str) -> float:
        return (await time_once_async(lambda: write_all(target)))[0]

    return writer(ctx, name, lambda target: asyncio.run(once(target)))


# -- zarr 3, in a worker process (see the module docstring) ---------------------
def zarr3_worker(ctx: Context) -> None:
    """Serve "get CHECK" / "set CHECK" lines from stdin: one timed zarr 3 LocalStore
    run each (gathered gets or sets), answered on stdout as one JSON line."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.storage import LocalStore

    prototype = default_buffer_prototype()
    buffers = [prototype.buffer.from_bytes(v) for v in ctx.values]  # zarr's codecs hand it Buffers

    async def get_once() -> tuple[float, list[bytes]]:
        store = LocalStore(ctx.root, read_only=True)
        seconds, got = await time_once_async(
            lambda: asyncio.gather(*(store.get(k, prototype) for k in ctx.keys))
        )
        return seconds, [b.to_bytes() for b in got]

    async def set_once(target: str) -> float:
        store = LocalStore(target)
        pairs = zip(ctx.keys, buffers, strict=True)
        return (await time_once_async(lambda: asyncio.gather(*(store.set(k, b) for k, b in pairs))))[0]

    runs = {
        "get": reader(ctx, lambda: asyncio.run(get_once())),
        "set": writer(ctx, "zarr3", lambda target: asyncio.run(set_once(target))),
    }
    print(json.dumps({"zarr": importlib.metadata.version("zarr"), "python": sys.version.split()[0]}))
    sys.stdout.flush()
    for line in sys.stdin:
        command, check = line.split()
        try:
            reply: dict[str, object] = {"seconds": runs[command](check == "1")}
        except Exception as exc:
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


class Zarr3:
    """The parent's end of the zarr 3 worker."""

    def __init__(self, ctx: Context) -> None:
        self.proc: subprocess.Popen[str] | None = None
        python = os.environ.get(ZARR3_ENV)
        if not python:
            self.error = f"skipped: set ${ZARR3_ENV} to a Python with zarr >= 3 (nox -s bench does)"
            return
        command = [python, os.path.abspath(__file__), "--zarr3-worker", "--dir", ctx.base]
        command += ["--count", str(len(ctx.keys)), "--size", str(len(ctx.values[0]))]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self.proc.stdout.readline() if self.proc.stdout else ""
        if not hello:
            self.error = f"FAILED: the zarr 3 worker under {python} did not start (see stderr)"
            return
        versions = json.loads(hello)
        self.error = ""
        self.note = f"zarr {versions['zarr']}, Python {versions['python']}, worker process"

    def way(self, command: str) -> Run:
        if self.error:
            raise Skipped(self.error)

        def run(check: bool) -> float:
            assert self.proc and self.proc.stdin and self.proc.stdout
            self.proc.stdin.write(f"{command} {int(check)}\n")
            self.proc.stdin.flush()
            reply = json.loads(self.proc.stdout.readline() or '{"error": "the worker died"}')
            if "error" in reply:
                raise RuntimeError(reply["error"])
            return float(reply["seconds"])

        return run

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait()


# -- the run ----------------------------------------------------------------------
def run_ways(ways: list[tuple[str, str, Callable[[], Run]]], repeat: int) -> list[Row]:
    """Set up each way, run them all in interleaved rounds, and make the table rows."""
    runs: dict[str, Run] = {}
    notes: dict[str, str] = {}
    for name, note, make in ways:
        notes[name] = note
        try:
            runs[name] = make()
        except Skipped as skip:
            notes[name] = str(skip)

    def announced(name: str, run: Run) -> Run:
        def go(round_: int) -> float:
            try:
                seconds = run(round_ == 0)
            except Exception:
                traceback.print_exc()
                raise
            print(f"  round {round_ + 1}/{repeat}: {name}: {seconds:.3f} s", file=sys.stderr, flush=True)
            return seconds

        return go

    best = interleaved_best({name: announced(name, run) for name, run in runs.items()}, repeat)
    rows = []
    for name, _, _ in ways:
        result = best.get(name)
        if isinstance(result, float):
            rows.append(Row(name, result, notes[name]))
        elif isinstance(result, Exception):
            rows.append(Row(name, None, f"FAILED: {type(result).__name__}: {result}"))
        else:
            rows.append(Row(name, None, notes[name]))
    return rows


def targets(gets: list[Row], sets: list[Row]) -> str:
    """Issue 2's targets, each with its ratio (aiostore's time / the other's; <= 1 meets it)."""

    def seconds(rows: list[Row], prefix: str) -> float | None:
        return next((r.seconds for r in rows if r.name.startswith(prefix)), None)

    lines = []
    for what, rows, mine, other in [
        ("get_many vs tensorstore", gets, GET_BASELINE, "tensorstore"),
        ("get_many vs plain loop", gets, GET_BASELINE, "plain loop"),
        ("set_many vs tensorstore (fsync off)", sets, SET_BASELINE, "tensorstore"),
    ]:
        a, b = seconds(rows, mine), seconds(rows, other)
        if a is None or b is None:
            lines.append(f"- {what}: not measured")
        else:
            verdict = "met" if a <= b else "MISSED"
            lines.append(f"- {what}: {a:.3f} s vs {b:.3f} s, ratio {a / b:.2f} (target <= 1): {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="number of values (default 10000)")
    parser.add_argument("--size", type=int, default=16 * 1024, help="bytes per value (default 16384)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each way's best counts (default 5)")
    parser.add_argument("--dir", help="scratch directory (default: a new temporary one, removed after)")
    parser.add_argument("--only", default="", help="comma-separated words: run only ways whose name has one")
    parser.add_argument("--skip", choices=["get", "set"], help="leave out the reads or the writes")
    parser.add_argument("--zarr3-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.zarr3_worker:
        zarr3_worker(make_context(args.count, args.size, args.dir))
        return 0

    base = args.dir or tempfile.mkdtemp(prefix="aiostore-bench-")
    only = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    ctx = make_context(args.count, args.size, base)
    zarr3 = None
    try:
        fresh_dir(ctx.root)
        plain_write(ctx.root, ctx.items)
        os.sync()
        plain_read(ctx.root, ctx.keys)  # warm the page cache
        zarr3 = Zarr3(ctx)
        aio = "asyncio, one thread hop per part of the batch"
        reads: list[tuple[str, str, Callable[[], Run]]] = [
            (GET_BASELINE, aio, lambda: read_aiostore(ctx)),
            (
                "aiostore.sync DirectoryStore.getitems",
                "caller's thread, no loop",
                lambda: read_aiostore_sync(ctx),
            ),
            (
                "aiostore DirectoryStore.get per key, gathered (asyncio)",
                "zarr 3's access pattern: coalesced into batches",
                lambda: read_aiostore_gathered(ctx, "asyncio"),
            ),
            (
                "aiostore DirectoryStore.get per key, gathered (trio)",
                "coalesced into batches",
                lambda: read_aiostore_gathered(ctx, "trio"),
            ),
            ("plain loop: open, read, close", "one thread", lambda: read_plain(ctx)),
            ("tensorstore file kvstore", "all reads issued, then awaited", lambda: read_tensorstore(ctx)),
            (
                "zarr 2.18 DirectoryStore.getitems",
                "`key in store`, then read, per key",
                lambda: read_zarr2(ctx),
            ),
            ("zarr 3 LocalStore, gathered gets", "", lambda: zarr3.way("get")),
            ("aiofiles per key, gathered", "asyncio's default executor", lambda: read_aiofiles(ctx)),
        ]
        writes: list[tuple[str, str, Callable[[str], Run]]] = [
            (SET_BASELINE, aio, lambda n: write_aiostore(ctx, n)),
            (
                "aiostore.sync DirectoryStore.setitems",
                "caller's thread",
                lambda n: write_aiostore_sync(ctx, n),
            ),
            ("plain loop: open, write, close", "not atomic", lambda n: write_plain(ctx, n)),
            ("plain loop: write temp, os.replace", "atomic", lambda n: write_plain(ctx, n, atomic=True)),
            (
                "tensorstore file kvstore, fsync off",
                "file_io_sync=False; atomic",
                lambda n: write_tensorstore(ctx, n),
            ),
            (
                "zarr 2.18 DirectoryStore",
                "no setitems: `store[k] = v` per key; atomic",
                lambda n: write_zarr2(ctx, n),
            ),
            ("zarr 3 LocalStore, gathered sets", "atomic", lambda n: zarr3.way("set")),
            ("aiofiles per key, gathered", "not atomic", lambda n: write_aiofiles(ctx, n)),
        ]
        if zarr3.proc is not None and not zarr3.error:
            reads[5] = (reads[5][0], zarr3.note, reads[5][2])
            writes[6] = (writes[6][0], zarr3.note + "; atomic", writes[6][2])

        def chosen(name: str) -> bool:
            return not only or any(word in name.lower() for word in only)

        gets = [] if args.skip == "get" else run_ways([w for w in reads if chosen(w[0])], args.repeat)
        sets = (
            []
            if args.skip == "set"
            else run_ways(
                [(name, note, lambda n=name, m=make: m(n)) for name, note, make in writes if chosen(name)],
                args.repeat,
            )
        )
    finally:
        if zarr3 is not None:
            zarr3.close()
        if args.dir:
            for name in os.listdir(base):
                if name.startswith("write-"):
                    shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        else:
            shutil.rmtree(base, ignore_errors=True)

    size = f"{args.size // 1024} KiB" if args.size % 1024 == 0 else f"{args.size} B"
    print(f"### DirectoryStore: {args.count:,} values of {size}, best of {args.repeat} interleaved rounds\n")
    print(machine_description(["aiostore", "anyio", "tensorstore", "zarr", "aiofiles"]) + "\n")
    print(format_table("get_many (warm page cache)", gets, GET_BASELINE, "aiostore") + "\n")
    print(format_table("set_many (into an empty directory, no fsync)", sets, SET_BASELINE, "aiostore") + "\n")
    print("Targets (issue 2):\n" + targets(gets, sets))
    return 1 if any(r.note.startswith("FAILED") for r in gets + sets) else 0


if __name__ == "__main__":
    sys.exit(main())
