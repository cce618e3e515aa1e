"""aiostore's DBMStore against zarr 2.18's DBMStore and a raw dbm loop.

Issue 4's DBM benchmark, for every dbm implementation this Python has (only
``dbm.dumb`` on a Python built without gdbm/ndbm): 20,000 values of 4 KiB
(``--count``, ``--size``), keys like zarr 2 chunk keys.

Reads: one ``get_many`` of every key (``getitems`` for zarr 2) from a database
written once (warm page cache). Writes: one ``set_many`` (zarr 2, which has no
``setitems``, writes key by key) into a new database, then ``close()`` -- part of
the timing, since ``dbm.dumb`` writes its index then. Every way runs ``--repeat``
times in interleaved rounds and its best run counts; each way's first result is
checked.

The database does the work here (``dbm.dumb`` opens its data file for every
read and appends to its index file for every new key), so the store can only
save its own overhead: one lock hold and one thread hop per batch, instead of a
lock and a ``key in store`` test per key.

Run::

    python benchmarks/bench_dbm.py [--count N] [--size BYTES] [--repeat R]
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import anyio
from _common import Row, format_table, interleaved_best, machine_description, time_once

import aiostore
import aiostore.sync

Way = Callable[[int], float]


def implementations() -> dict[str, Callable[..., Any]]:
    found = {}
    for name in ("dbm.gnu", "dbm.ndbm", "dbm.dumb"):
        try:
            found[name] = importlib.import_module(name).open
        except ImportError:
            pass
    return found


def zarr2_dbm_store(path: str, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr 2.18's deprecation warnings
        import zarr.storage

        return zarr.storage.DBMStore(path, **kwargs)


def check_read(found: dict[str, Any], values: dict[str, bytes]) -> None:
    assert found == values or (len(found) == len(values) and all(found[k] == v for k, v in values.items()))


def sync_way(run: Callable[[], Any], check: Callable[[Any], None] | None) -> Way:
    checked = False

    def one(_round: int) -> float:
        nonlocal checked
        seconds, result = time_once(run)
        if check is not None and not checked:
            check(result)
            checked = True
        return seconds

    return one


def async_way(backend: str, run: Callable[[], Any], check: Callable[[Any], None]) -> Way:
    async def timed() -> tuple[float, Any]:
        start = time.perf_counter()
        result = await run()
        return time.perf_counter() - start, result

    checked = False

    def one(_round: int) -> float:
        nonlocal checked
        _, (seconds, result) = time_once(lambda: anyio.run(timed, backend=backend))
        if not checked:
            check(result)
            checked = True
        return seconds

    return one


def bench_reads(opener: Callable[..., Any], root: str, values: dict[str, bytes], repeat: int) -> list[Row]:
    path = os.path.join(root, "read.db")
    with aiostore.sync.DBMStore(path, flag="n", open=opener) as store:
        store.setitems(values)
    keys = list(values)
    store = aiostore.DBMStore(path, flag="r", open=opener)
    sync_store = aiostore.sync.DBMStore(path, flag="r", open=opener)
    zarr2 = zarr2_dbm_store(path, flag="r", open=opener)
    raw = opener(path, "r")

    def raw_loop() -> dict[str, bytes]:
        db = raw
        found = {}
        for key in keys:
            try:
                found[key] = db[key.encode()]
            except KeyError:
                pass
        return found

    def check(found: Any) -> None:
        check_read(found, values)

    base = "aiostore DBMStore.get_many (asyncio)"
    ways = {
        base: async_way("asyncio", lambda: store.get_many(keys), check),
        "aiostore DBMStore.get_many (trio)": async_way("trio", lambda: store.get_many(keys), check),
        "aiostore sync DBMStore.getitems (zarr 2's call)": sync_way(
            lambda: sync_store.getitems(keys, contexts={}), check
        ),
        "raw loop: db[key] per key": sync_way(raw_loop, check),
        "zarr 2.18 DBMStore.getitems": sync_way(lambda: zarr2.getitems(keys, contexts={}), check),
    }
    notes = {
        base: "one thread hop, one lock hold",
        "aiostore DBMStore.get_many (trio)": "same",
        "aiostore sync DBMStore.getitems (zarr 2's call)": "no event loop, no thread hop",
        "raw loop: db[key] per key": "lower bound: no lock, no key checks",
        "zarr 2.18 DBMStore.getitems": "key in store, then store[key], per key",
    }
    best = interleaved_best(ways, repeat)
    anyio.run(store.aclose)
    sync_store.close()
    zarr2.close()
    raw.close()
    return [
        Row(n, None, f"failed: {b!r}") if isinstance(b, Exception) else Row(n, b, notes[n])
        for n, b in best.items()
    ]


def bench_writes(opener: Callable[..., Any], root: str, values: dict[str, bytes], repeat: int) -> list[Row]:
    counter = iter(range(10**6))

    def new_path() -> str:
        os.sync()  # the previous round's write-back stays out of this timing
        return os.path.join(root, f"w{next(counter)}.db")

    def check(path: str) -> None:
        with aiostore.sync.DBMStore(path, flag="r", open=opener) as store:
            assert store.getitems(list(values)[-3:], contexts={}) == {k: values[k] for k in list(values)[-3:]}
            assert len(store) == len(values)

    def aiostore_async(backend: str) -> Way:
        def one(_round: int) -> float:
            path = new_path()

            async def main() -> float:
                store = aiostore.DBMStore(path, flag="n", open=opener)
                start = time.perf_counter()
                await store.set_many(values)
                await store.aclose()
                return time.perf_counter() - start

            seconds = anyio.run(main, backend=backend)
            check(path)
            return seconds

        return one

    def timed_then_checked(make: Callable[[str], Any], write: Callable[[Any], None]) -> Way:
        def one(_round: int) -> float:
            path = new_path()
            target = make(path)

            def run() -> None:
                write(target)
                target.close()

            seconds, _ = time_once(run)
            check(path)
            return seconds

        return one

    def per_key(target: Any) -> None:
        for key, value in values.items():
            target[key] = value

    def per_key_raw(db: Any) -> None:
        for key, value in values.items():
            db[key.encode()] = value

    base = "aiostore DBMStore.set_many (asyncio)"
    ways = {
        base: aiostore_async("asyncio"),
        "aiostore sync DBMStore.setitems (zarr 2's call)": timed_then_checked(
            lambda p: aiostore.sync.DBMStore(p, flag="n", open=opener), lambda s: s.setitems(values)
        ),
        "raw loop: db[key] = value per key": timed_then_checked(lambda p: opener(p, "n"), per_key_raw),
        "zarr 2.18 DBMStore, store[key] = value per key": timed_then_checked(
            lambda p: zarr2_dbm_store(p, flag="n", open=opener), per_key
        ),
    }
    notes = {
        base: "one thread hop, one lock hold; close included",
        "aiostore sync DBMStore.setitems (zarr 2's call)": "no event loop, no thread hop",
        "raw loop: db[key] = value per key": "lower bound: no lock, no key checks",
        "zarr 2.18 DBMStore, store[key] = value per key": "no setitems in zarr 2: a lock hold per key",
    }
    best = interleaved_best(ways, repeat)
    return [
        Row(n, None, f"failed: {b!r}") if isinstance(b, Exception) else Row(n, b, notes[n])
        for n, b in best.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    side = int(args.count**0.5) + 1
    keys = [f"arr/{i // side}.{i % side}" for i in range(args.count)]
    values = {k: (k.encode() + b":" + bytes(args.size))[: args.size] for k in keys}
    kib = f"{args.size / 1024:g} KiB"
    print(machine_description(["zarr", "anyio", "trio"]))
    for name, opener in implementations().items():
        with tempfile.TemporaryDirectory(prefix="bench_dbm_") as root:
            print()
            title = f"{name} reads: one get_many of {args.count:,} values of {kib}"
            rows = bench_reads(opener, root, values, args.repeat)
            print(format_table(title, rows, "aiostore DBMStore.get_many (asyncio)", "aiostore"))
            print()
            title = f"{name} writes: one set_many of {args.count:,} values of {kib}, then close"
            rows = bench_writes(opener, root, values, args.repeat)
            print(format_table(title, rows, "aiostore DBMStore.set_many (asyncio)", "aiostore"), flush=True)


if __name__ == "__main__":
    main()
