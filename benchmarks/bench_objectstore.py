"""aiostore's ObjectStore against raw obstore, s3fs and zarr's own stores, on a loopback S3 server.

The object-storage benchmark. Every table reads from moto's S3 server on 127.0.0.1, a
fresh bucket per table. The server runs in a process of its own (``--server thread``
runs it in the benchmark's process instead, as the test suite does), so its Python does
not share a GIL with the client being timed. moto answers a few hundred requests a
second: a way that keeps it busy is as fast as the server lets anything be, and the
tables show which ways do. In one run:

1. **get_many**: 2,000 objects of 64 KiB (``--count``, ``--size``) read in one batch:
   ``aiostore.ObjectStore.get_many`` against raw obstore (``get_async`` +
   ``bytes_async`` per key under ``asyncio.gather``, once with 32 in flight, aiostore's
   default request limit, through a semaphore, once unbounded), s3fs's
   ``FSMap.getitems`` and aiostore's sync twin ``getitems``.
2. **zarr 3**: a whole uncompressed float32 array of 4,096 chunks of 4 KiB
   (``--zarr3-grid`` x ``--zarr3-grid`` chunks of ``--zarr3-chunk`` x ``--zarr3-chunk``)
   read with ``array[:]`` through ``aiostore.zarr3.ZarrStore(ObjectStore)``, zarr 3's
   ``ObjectStore`` over an obstore ``S3Store``, and zarr 3's ``FsspecStore`` (s3fs), at
   zarr's default concurrency. ``--zarr3-repeat`` rounds (default 2: a read through the
   FsspecStore takes a minute or more).
   zarr >= 3.2 needs Python >= 3.12: under an interpreter without zarr 3 this table
   runs in a worker process, this script under ``$AIOSTORE_BENCH_ZARR3_PYTHON`` (with
   its own server), or says it was skipped.
3. **cold cache**: 1,000 chunks of 16 KiB (``--cache-count``, ``--cache-size``) read
   one key after the other, as zarr 2 code does, through a fresh cache: aiostore's
   sync ``LRUStoreCache`` over ``ObjectStore`` after ``prefetch(keys)``, against zarr
   2.18's ``LRUStoreCache`` over an s3fs mapper. Without zarr 2 here, zarr 2's row
   runs in a worker under ``$AIOSTORE_BENCH_ZARR2_PYTHON`` (its own server, the same
   data), taking its turn in each round, or says it was skipped.

Each way first reads a few keys untimed (its connections and session open, as in a
program that has been running), then the ways take turns for ``--repeat`` rounds and the
best round counts; the ways that take several times longer (s3fs, zarr 2's cache,
unbounded obstore) run in the first ``--slow-repeat`` rounds only. Every timed read is
checked against the data (untimed). Async ways are timed inside their event loop. The
notes give each way's client CPU time (the least of its runs; every thread of the
client's process, none of the server's): with the server setting the pace, it shows
what each client costs when the wall clock cannot.

The interpreters need obstore, moto[server] and s3fs besides aiostore and zarr; a
table whose libraries are missing says so. A default run took 7 minutes on a busy
2-core machine (load average 7), half of it in the four one-run ways; ``--only``
picks tables, and smaller ``--count``/``--zarr3-grid``/``--cache-count`` shorten it.

Run::

    python benchmarks/bench_objectstore.py [--count N] [--size BYTES] [--repeat R]
        [--slow-repeat R] [--zarr3-grid N] [--zarr3-chunk N] [--zarr3-repeat R]
        [--cache-count N] [--cache-size BYTES] [--server process|thread] [--only 1,2,3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import importlib.util
import json
import logging
import os
import random
import subprocess
import sys
import time
import traceback
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from _common import Row, format_table, interleaved_best, machine_description

ZARR2_ENV = "AIOSTORE_BENCH_ZARR2_PYTHON"
ZARR3_ENV = "AIOSTORE_BENCH_ZARR3_PYTHON"
#: moto accepts any credentials; these make the clients sign their requests.
KEY, SECRET, REGION = "testing", "testing-secret", "us-east-1"
#: aiostore's default request limit (``aiostore.set_request_limit``).
IN_FLIGHT = 32

GET_MANY = "aiostore ObjectStore.get_many (asyncio)"
RAW_BOUNDED = f"obstore get_async + bytes_async, gathered, {IN_FLIGHT} in flight"
RAW_UNBOUNDED = "obstore get_async + bytes_async, gathered, unbounded"
SYNC_GETITEMS = "aiostore.sync ObjectStore.getitems"
S3FS_GETITEMS = "s3fs FSMap.getitems"
ZARR3_AIOSTORE = "aiostore ZarrStore(ObjectStore)"
ZARR3_OBSTORE = "zarr 3 ObjectStore(obstore S3Store)"
ZARR3_FSSPEC = "zarr 3 FsspecStore (s3fs)"
CACHE_AIOSTORE = "aiostore sync LRUStoreCache(ObjectStore): prefetch(keys), then cache[key] per key"
CACHE_ZARR2 = "zarr 2.18 LRUStoreCache(s3fs FSMap): cache[key] per key"

#: One timed run of a way: ``run(round) -> (wall seconds, client CPU seconds)``.
Run = Callable[[int], tuple[float, float]]
T = TypeVar("T")


class Skipped(Exception):
    """A way or table that cannot run here; the message says why."""


def missing(*modules: str) -> str:
    """A skip reason naming the ``modules`` this interpreter lacks, or ""."""
    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    return f"{', '.join(absent)} not installed under {sys.executable}" if absent else ""


# -- the server -------------------------------------------------------------------------
def serve_moto() -> None:
    """``--moto-server``: moto's S3 server on 127.0.0.1; prints its port, stops at stdin's end."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server._server.server_address[1], flush=True)  # moto has no public accessor
    sys.stdin.read()
    server.stop()


