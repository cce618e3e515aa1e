"""``aiostore serve`` of an LMDB store against Starlette's ``StaticFiles`` over a directory.

Issue 14's load test. The same ``--count`` small chunks (``--size`` bytes each, keys
like zarr 3 chunk keys, ``arr/c/i/j``) are written as files in a directory and as
values in an LMDB database, and served on loopback by

- Starlette's ``StaticFiles`` over the directory, on uvicorn (what a zarr directory on a
  plain static web server gets), and
- ``aiostore serve lmdb://...`` (uvicorn too, so the HTTP layer is the same; ``--backend
  trio`` adds a row for hypercorn under trio),

each in a process of its own. The load comes from another process (its own GIL): an
aiohttp client with ``--concurrency`` concurrent clients, each over its own kept-alive
connection, each requesting a random chunk after another, for ``--seconds`` seconds
or ``--requests`` requests, whichever comes first. Every answer is checked (status 200
and the chunk's size; the first of each client byte for byte). The servers run in
turns, ``--rounds`` times (each round after a warm-up of one second), and the round
with the most requests per second counts. Printed: requests per second, latency
percentiles, errors, and the ratio to StaticFiles.

Run on a quiet machine (both processes want a core each)::

    python benchmarks/bench_serve.py [--count N] [--size BYTES] [--concurrency C]
                                     [--seconds T] [--requests N] [--rounds R] [--trio]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from _common import machine_description

HERE = os.path.dirname(os.path.abspath(__file__))


def chunk_keys(count: int) -> list[str]:
    side = max(1, int(count**0.5))
    return [f"arr/c/{i // side}/{i % side}" for i in range(count)]


def chunk_value(key: str, size: int) -> bytes:
    seed = key.encode()
    return (seed * (size // len(seed) + 1))[:size]


def write_data(root: str, keys: list[str], size: int) -> tuple[str, str]:
    """The chunks as files under root/files and as an LMDB database root/data.mdb."""
    import aiostore.sync

    files = os.path.join(root, "files")
    for key in keys:
        path = os.path.join(files, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(chunk_value(key, size))
    mdb = os.path.join(root, "data.mdb")
    store = aiostore.sync.LMDBStore(mdb)
    store.setitems({key: chunk_value(key, size) for key in keys})
    store.close()
    return files, mdb


# -- the StaticFiles server (a role of this script) ---------------------------------------------


def run_static_server(directory: str) -> None:
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    app = Starlette(routes=[Mount("/", app=StaticFiles(directory=directory))])
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    print(f"Serving {directory} at http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, log_config=None, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])


# -- the load generator (a role of this script) ------------------------------------------------


async def generate_load(
    url: str, keys: list[str], size: int, concurrency: int, seconds: float, limit: int
) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors: list[str] = []
    count = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def client(session: aiohttp.ClientSession, rng: random.Random) -> None:
        nonlocal count
        first = True
        while count < limit and time.perf_counter() < deadline:
            count += 1
            key = keys[rng.randrange(len(keys))]
            start = time.perf_counter()
            try:
                async with session.get(url + key) as reply:
                    body = await reply.read()
                    status = reply.status
            except Exception as exc:  # a failed request is counted, never fatal
                errors.append(f"{key}: {type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200 or len(body) != size or (first and body != chunk_value(key, size)):
                errors.append(f"{key}: status {status}, {len(body)} bytes")
            first = False

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session, random.Random(i)) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3 if latencies else float("nan")
        )

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": pct(0.50),
        "p90": pct(0.90),
        "p99": pct(0.99),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


# -- the conductor ---------------------------------------------------------------------------------

_URL = re.compile(r" at (http://\S+)$")


@contextlib.contextmanager
def server(command: list[str]) -> Iterator[str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        match = _URL.search(line.strip())
        if match is None:
            proc.kill()
            raise RuntimeError(f"{command} printed {line!r}: {proc.communicate()[1]}")
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def aiostore_serve() -> list[str]:
    try:
        from aiostore.cli import cli

        if "serve" in cli.commands:
            return [sys.executable, "-m", "aiostore", "serve"]
    except ImportError:
        pass
    return [sys.executable, "-m", "aiostore.cli.serve"]


def load(url: str, keys_file: str, args: argparse.Namespace, seconds: float) -> dict:
    command = [
        sys.executable,
        __file__,
        "--role",
        "load",
        "--url",
        url,
        "--keys-file",
        keys_file,
        "--size",
        str(args.size),
        "--concurrency",
        str(args.concurrency),
        "--seconds",
        str(seconds),
        "--requests",
        str(args.requests),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="chunks")
    parser.add_argument("--size", type=int, default=4096, help="bytes per chunk")
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round, at most")
    parser.add_argument("--requests", type=int, default=100_000, help="per round, at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trio", action="store_true", help="also aiostore serve --backend trio (hypercorn)")
    parser.add_argument("--role", choices=["conductor", "static", "load"], default="conductor")
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "static":
        run_static_server(args.root)
        return
    if args.role == "load":
        with open(args.keys_file) as f:
            keys = f.read().split()
        result = asyncio.run(
            generate_load(args.url, keys, args.size, args.concurrency, args.seconds, args.requests)
        )
        print(json.dumps(result))
        return

    keys = chunk_keys(args.count)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        files, mdb = write_data(tmp, keys, args.size)
        keys_file = os.path.join(tmp, "keys.txt")
        with open(keys_file, "w") as f:
            f.write("\n".join(keys))
        ways = {
            "Starlette StaticFiles (directory), uvicorn": [
                sys.executable,
                __file__,
                "--role",
                "static",
                "--root",
                files,
            ],
            "aiostore serve lmdb://, uvicorn": [
                *aiostore_serve(),
                f"lmdb://{mdb}",
                "--port",
                "0",
                "--log-level",
                "warning",
            ],
        }
        if args.trio:
            ways["aiostore serve lmdb://, hypercorn (trio)"] = [
                *ways["aiostore serve lmdb://, uvicorn"],
                "--backend",
                "trio",
            ]
        best: dict[str, dict] = {}
        for round_ in range(args.rounds):
            for name, command in ways.items():
                with server(command) as url:
                    load(url, keys_file, args, seconds=1.0)  # warm-up: connections, page cache, imports
                    result = load(url, keys_file, args, seconds=args.seconds)
                print(
                    f"round {round_ + 1}: {name}: {result['rps']:.0f} req/s, errors {result['errors']}",
                    file=sys.stderr,
                )
                if name not in best or result["rps"] > best[name]["rps"]:
                    best[name] = result

    print(machine_description(["starlette", "uvicorn", "hypercorn", "aiohttp", "lmdb", "anyio"]))
    print()
    print(
        f"**HTTP GETs of {args.count:,} chunks of {args.size:,} bytes: {args.concurrency} concurrent clients "
        f"(aiohttp, another process), {args.seconds:g} s per round, best of {args.rounds}**"
    )
    print()
    print("| server | requests/s | p50 ms | p90 ms | p99 ms | requests | errors | vs StaticFiles |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = best["Starlette StaticFiles (directory), uvicorn"]["rps"]
    for name, r in best.items():
        print(
            f"| {name} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | "
            f"{r['requests']:,} | {r['errors']} | {r['rps'] / base:.2f}x |"
        )
    ok = all(r["errors"] == 0 for r in best.values())
    faster = best["aiostore serve lmdb://, uvicorn"]["rps"] >= base
    print()
    print(
        f"Target: no errors ({'met' if ok else 'MISSED'}); aiostore serve of LMDB at least as fast as "
        f"StaticFiles for small chunks ({'met' if faster else 'MISSED'})."
    )
    for name, r in best.items():
        if r["first_errors"]:
            print(f"{name}: first errors: {r['first_errors']}")


if __name__ == "__main__":
    main()
