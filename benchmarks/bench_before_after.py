"""aiostore against an earlier aiostore: the same workloads, two source trees, one run.

For the architecture change (issue 9) the question is whether any operation got
slower. This script checks out ``--before`` (a git ref) into a worktree under
``.nox/``, then runs each workload in a fresh subprocess against that tree and
against this one, alternating (before, after, before, after, ...), and keeps each
side's best round. Only public API that both trees have is used: the async methods,
the sync twins' ``getitems``/``setitems``/``__getitem__``, ``LRUStoreCache`` and, with
a Python that has zarr 3 (``$AIOSTORE_BENCH_ZARR3_PYTHON``), ``ZarrStore``, and with
one that has zarr 2 (``$AIOSTORE_BENCH_ZARR2_PYTHON``), zarr 2 arrays on the sync store.

    python benchmarks/bench_before_after.py --before e87e9e8 --rounds 5

Prints one Markdown table; the ratio column is after / before (below 1 is faster).
The spread column is the largest relative difference between a side's rounds: a
ratio within it is noise.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_description

HERE = pathlib.Path(__file__).resolve().parent.parent

# Each workload is a script run as ``python -c``: it builds its data, times the
# operation (best of 3 inside the process) and prints {"seconds": ...}.
PRELUDE = """
import anyio, gc, json, os, shutil, tempfile, time
import aiostore, aiostore.sync
def best(run, before=None, repeat=3):
    times = []
    for _ in range(repeat):
        if before: before()
        gc.collect(); t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    return min(times)
# The data is written once per workload and read by every later round, of both trees.
tmp = os.path.join(os.environ["BENCH_DIR"], os.environ["BENCH_WORKLOAD"])
fresh = not os.path.exists(tmp)
os.makedirs(tmp, exist_ok=True)
def done(seconds):
    print(json.dumps({"seconds": seconds}))
"""

WORKLOADS: dict[str, str] = {
    "Directory: async get_many, 10,000 x 16 KiB (warm)": """
keys = [f"c/{i}" for i in range(10_000)]
if fresh: aiostore.sync.DirectoryStore(tmp).setitems({k: os.urandom(16384) for k in keys})
store = aiostore.DirectoryStore(tmp)
done(best(lambda: anyio.run(store.get_many, keys)))
""",
    "Directory: sync getitems, 10,000 x 16 KiB (warm)": """
keys = [f"c/{i}" for i in range(10_000)]
store = aiostore.sync.DirectoryStore(tmp)
if fresh: store.setitems({k: os.urandom(16384) for k in keys})
done(best(lambda: store.getitems(keys, contexts={})))
""",
    "Directory: sync store[key], 5,000 x 16 KiB (zarr 2 per-key reads)": """
keys = [f"c/{i}" for i in range(5_000)]
store = aiostore.sync.DirectoryStore(tmp)
if fresh: store.setitems({k: os.urandom(16384) for k in keys})
done(best(lambda: [store[k] for k in keys]))
""",
    "Directory: async gathered single gets, 5,000 x 16 KiB": """
keys = [f"c/{i}" for i in range(5_000)]
if fresh: aiostore.sync.DirectoryStore(tmp).setitems({k: os.urandom(16384) for k in keys})
store = aiostore.DirectoryStore(tmp)
async def gathered():
    async with anyio.create_task_group() as tg:
        for k in keys:
            tg.start_soon(store.get, k)
done(best(lambda: anyio.run(gathered)))
""",
    "Directory: async set_many, 2,000 x 16 KiB": """
values = {f"c/{i}": os.urandom(16384) for i in range(2_000)}
root = os.path.join(tmp, "w")
store = aiostore.DirectoryStore(root)
done(best(lambda: anyio.run(store.set_many, values), before=lambda: shutil.rmtree(root, ignore_errors=True)))
""",
    "Directory: async get_many, 10,000 x 16 KiB (cold: evicted with posix_fadvise)": """