class S3Server:
    """moto's S3 server on 127.0.0.1, in its own process (or a thread of this one)."""

    def __init__(self, mode: str) -> None:
        reason = missing("moto", "flask", "obstore")  # moto[server] needs flask
        if reason:
            raise Skipped(reason)
        self.proc: subprocess.Popen[str] | None = None
        self.thread_server: Any = None
        if mode == "thread":
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self.thread_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self.thread_server.start()
            port = self.thread_server._server.server_address[1]
        else:
            command = [sys.executable, os.path.abspath(__file__), "--moto-server"]
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line.strip():
                self.stop()
                raise RuntimeError("moto's server did not start (see stderr)")
            port = int(line)
        self.endpoint = f"http://127.0.0.1:{port}"

    def bucket(self) -> str:
        """Create a new, empty bucket and return its name."""
        name = f"bench-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        return name

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``aiostore.ObjectStore`` and ``obstore.store.from_url``."""
        config = {"endpoint": self.endpoint, "access_key_id": KEY, "secret_access_key": SECRET}
        return {"config": {**config, "region": REGION}, "client_options": {"allow_http": True}}

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments of ``s3fs.S3FileSystem``."""
        client = {"endpoint_url": self.endpoint, "region_name": REGION}
        return {"key": KEY, "secret": SECRET, "client_kwargs": client}

    def s3fs(self) -> Any:
        try:
            import s3fs
        except ImportError as exc:
            raise Skipped(f"skipped: s3fs is not installed under {sys.executable}") from exc
        return s3fs.S3FileSystem(**self.storage_options())

    def stop(self) -> None:
        if self.thread_server is not None:
            self.thread_server.stop()
            self.thread_server = None
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upload(server: S3Server, url: str, items: Mapping[str, bytes]) -> None:
    """Put ``items`` below ``url`` with obstore, 32 at a time (never timed)."""
    import obstore
    import obstore.store

    client = obstore.store.from_url(url, **server.options())

    async def put_all() -> None:
        semaphore = asyncio.Semaphore(IN_FLIGHT)

        async def put(key: str, value: bytes) -> None:
            async with semaphore:
                await obstore.put_async(client, key, value)

        await asyncio.gather(*(put(key, value) for key, value in items.items()))

    asyncio.run(put_all())


def make_values(count: int, size: int, seed: int) -> list[bytes]:
    """Distinct values that every interpreter regenerates identically from ``seed``."""
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


