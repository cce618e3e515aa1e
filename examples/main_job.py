"""The main job, end to end: move a zarr dataset of 100,000 chunks between backends with
the ``aiostore`` command, and time it next to zarr 2's ``zarr.copy_store``.

1. zarr 2 writes a compressed array of ~100,000 chunks (a smooth field with noise,
   Blosc/zstd, as measured data compresses) and a small group around it, through
   ``aiostore.sync.DirectoryStore``.
2. ``aiostore copy`` copies the directory into a Zip file and into an LMDB database,
   with a progress bar (plain lines when the output is not a terminal).
3. ``aiostore verify`` compares each copy with the directory, key by key and byte by
   byte; ``aiostore tree`` and ``aiostore du`` show what the Zip file holds.
4. zarr 2's ``zarr.copy_store`` makes the same two copies with zarr's own stores, and
   ``aiostore.copy_store`` again in this process (the command's time includes starting
   Python).
5. zarr 2 reads the array back from the LMDB copy and checks it against the original.

Run it with ``python examples/main_job.py [--chunks N] [--dir DIRECTORY]`` (defaults:
100,000 chunks under ``data/main_job``). Each step prints how long it took.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
import warnings

import numcodecs
import numpy as np
import zarr

import aiostore.sync


def step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def aiostore_command(*args: str) -> None:
    """Run the ``aiostore`` command (the console script's module: the same program)."""
    command = [sys.executable, "-m", "aiostore", *args]
    print("$ aiostore " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def write_dataset(path: str, chunks: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A float32 field of ``chunks`` chunks of 10 x 10, written by zarr 2."""
    side = math.isqrt(chunks)
    shape = (side * 10, (chunks // side) * 10)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype("f4") / 50.0
    rng = np.random.default_rng(0)
    data = (np.sin(x) * np.cos(y) * 100 + rng.normal(0, 0.5, shape)).round(1).astype("f4")
    store = aiostore.sync.DirectoryStore(path)
    root = zarr.group(store, overwrite=True)
    root.attrs["description"] = "aiostore's main job: a smooth field with noise"
    field = root.create_dataset(
        "measurements/field",
        shape=shape,
        chunks=(10, 10),
        dtype="f4",
        compressor=numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE),
    )
    field[...] = data
    root.create_dataset("measurements/time", data=np.arange(shape[0], dtype="i8"), chunks=(1000,))
    return data, shape


def zarr_copy(source: str, dest: str, kind: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # zarr 2.18: LMDBStore is deprecated
        target = zarr.ZipStore(dest, mode="w") if kind == "zip" else zarr.LMDBStore(dest)
    zarr.copy_store(zarr.DirectoryStore(source), target)
    if kind == "lmdb":
        target.flush()  # to disk, as aiostore's LMDBStore does when it closes
    target.close()


def aiostore_copy(source: str, dest: str, kind: str) -> None:
    """The same copy in this process: ``aiostore.sync.copy_store`` (no progress display)."""
    aiostore.sync.copy_store(source, f"{kind}://{dest}")


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks of the array (default 100,000)")
    parser.add_argument("--dir", default="data/main_job", help="where the stores go (default data/main_job)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    source = os.path.join(args.dir, "dataset.zarr")
    zip_path, lmdb_path = os.path.join(args.dir, "dataset.zip"), os.path.join(args.dir, "dataset.mdb")
    timings: dict[str, float] = {}

    start = step(f"zarr {zarr.__version__} writes ~{args.chunks:,} compressed chunks to {source}")
    data, shape = write_dataset(source, args.chunks)
    timings["write with zarr 2"] = time.perf_counter() - start
    print(f"array {shape} float32 in chunks of 10 x 10")

    for kind, dest in (("zip", zip_path), ("lmdb", lmdb_path)):
        remove(dest)
        start = step(f"aiostore copy: directory -> {kind}")
        aiostore_command("copy", source, f"{kind}://{dest}")
        timings[f"aiostore copy -> {kind}"] = time.perf_counter() - start

    for kind, dest in (("zip", zip_path), ("lmdb", lmdb_path)):
        start = step(f"aiostore verify: directory == {kind}")
        aiostore_command("verify", source, f"{kind}://{dest}")
        timings[f"aiostore verify {kind}"] = time.perf_counter() - start

    step("what the Zip file holds")
    aiostore_command("tree", f"zip://{zip_path}")
    aiostore_command("du", f"zip://{zip_path}")

    for kind in ("zip", "lmdb"):
        copy = os.path.join(args.dir, f"other-copy.{'zip' if kind == 'zip' else 'mdb'}")
        for name, way in (("zarr.copy_store", zarr_copy), ("aiostore.copy_store", aiostore_copy)):
            remove(copy)
            start = step(f"{name} in this process: directory -> {kind}")
            way(source, copy, kind)
            timings[f"{name} -> {kind}"] = time.perf_counter() - start
        remove(copy)

    start = step("zarr 2 reads the array back from the LMDB copy")
    store = aiostore.sync.LMDBStore(lmdb_path, readonly=True)
    same = bool(np.array_equal(zarr.open_array(store, path="measurements/field", mode="r")[...], data))
    store.close()
    timings["read back with zarr 2"] = time.perf_counter() - start
    print(f"equal to what was written: {same}")

    print("\n== how long each step took")
    width = max(map(len, timings))
    for name, seconds in timings.items():
        print(f"{name:<{width}}  {seconds:7.2f} s")
    print()
    for kind in ("zip", "lmdb"):
        ours, theirs = timings[f"aiostore.copy_store -> {kind}"], timings[f"zarr.copy_store -> {kind}"]
        command = timings[f"aiostore copy -> {kind}"]
        print(
            f"copy to {kind}: aiostore.copy_store {ours:.2f} s, zarr.copy_store {theirs:.2f} s "
            f"({theirs / ours:.1f}x); the aiostore command, start to exit: {command:.2f} s"
        )
    if not same:
        sys.exit("the copy read back differs from the original")


if __name__ == "__main__":
    main()