keys = [f"c/{i}" for i in range(10_000)]
if fresh: aiostore.sync.DirectoryStore(tmp).setitems({k: os.urandom(16384) for k in keys})
def evict():
    os.sync()
    for k in keys:
        fd = os.open(os.path.join(tmp, k), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
store = aiostore.DirectoryStore(tmp)
done(best(lambda: anyio.run(store.get_many, keys), before=evict))
""",
    "Directory: sync getitems, 10,000 x 16 KiB (cold: evicted with posix_fadvise)": """
keys = [f"c/{i}" for i in range(10_000)]
store = aiostore.sync.DirectoryStore(tmp)
if fresh: store.setitems({k: os.urandom(16384) for k in keys})
def evict():
    os.sync()
    for k in keys:
        fd = os.open(os.path.join(tmp, k), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
done(best(lambda: store.getitems(keys, contexts={}), before=evict))
""",
    "Directory: sync setitems, 2,000 x 16 KiB": """
values = {f"c/{i}": os.urandom(16384) for i in range(2_000)}
root = os.path.join(tmp, "w")
def fresh_root():
    shutil.rmtree(root, ignore_errors=True); os.makedirs(root); os.sync()
store = aiostore.sync.DirectoryStore(root)
done(best(lambda: store.setitems(values), before=fresh_root))
""",
    "LMDB: async get_many, 50,000 x 4 KiB": """
keys = [f"c/{i}" for i in range(50_000)]
store = aiostore.LMDBStore(os.path.join(tmp, "x.mdb"))
if fresh: anyio.run(store.set_many, {k: os.urandom(4096) for k in keys})
done(best(lambda: anyio.run(store.get_many, keys)))
""",
    "LMDB: sync getitems, 50,000 x 4 KiB": """
keys = [f"c/{i}" for i in range(50_000)]
store = aiostore.sync.LMDBStore(os.path.join(tmp, "x.mdb"))
if fresh: store.setitems({k: os.urandom(4096) for k in keys})
done(best(lambda: store.getitems(keys, contexts={})))
""",
    "LMDB: async set_many, 20,000 x 4 KiB": """
values = {f"c/{i}": os.urandom(4096) for i in range(20_000)}
store = aiostore.LMDBStore(os.path.join(tmp, "x.mdb"))
done(best(lambda: anyio.run(store.set_many, values)))
""",
    "Zip: async get_many, 10,000 x 16 KiB (stored)": """
keys = [f"c/{i}" for i in range(10_000)]
path = os.path.join(tmp, "x.zip")
if fresh:
    with aiostore.sync.ZipStore(path, mode="w") as w:
        w.setitems({k: os.urandom(16384) for k in keys})
store = aiostore.ZipStore(path, mode="r")
done(best(lambda: anyio.run(store.get_many, keys)))
""",
    "Cache: warm sync getitems, 100,000 keys": """
keys = [f"c/{i}" for i in range(100_000)]
cache = aiostore.sync.LRUStoreCache(aiostore.MemoryStore(), max_size=None)
cache.setitems({k: b"x" * 64 for k in keys})
cache.getitems(keys, contexts={})
done(best(lambda: cache.getitems(keys, contexts={})))
""",
    "Cache: cold async get_many after prefetch, 1,000 keys at 5 ms a request": """
from aiostore.abc import Store
class Remote(Store):
    def __init__(self, data):
        super().__init__(); self.data = data
    async def _get(self, key, byte_range):
        await anyio.sleep(0.005)
        value = self.data[key]
        return value if byte_range is None else value[slice(*byte_range)]
    async def _get_many(self, keys):
        found = {}
        async def one(k):
            try: found[k] = await self._get(k, None)
            except KeyError: pass
        async with anyio.create_task_group() as tg:
            for k in keys: tg.start_soon(one, k)
        return found
    async def _set(self, key, value): self.data[key] = bytes(value)
    async def _delete(self, key): del self.data[key]
    async def _contains(self, key): return key in self.data
    async def _list(self, prefix):
        for k in list(self.data):
            if k.startswith(prefix): yield k
keys = [f"c/{i}" for i in range(1_000)]
data = {k: os.urandom(16384) for k in keys}
def run():
    cache = aiostore.sync.LRUStoreCache(Remote(data), max_size=None)
    cache.prefetch(keys)
    assert len(cache.getitems(keys, contexts={})) == len(keys)
    cache.close()
done(best(run))
""",
}

ZARR3_WORKLOAD = """
import numpy as np, zarr
from aiostore.zarr3 import ZarrStore
if fresh:
    store = ZarrStore(aiostore.DirectoryStore(tmp))
    z = zarr.create_array(store, shape=(4096 * 256,), chunks=(256,), dtype="u4")
    z[:] = np.arange(4096 * 256, dtype="u4")
reader = zarr.open_array(ZarrStore(aiostore.DirectoryStore(tmp)), mode="r")
done(best(lambda: reader[:]))
"""
ZARR3_NAME = "zarr 3: full read through ZarrStore(DirectoryStore), 4,096 chunks of 1 KiB"

ZARR2_PRELUDE = """
import numpy as np, zarr
data = np.random.default_rng(0).random((2048, 2048), dtype="f4")
"""
ZARR2_WORKLOADS: dict[str, str] = {
    "zarr 2: array read through aiostore.sync.DirectoryStore, 4,096 chunks of 4 KiB": ZARR2_PRELUDE
    + """
if fresh:
    z = zarr.open_array(aiostore.sync.DirectoryStore(tmp), mode="w", shape=data.shape, chunks=(32, 32),
                        dtype="f4", compressor=None)
    z[:] = data
reader = zarr.open_array(aiostore.sync.DirectoryStore(tmp), mode="r")
done(best(lambda: reader[:]))
""",
    "zarr 2: array write through aiostore.sync.DirectoryStore, 4,096 chunks of 4 KiB": ZARR2_PRELUDE
    + """
root = os.path.join(tmp, "w")
def fresh_root():
    shutil.rmtree(root, ignore_errors=True); os.makedirs(root); os.sync()
def write():
    z = zarr.open_array(aiostore.sync.DirectoryStore(root), mode="w", shape=data.shape, chunks=(32, 32),
                        dtype="f4", compressor=None)
    z[:] = data
done(best(write, before=fresh_root))
""",
}


def worktree(ref: str) -> pathlib.Path:
    """A checkout of ``ref`` under .nox/ (made once)."""
    path = HERE / ".nox" / f"before-{ref}"
    if not path.exists():
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(path), ref], check=True)
    return path


def run_workload(python: str, tree: pathlib.Path, name: str, body: str) -> float:
    workload = re.sub(r"[^A-Za-z0-9]+", "-", name)[:60]
    env = dict(os.environ, PYTHONPATH=str(tree), BENCH_WORKLOAD=workload)
    check = (
        "import aiostore, os\n"
        "assert os.path.dirname(os.path.dirname(aiostore.__file__)) == os.environ['PYTHONPATH']\n"
    )
    done = subprocess.run(
        [python, "-c", check + PRELUDE + body],
        env=env,
        cwd=tempfile.gettempdir(),  # not this tree: "python -c" puts the working directory first
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"workload failed under {tree}:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before", default="e87e9e8", help="git ref of the earlier aiostore (default: main before issue 9)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per workload")
    parser.add_argument("--only", default="", help="run only workloads whose name has this word")
    args = parser.parse_args()
    before = worktree(args.before)
    workloads = [(name, sys.executable, body) for name, body in WORKLOADS.items()]
    zarr3_python = os.environ.get("AIOSTORE_BENCH_ZARR3_PYTHON")
    if zarr3_python:
        workloads.append((ZARR3_NAME, zarr3_python, ZARR3_WORKLOAD))
    zarr2_python = os.environ.get("AIOSTORE_BENCH_ZARR2_PYTHON")
    if zarr2_python:
        workloads.extend((name, zarr2_python, body) for name, body in ZARR2_WORKLOADS.items())
    print(machine_description(["anyio", "lmdb", "numpy"]))
    print(f"\nBefore: `{args.before}`; after: this tree. Best of {args.rounds} alternating rounds")
    print("(each round a fresh process, best of 3 runs inside it).\n")
    print("| workload | before (s) | after (s) | after / before | spread |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["BENCH_DIR"] = scratch
        for name, python, body in workloads:
            if args.only and args.only not in name:
                continue
            times: dict[str, list[float]] = {"before": [], "after": []}
            run_workload(python, HERE, name, body)  # untimed: writes the data both trees read
            os.sync()  # and lets the disk settle, so no round pays for another's writes
            for _ in range(args.rounds):
                times["before"].append(run_workload(python, before, name, body))
                times["after"].append(run_workload(python, HERE, name, body))
            b, a = min(times["before"]), min(times["after"])
            spread = max(max(t) / min(t) - 1 for t in times.values())
            print(f"| {name} | {b:.4f} | {a:.4f} | {a / b:.2f} | ±{spread:.0%} |", flush=True)


if __name__ == "__main__":
    main()