def check(keys: Sequence[str], expected: Sequence[bytes], got: Mapping[str, Any] | Sequence[Any]) -> None:
    """Fail unless ``got`` (by key, or a list in key order) holds exactly the values."""
    if isinstance(got, Mapping):
        missing = [k for k in keys if k not in got]
        if missing:
            raise AssertionError(f"{len(missing)} keys missing from the result, e.g. {missing[0]!r}")
        got = [got[k] for k in keys]
    if len(got) != len(expected):
        raise AssertionError(f"read {len(got)} values, expected {len(expected)}")
    for key, value, want in zip(keys, got, expected, strict=True):
        if bytes(value) != want:
            raise AssertionError(f"wrong value read for {key!r}")


def timed(call: Callable[[], T]) -> tuple[float, float, T]:
    """Wall and CPU seconds of one ``call()``, and what it returned.

    CPU is this process's, every thread of it: the client's own work (moto's server
    runs in a process of its own unless ``--server thread``). ``gc.collect()`` runs
    first, untimed, as in ``_common.time_once``.
    """
    gc.collect()
    cpu, start = time.process_time(), time.perf_counter()
    result = call()
    return time.perf_counter() - start, time.process_time() - cpu, result


async def timed_async(call: Callable[[], Awaitable[T]]) -> tuple[float, float, T]:
    """:func:`timed` for a coroutine function, timed inside the caller's event loop."""
    gc.collect()
    cpu, start = time.process_time(), time.perf_counter()
    result = await call()
    return time.perf_counter() - start, time.process_time() - cpu, result


def announced(name: str, run: Run, rounds: int, cpu: dict[str, float]) -> Callable[[int], float]:
    """``run`` for :func:`interleaved_best`: says each round's time on stderr, keeps the
    least CPU time in ``cpu[name]``; a slow way runs in the first ``rounds`` only."""

    def go(round_: int) -> float:
        if round_ >= rounds:
            return float("inf")
        try:
            seconds, used = run(round_)
        except Exception:
            traceback.print_exc()
            raise
        cpu[name] = min(cpu.get(name, used), used)
        print(f"  round {round_ + 1}: {name}: {seconds:.3f} s, CPU {used:.3f} s", file=sys.stderr, flush=True)
        return seconds

    return go


def run_ways(
    ways: Sequence[tuple[str, str, Callable[[], Run], bool]], repeat: int, slow_repeat: int
) -> list[Row]:
    """Set each way up (a ``Skipped`` one keeps its reason), run them in ``repeat``
    interleaved rounds (slow ways in the first ``slow_repeat`` only), and make the rows."""
    runs: dict[str, Callable[[int], float]] = {}
    notes: dict[str, str] = {}
    cpu: dict[str, float] = {}
    for name, note, make, slow in ways:
        rounds = min(slow_repeat, repeat) if slow else repeat
        notes[name] = "; ".join(n for n in (note, "one run" if rounds == 1 else f"best of {rounds}") if n)
        try:
            runs[name] = announced(name, make(), rounds, cpu)
        except Skipped as skip:
            notes[name] = str(skip)
        except Exception as exc:
            traceback.print_exc()
            notes[name] = f"FAILED to set up: {type(exc).__name__}: {exc}"
    best = interleaved_best(runs, repeat)
    rows = []
    for name, _, _, _ in ways:
        result = best.get(name)
        if isinstance(result, float):
            rows.append(Row(name, result, f"client CPU {cpu[name]:.2f} s; {notes[name]}"))
        elif isinstance(result, Exception):
            rows.append(Row(name, None, f"FAILED: {type(result).__name__}: {result}"))
        else:
            rows.append(Row(name, None, notes[name]))
    return rows


def seconds_of(rows: Sequence[Row], name: str) -> float | None:
    return next((r.seconds for r in rows if r.name == name), None)


def ratio_line(
    what: str, slow: float | None, fast: float | None, *, times: bool, target: float | None
) -> str:
    """``what``: ``slow / fast`` as a ratio (``times`` False; the target is a most) or a
    speed-up (``times`` True; the target is a least), and whether ``target`` is met."""
    if slow is None or fast is None:
        return f"- {what}: not measured"
    ratio = slow / fast
    if times:
        shown = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
    else:
        shown = f"ratio {ratio:.2f}"
    if target is None:
        return f"- {what}: {shown}"
    met = ratio >= target if times else ratio <= target
    goal = f"at least {target:g}x" if times else f"at most {target:g}"
    return f"- {what}: {shown} (target {goal}): {'met' if met else 'MISSED'}"


# -- 1. get_many ----------------------------------------------------------------------
def get_many_table(server: S3Server, args: argparse.Namespace) -> str:
    import obstore
    import obstore.store

    import aiostore
    import aiostore.sync

    bucket = server.bucket()
    url = f"s3://{bucket}/many"
    keys = [str(i) for i in range(args.count)]
    values = make_values(args.count, args.size, seed=1)
    print(f"uploading {args.count} objects of {args.size} B ...", file=sys.stderr, flush=True)
    upload(server, url, dict(zip(keys, values, strict=True)))

    # Each way first reads IN_FLIGHT keys untimed: its connections open, as in a
    # program that has been running.
    warm_keys = keys[:IN_FLIGHT]

    def aiostore_get_many() -> Run:
        store = aiostore.ObjectStore(url, **server.options())

        def run(_: int) -> tuple[float, float]:
            seconds, cpu, got = asyncio.run(timed_async(lambda: store.get_many(keys)))
            check(keys, values, got)
            return seconds, cpu

        asyncio.run(store.get_many(warm_keys))
        return run

    def raw(limit: int | None) -> Callable[[], Run]:
        def make() -> Run:
            client = obstore.store.from_url(url, **server.options())

            async def read_all(keys: list[str]) -> list[Any]:
                semaphore = asyncio.Semaphore(limit) if limit else None

                async def one(key: str) -> Any:
                    if semaphore is None:
                        return await (await obstore.get_async(client, key)).bytes_async()
                    async with semaphore:
                        return await (await obstore.get_async(client, key)).bytes_async()

                return await asyncio.gather(*(one(key) for key in keys))

            def run(_: int) -> tuple[float, float]:
                seconds, cpu, got = asyncio.run(timed_async(lambda: read_all(keys)))
                check(keys, values, got)
                return seconds, cpu

            asyncio.run(read_all(warm_keys))
            return run

        return make

    def sync_getitems() -> Run:
        store = aiostore.sync.ObjectStore(url, **server.options())

        def run(_: int) -> tuple[float, float]:
            seconds, cpu, got = timed(lambda: store.getitems(keys, contexts={}))
            check(keys, values, got)
            return seconds, cpu

        store.getitems(warm_keys, contexts={})
        return run

    def s3fs_getitems() -> Run:
        mapper = server.s3fs().get_mapper(f"{bucket}/many")

        def run(_: int) -> tuple[float, float]:
            seconds, cpu, got = timed(lambda: mapper.getitems(keys))
            check(keys, values, got)
            return seconds, cpu

        mapper.getitems(warm_keys)
        return run

    ways = [
        (GET_MANY, f"at most {IN_FLIGHT} requests in flight (the default limit)", aiostore_get_many, False),
        (RAW_BOUNDED, "asyncio.Semaphore; values left as obstore Bytes", raw(IN_FLIGHT), False),
        (RAW_UNBOUNDED, "every request at once; values left as obstore Bytes", raw(None), True),
        (SYNC_GETITEMS, "zarr 2's batch read; aiostore's background loop", sync_getitems, False),
        (S3FS_GETITEMS, "fsspec's cat of the keys, on fsspec's loop", s3fs_getitems, True),
    ]
    rows = run_ways(ways, args.repeat, args.slow_repeat)
    title = (
        f"get_many on a loopback S3 server (moto): {args.count:,} objects of {args.size // 1024} KiB, "
        "one batch"
    )
    mine = seconds_of(rows, GET_MANY)
    s3fs_seconds = seconds_of(rows, S3FS_GETITEMS)
    lines = [
        format_table(title, rows, baseline=GET_MANY, label="aiostore"),
        "",
        ratio_line(
            "aiostore get_many / raw obstore, 32 in flight",
            mine,
            seconds_of(rows, RAW_BOUNDED),
            times=False,
            target=1.1,
        ),
        ratio_line(
            "aiostore get_many / raw obstore, unbounded",
            mine,
            seconds_of(rows, RAW_UNBOUNDED),
            times=False,
            target=1.1,
        ),
        ratio_line("aiostore get_many vs s3fs FSMap.getitems", s3fs_seconds, mine, times=True, target=2.5),
        ratio_line(
            "aiostore.sync getitems vs s3fs FSMap.getitems",
            s3fs_seconds,
            seconds_of(rows, SYNC_GETITEMS),
            times=True,
            target=2.5,
        ),
    ]
    if mine:
        lines.append(f"- aiostore get_many: {args.count / mine:,.0f} requests a second")
    return "\n".join(lines)


# -- 2. zarr 3 (here or in a worker under $AIOSTORE_BENCH_ZARR3_PYTHON) ----------------
def have_zarr(major: int) -> bool:
    try:
        version = importlib.metadata.version("zarr")
    except importlib.metadata.PackageNotFoundError:
        return False
    return int(version.split(".")[0]) == major


def zarr3_table(args: argparse.Namespace) -> str:
    """The zarr 3 table, run in this interpreter (which has zarr 3)."""
    reason = missing("moto", "flask", "obstore")
    if reason:
        return f"zarr 3 table: skipped ({reason})"
    import numpy as np
    import obstore.store
    import zarr
    import zarr.storage

    import aiostore
    from aiostore.zarr3 import ZarrStore

    side = args.zarr3_grid * args.zarr3_chunk
    chunks = args.zarr3_grid**2
    chunk_bytes = args.zarr3_chunk**2 * 4
    data = np.random.default_rng(3).random((side, side), dtype="float32")
    with S3Server(args.server) as server:
        bucket = server.bucket()
        url = f"s3://{bucket}/array"
        print(f"uploading a zarr 3 array of {chunks} chunks ...", file=sys.stderr, flush=True)
        # Made in memory, then put 32 at a time: quicker than zarr's 10 at a time.
        written: dict[str, Any] = {}
        array = zarr.create_array(
            zarr.storage.MemoryStore(written),
            shape=data.shape,
            chunks=(args.zarr3_chunk, args.zarr3_chunk),
            dtype=data.dtype,
            compressors=None,
            fill_value=0.0,
        )
        array[:] = data
        upload(server, url, {key: buffer.to_bytes() for key, buffer in written.items()})

        def reader(make_store: Callable[[], Any]) -> Callable[[], Run]:
            def make() -> Run:
                store = make_store()

                def run(_: int) -> tuple[float, float]:
                    seconds, cpu, out = timed(lambda: zarr.open_array(store, mode="r")[:])
                    if not np.array_equal(out, data):
                        raise AssertionError("read back wrong data")
                    return seconds, cpu

                zarr.open_array(store, mode="r")[: args.zarr3_chunk]  # untimed: connections, session
                return run

            return make

        def fsspec_store() -> Any:
            try:
                import s3fs  # noqa: F401
            except ImportError as exc:
                raise Skipped(f"skipped: s3fs is not installed under {sys.executable}") from exc
            return zarr.storage.FsspecStore.from_url(
                url, storage_options=server.storage_options(), read_only=True
            )

        ways = [
            (
                ZARR3_AIOSTORE,
                "",
                reader(lambda: ZarrStore(aiostore.ObjectStore(url, read_only=True, **server.options()))),
                False,
            ),
            (
                ZARR3_OBSTORE,
                "",
                reader(
                    lambda: zarr.storage.ObjectStore(
                        obstore.store.from_url(url, **server.options()), read_only=True
                    )
                ),
                False,
            ),
            (ZARR3_FSSPEC, "", reader(fsspec_store), True),
        ]
        rows = run_ways(ways, args.zarr3_repeat, args.slow_repeat)
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("zarr", "obstore", "s3fs")
        if _installed(name)
    )
    title = (
        f"zarr 3, full read through a loopback S3 server (moto): a {side} x {side} float32 array, "
        f"{chunks:,} chunks of {args.zarr3_chunk} x {args.zarr3_chunk} ({chunk_bytes // 1024} KiB), "
        f"uncompressed; zarr's default async.concurrency ({zarr.config.get('async.concurrency')})"
    )
    mine = seconds_of(rows, ZARR3_AIOSTORE)
    return "\n".join(
        [
            f"zarr 3 rows: Python {sys.version.split()[0]}, {versions}",
            "",
            format_table(title, rows, baseline=ZARR3_AIOSTORE, label="aiostore"),
            "",
            ratio_line(
                "ZarrStore(ObjectStore) vs zarr 3 ObjectStore",
                seconds_of(rows, ZARR3_OBSTORE),
                mine,
                times=True,
                target=None,
            ),
            ratio_line(
                "ZarrStore(ObjectStore) vs zarr 3 FsspecStore",
                seconds_of(rows, ZARR3_FSSPEC),
                mine,
                times=True,
                target=None,
            ),
        ]
    )


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def zarr3_section(args: argparse.Namespace, argv: Sequence[str]) -> str | None:
    """The zarr 3 table here, or printed by a worker (then None), or a skip line."""
    if have_zarr(3):
        return zarr3_table(args)
    python = os.environ.get(ZARR3_ENV)
    if not python:
        return f"zarr 3 table: skipped (zarr 3 is not installed here; set ${ZARR3_ENV} to a Python with it)"
    sys.stdout.flush()
    command = [python, os.path.abspath(__file__), *argv, "--zarr3-worker"]
    if subprocess.call(command) != 0:
        return f"zarr 3 table: FAILED in the worker under {python} (see stderr)"
    return None


# -- 3. the cold cache --------------------------------------------------------------------
def cache_data(args: argparse.Namespace) -> tuple[list[str], list[bytes]]:
    return [str(i) for i in range(args.cache_count)], make_values(args.cache_count, args.cache_size, seed=2)


def zarr2_cache_way(server: S3Server, args: argparse.Namespace) -> Run:
    """zarr 2.18's LRUStoreCache over an s3fs mapper, fresh each run; a bucket of its own."""
    import zarr

    keys, values = cache_data(args)
    bucket = server.bucket()
    upload(server, f"s3://{bucket}/cold", dict(zip(keys, values, strict=True)))
    mapper = server.s3fs().get_mapper(f"{bucket}/cold")
    mapper[keys[0]]  # untimed: the session and its connection

    def run(_: int) -> tuple[float, float]:
        cache = zarr.LRUStoreCache(mapper, max_size=2**30)
        seconds, cpu, got = timed(lambda: [cache[k] for k in keys])
        check(keys, values, got)
        return seconds, cpu

    return run


def zarr2_worker(args: argparse.Namespace) -> None:
    """``--zarr2-worker``: zarr 2's cache row on a server of its own; answers each "run"
    line on stdin with one timed run, as a JSON line on stdout."""
    with S3Server(args.server) as server:
        try:
            run = zarr2_cache_way(server, args)
        except Exception as exc:
            traceback.print_exc()
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
            return
        versions = {"zarr": importlib.metadata.version("zarr"), "python": sys.version.split()[0]}
        print(json.dumps(versions), flush=True)
        for line in sys.stdin:
            try:
                seconds, cpu = run(int(line))
                reply: dict[str, object] = {"seconds": seconds, "cpu": cpu}
            except Exception as exc:
                traceback.print_exc()
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)


class Zarr2Worker:
    """The parent's end of the zarr 2 worker."""

    def __init__(self, argv: Sequence[str]) -> None:
        python = os.environ.get(ZARR2_ENV)
        if not python:
            raise Skipped(f"skipped: zarr 2 is not installed here; set ${ZARR2_ENV} to a Python with it")
        command = [python, os.path.abspath(__file__), *argv, "--zarr2-worker"]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline() or '{"error": "the worker died (see stderr)"}')
        if "error" in hello:
            self.close()
            raise RuntimeError(f"the zarr 2 worker under {python}: {hello['error']}")
        self.note = f"zarr {hello['zarr']}, Python {hello['python']}, worker process and server"

    def run(self, round_: int) -> tuple[float, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{round_}\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline() or '{"error": "the worker died (see stderr)"}')
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return float(reply["seconds"]), float(reply["cpu"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def cache_table(server: S3Server, args: argparse.Namespace, argv: Sequence[str]) -> str:
    import obstore.store

    import aiostore
    import aiostore.sync

    keys, values = cache_data(args)
    bucket = server.bucket()
    url = f"s3://{bucket}/cold"
    upload(server, url, dict(zip(keys, values, strict=True)))

    def aiostore_prefetch() -> Run:
        # One obstore client for every run (warm connections, as zarr 2's s3fs session is);
        # each run wraps it in a fresh ObjectStore and a fresh cache.
        client = obstore.store.from_url(url, **server.options())

        def run(_: int) -> tuple[float, float]:
            cache = aiostore.sync.LRUStoreCache(aiostore.ObjectStore(client), max_size=2**30)

            def read() -> list[bytes]:
                cache.prefetch(keys)
                return [cache[k] for k in keys]

            seconds, cpu, got = timed(read)
            cache.close()
            check(keys, values, got)
            return seconds, cpu

        run(-1)  # untimed: the connections
        return run

    worker: Zarr2Worker | None = None
    zarr2_note = ""

    def zarr2() -> Run:
        nonlocal worker, zarr2_note
        if have_zarr(2):
            return zarr2_cache_way(server, args)
        worker = Zarr2Worker(argv)
        zarr2_note = worker.note
        return worker.run

    ways = [
        (CACHE_AIOSTORE, "a zarr-2-style reader; prefetch on aiostore's loop", aiostore_prefetch, False),
        (CACHE_ZARR2, "a request per key, in turn", zarr2, True),
    ]
    try:
        rows = run_ways(ways, args.repeat, args.slow_repeat)
    finally:
        if worker is not None:
            worker.close()
    for row in rows:
        if row.name == CACHE_ZARR2 and row.seconds is not None and zarr2_note:
            row.note = f"{row.note}; {zarr2_note}"
    title = (
        f"Cold cache on a loopback S3 server (moto): {args.cache_count:,} chunks of "
        f"{args.cache_size // 1024} KiB read key by key through a fresh LRUStoreCache"
    )
    return "\n".join(
        [
            format_table(title, rows, baseline=CACHE_AIOSTORE, label="aiostore prefetch"),
            "",
            ratio_line(
                "aiostore prefetch vs zarr 2.18 LRUStoreCache",
                seconds_of(rows, CACHE_ZARR2),
                seconds_of(rows, CACHE_AIOSTORE),
                times=True,
                target=None,
            ),
        ]
    )


# -- the run ----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="objects read by get_many (default 2000)")
    parser.add_argument("--size", type=int, default=64 * 1024, help="bytes per object (default 65536)")
    parser.add_argument("--zarr3-grid", type=int, default=64, help="the zarr 3 array is N x N chunks (64)")
    parser.add_argument("--zarr3-chunk", type=int, default=32, help="a chunk is N x N float32 (32: 4 KiB)")
    parser.add_argument("--cache-count", type=int, default=1000, help="chunks read through the cache (1000)")
    parser.add_argument("--cache-size", type=int, default=16 * 1024, help="bytes per cached chunk (16384)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each way's best counts (default 3)")
    parser.add_argument("--zarr3-repeat", type=int, default=2, help="rounds of the zarr 3 table (default 2)")
    parser.add_argument("--slow-repeat", type=int, default=1, help="rounds the s3fs ways run in (default 1)")
    parser.add_argument("--server", choices=["process", "thread"], default="process", help="where moto runs")
    parser.add_argument("--only", default="1,2,3", help="the tables to run, e.g. 1,3 (default all)")
    parser.add_argument("--moto-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--zarr2-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--zarr3-worker", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if args.moto_server:
        serve_moto()
        return
    if args.zarr2_worker:
        zarr2_worker(args)
        return
    if args.zarr3_worker:
        print(zarr3_table(args), flush=True)
        print(flush=True)
        return

    only = {part.strip() for part in args.only.split(",")}
    print(machine_description(["obstore", "s3fs", "moto", "zarr", "anyio"]))
    if args.server == "thread":
        print("moto's S3 server runs in a thread of the benchmark's process: CPU times include the server's")
    else:
        print("moto's S3 server runs in a process of its own: CPU times are the client's alone")
    print()
    try:
        server = S3Server(args.server)
    except Skipped as skip:
        print(f"bench_objectstore: skipped ({skip})")
        return
    try:
        if "1" in only:
            print(get_many_table(server, args), flush=True)
            print(flush=True)
        if "2" in only:
            section = zarr3_section(args, argv)
            if section is not None:
                print(section)
                print(flush=True)
        if "3" in only:
            print(cache_table(server, args, argv), flush=True)
            print(flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
