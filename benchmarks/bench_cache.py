"""aiostore's LRUStoreCache against zarr 2.18's, in front of a store 5 ms away.

Issue 5's benchmark. In one run, on the same 1,000 chunks of 16 KiB (``--count``,
``--size``) of an uncompressed zarr 2 array:

* **cold reads**: a fresh cache each time, in front of a store that answers
  every request after 5 ms (``--latency``). The aiostore store wrapper is an
  object store's model: a batch is one request per key, sent concurrently, at
  most 64 in flight (``--in-flight``; an HTTP connection pool; see
  :class:`LatencyStore` for how it is simulated). zarr 2.18's
  LRUStoreCache sits in front of a ``MutableMapping`` whose every call sleeps
  5 ms. The headline way is the user's: ``prefetch(keys)``, then a reader that
  asks for chunk after chunk, as zarr 2 code does.
* **warm reads**: every value already cached (``--warm-count`` keys of 100 B);
  how many keys a second one batch read serves from memory.

Async ways are timed inside their event loop (starting the loop is not
counted). Fast ways take turns for ``--repeat`` rounds, best round counts;
ways that take seconds (a request per key, one after the other) run once.
Every way's result is checked against the data (untimed), and so is the
number of requests that reached the store.

Run::

    python benchmarks/bench_cache.py [--count N] [--size BYTES] [--latency S] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
from _common import Row, format_table, interleaved_best, machine_description, time_once, time_once_async

import aiostore
import aiostore.sync
from aiostore.abc import Buffer, ByteRange, slice_byte_range

COLD_BASELINE = "aiostore sync LRUStoreCache: prefetch(keys), then cache[key] per key"
WARM_BASELINE = "aiostore LRUStoreCache.get_many (asyncio)"
MAX_SIZE = 2**30


class _Slots:
    """``in_flight`` request slots of one event loop, taken a wave at a time."""

    def __init__(self, total: int) -> None:
        self.free = total
        self.waiters: list[anyio.Event] = []

    async def take(self, wanted: int) -> int:
        while not self.free:
            event = anyio.Event()
            self.waiters.append(event)
            await event.wait()
        taken = min(self.free, wanted)
        self.free -= taken
        return taken

    def give(self, count: int) -> None:
        self.free += count
        waiters, self.waiters = self.waiters, []
        for event in waiters:
            event.set()


_SLOTS: anyio.lowlevel.RunVar[_Slots] = anyio.lowlevel.RunVar("bench_cache_slots")


class LatencyStore(aiostore.Store):
    """A remote store's model: every request takes ``latency`` seconds, and at
    most ``in_flight`` requests (per event loop) are under way at once; a batch
    is one request per key, sent concurrently.

    The requests of a batch go out in waves (as many as there are free slots,
    all answered ``latency`` later) rather than one task per request: the
    same timing, without charging the simulation's own Python overhead to the
    cache being measured (a real object store client does this work in C/Rust).
    """

    def __init__(self, data: dict[str, bytes], latency: float, in_flight: int) -> None:
        super().__init__()
        self.data = data
        self.latency = latency
        self.in_flight = in_flight
        self.requests = 0
        self._count = threading.Lock()

    async def _requests(self, count: int) -> None:
        """Send ``count`` requests and wait for every answer."""
        try:
            slots = _SLOTS.get()
        except LookupError:
            slots = _Slots(self.in_flight)
            _SLOTS.set(slots)
        left = count
        while left:
            taken = await slots.take(left)
            try:
                await anyio.sleep(self.latency)
            finally:
                slots.give(taken)
            left -= taken
        with self._count:
            self.requests += count

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        await self._requests(1)
        return slice_byte_range(self.data[key], byte_range)

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        await self._requests(len(keys))
        return {key: self.data[key] for key in keys if key in self.data}

    async def _set(self, key: str, value: Buffer) -> None:
        await self._requests(1)
        self.data[key] = bytes(value)

    async def _delete(self, key: str) -> None:
        await self._requests(1)
        del self.data[key]

    async def _contains(self, key: str) -> bool:
        await self._requests(1)
        return key in self.data

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        await self._requests(1)
        for key in list(self.data):
            if key.startswith(prefix):
                yield key


class LatencyMapping(MutableMapping[str, bytes]):
    """The same store for zarr 2: every call sleeps ``latency`` seconds."""

    def __init__(self, data: dict[str, bytes], latency: float) -> None:
        self.data = data
        self.latency = latency
        self.requests = 0

    def _request(self) -> None:
        time.sleep(self.latency)
        self.requests += 1

    def __getitem__(self, key: str) -> bytes:
        self._request()
        return self.data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self._request()
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        self._request()
        del self.data[key]

    def __contains__(self, key: object) -> bool:
        self._request()
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        self._request()
        return iter(list(self.data))

    def __len__(self) -> int:
        self._request()
        return len(self.data)


def array_data(count: int, size: int) -> tuple[dict[str, bytes], list[str]]:
    """A zarr 2 array of ``count`` uncompressed float64 chunks of ``size`` bytes."""
    per_chunk = size // 8
    meta = {
        "zarr_format": 2,
        "shape": [count * per_chunk],
        "chunks": [per_chunk],
        "dtype": "<f8",
        "compressor": None,
        "fill_value": 0.0,
        "order": "C",
        "filters": None,
    }
    data = {".zarray": json.dumps(meta).encode()}
    keys = [str(i) for i in range(count)]
    for i, key in enumerate(keys):
        data[key] = (float(i)).hex().encode().ljust(per_chunk * 8, b"\0")[: per_chunk * 8]
    return data, keys


def zarr2() -> Any:
    """zarr 2, or None when it is not installed."""
    try:
        import zarr
    except ImportError:
        return None
    return zarr if zarr.__version__.startswith("2.") else None


def cold_ways(args: argparse.Namespace) -> tuple[dict[str, Callable[[int], float]], dict[str, Any]]:
    """The cold-read ways: ``{name: run(round) -> seconds}``, fast and slow."""
    data, keys = array_data(args.count, args.size)
    expected = {k: data[k] for k in keys}
    fast: dict[str, Callable[[int], float]] = {}
    slow: dict[str, Callable[[int], float]] = {}

    def remote() -> LatencyStore:
        return LatencyStore(data, args.latency, args.in_flight)

    def check(got: dict[str, bytes] | list[bytes], store: LatencyStore | LatencyMapping, most: int) -> None:
        values = got if isinstance(got, list) else [got[k] for k in keys]
        assert values == [expected[k] for k in keys], "wrong values"
        assert store.requests <= most, f"{store.requests} requests reached the store, expected <= {most}"

    def sync_prefetch(_: int) -> float:
        store = remote()
        cache = aiostore.sync.LRUStoreCache(store, max_size=MAX_SIZE)

        def read() -> list[bytes]:
            cache.prefetch(keys)
            return [cache[k] for k in keys]

        seconds, got = time_once(read)
        check(got, store, len(keys))
        cache.close()
        return seconds

    fast[COLD_BASELINE] = sync_prefetch

    def async_prefetch(backend: str) -> Callable[[int], float]:
        def run(_: int) -> float:
            async def measure() -> float:
                store = remote()
                async with aiostore.LRUStoreCache(store, max_size=MAX_SIZE) as cache:

                    async def read() -> list[bytes]:
                        cache.prefetch(keys)
                        return [await cache.get(k) for k in keys]

                    seconds, got = await time_once_async(read)
                check(got, store, len(keys))
                return seconds

            return anyio.run(measure, backend=backend)

        return run

    fast["aiostore LRUStoreCache (asyncio): prefetch(keys), then await get(key) per key"] = async_prefetch(
        "asyncio"
    )
    fast["aiostore LRUStoreCache (trio): prefetch(keys), then await get(key) per key"] = async_prefetch(
        "trio"
    )

    def async_get_many(_: int) -> float:
        async def measure() -> float:
            store = remote()
            async with aiostore.LRUStoreCache(store, max_size=MAX_SIZE) as cache:
                seconds, got = await time_once_async(lambda: cache.get_many(keys))
            check(got, store, len(keys))
            return seconds

        return anyio.run(measure)

    fast["aiostore LRUStoreCache.get_many(keys) (asyncio)"] = async_get_many

    def sync_getitems(_: int) -> float:
        store = remote()
        cache = aiostore.sync.LRUStoreCache(store, max_size=MAX_SIZE)
        seconds, got = time_once(lambda: cache.getitems(keys, contexts={}))
        check(got, store, len(keys))
        cache.close()
        return seconds

    fast["aiostore sync LRUStoreCache.getitems(keys)"] = sync_getitems

    def sync_per_key(_: int) -> float:
        store = remote()
        cache = aiostore.sync.LRUStoreCache(store, max_size=MAX_SIZE)
        seconds, got = time_once(lambda: [cache[k] for k in keys])
        check(got, store, len(keys))
        cache.close()
        return seconds

    slow["aiostore sync LRUStoreCache: cache[key] per key, no prefetch"] = sync_per_key

    zarr = zarr2()
    if zarr is not None:

        def zarr_per_key(_: int) -> float:
            store = LatencyMapping(data, args.latency)
            cache = zarr.LRUStoreCache(store, max_size=MAX_SIZE)
            seconds, got = time_once(lambda: [cache[k] for k in keys])
            check(got, store, len(keys))
            return seconds

        slow["zarr 2.18 LRUStoreCache: cache[key] per key"] = zarr_per_key

        def array_read(make_cache: Callable[[], Any], store: Any) -> float:
            z = zarr.open_array(make_cache(), mode="r")  # reads the metadata, untimed
            before = store.requests
            seconds, got = time_once(lambda: z[:])
            per_chunk = args.size // 8
            assert got.shape == (args.count * per_chunk,)
            assert got[per_chunk : 2 * per_chunk].tobytes() == expected["1"], "wrong values"
            assert store.requests - before <= 2 * len(keys)
            return seconds

        def zarr_array(_: int) -> float:
            store = LatencyMapping(data, args.latency)
            return array_read(lambda: zarr.LRUStoreCache(store, max_size=MAX_SIZE), store)

        def aiostore_array(_: int) -> float:
            store = remote()
            return array_read(lambda: aiostore.sync.LRUStoreCache(store, max_size=MAX_SIZE), store)

        fast["zarr 2.18 Array z[:] through aiostore's sync LRUStoreCache"] = aiostore_array
        slow["zarr 2.18 Array z[:] through zarr 2.18's LRUStoreCache"] = zarr_array
    return fast, slow


def warm_ways(args: argparse.Namespace) -> dict[str, Callable[[int], float]]:
    """The warm-read ways: every key cached before the timing starts."""
    keys = [f"w/{i}" for i in range(args.warm_count)]
    data = {k: i.to_bytes(4, "little") * 25 for i, k in enumerate(keys)}
    ways: dict[str, Callable[[int], float]] = {}

    def check(got: dict[str, bytes] | list[bytes]) -> None:
        values = got if isinstance(got, list) else [got[k] for k in keys]
        assert len(values) == len(keys) and values[-1] == data[keys[-1]], "wrong values"

    def async_warm(backend: str) -> Callable[[int], float]:
        def run(_: int) -> float:
            async def measure() -> float:
                store = LatencyStore(data, args.latency, args.in_flight)
                async with aiostore.LRUStoreCache(store, max_size=MAX_SIZE) as cache:
                    await cache.get_many(keys)
                    requests = store.requests
                    seconds, got = await time_once_async(lambda: cache.get_many(keys))
                    assert store.requests == requests, "a warm read reached the store"
                check(got)
                return seconds

            return anyio.run(measure, backend=backend)

        return run

    ways[WARM_BASELINE] = async_warm("asyncio")
    ways["aiostore LRUStoreCache.get_many (trio)"] = async_warm("trio")

    def sync_warm(remote: bool) -> Callable[[int], float]:
        def run(_: int) -> float:
            store: Any = LatencyStore(data, args.latency, args.in_flight) if remote else dict(data)
            cache = aiostore.sync.LRUStoreCache(store, max_size=MAX_SIZE)
            cache.getitems(keys, contexts={})
            seconds, got = time_once(lambda: cache.getitems(keys, contexts={}))
            check(got)
            cache.close()
            return seconds

        return run

    ways["aiostore sync LRUStoreCache.getitems (store 5 ms away)"] = sync_warm(True)
    ways["aiostore sync LRUStoreCache.getitems (over a dict)"] = sync_warm(False)

    zarr = zarr2()
    if zarr is not None:

        def zarr_warm(batch: bool) -> Callable[[int], float]:
            def run(_: int) -> float:
                cache = zarr.LRUStoreCache(dict(data), max_size=MAX_SIZE)
                cache.getitems(keys, contexts={})
                if batch:
                    seconds, got = time_once(lambda: cache.getitems(keys, contexts={}))
                else:
                    seconds, got = time_once(lambda: [cache[k] for k in keys])
                check(got)
                return seconds

            return run

        ways["zarr 2.18 LRUStoreCache.getitems"] = zarr_warm(True)
        ways["zarr 2.18 LRUStoreCache[key] per key"] = zarr_warm(False)
    return ways


NOTES = {
    COLD_BASELINE: "a zarr-2-style reader; hits and waits in the caller's thread",
    "aiostore LRUStoreCache.get_many(keys) (asyncio)": "one batch, no prefetch",
    "aiostore sync LRUStoreCache.getitems(keys)": "one batch, no prefetch",
    "aiostore sync LRUStoreCache: cache[key] per key, no prefetch": (
        "a request per key, in turn; each miss hops to the background loop and back"
    ),
    "zarr 2.18 LRUStoreCache: cache[key] per key": "a request per key, in turn",
    "zarr 2.18 Array z[:] through aiostore's sync LRUStoreCache": "zarr 2 calls getitems: one batch",
    "zarr 2.18 Array z[:] through zarr 2.18's LRUStoreCache": "getitems = contains + get, per key",
    "aiostore sync LRUStoreCache.getitems (store 5 ms away)": "in the caller's thread: no portal hop",
    "aiostore sync LRUStoreCache.getitems (over a dict)": "in the caller's thread",
    "zarr 2.18 LRUStoreCache.getitems": "zarr 2's batch read: contains + get per key",
}


def rows(best: dict[str, float | Exception], keys: int) -> list[Row]:
    out = []
    for name, seconds in best.items():
        if isinstance(seconds, Exception):
            out.append(Row(name, None, f"failed: {seconds!r}"))
            continue
        rate = f"{keys / seconds / 1e6:.2f} M keys/s" if keys >= 10_000 else ""
        note = "; ".join(n for n in (NOTES.get(name, ""), rate) if n)
        out.append(Row(name, seconds, note))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="chunks read cold")
    parser.add_argument("--size", type=int, default=16384, help="bytes per chunk")
    parser.add_argument("--latency", type=float, default=0.005, help="seconds per request")
    parser.add_argument("--in-flight", type=int, default=64, help="requests at once (aiostore's store)")
    parser.add_argument("--warm-count", type=int, default=100_000, help="keys read warm")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(machine_description(["anyio", "trio", "zarr"]))
    print()
    fast, slow = cold_ways(args)
    cold = interleaved_best(fast, args.repeat)
    cold.update(interleaved_best(slow, 1))
    title = (
        f"Cold reads: {args.count:,} chunks of {args.size // 1024} KiB, {args.latency * 1000:g} ms per "
        f"request (aiostore's store: at most {args.in_flight} requests in flight)"
    )
    print(format_table(title, rows(cold, args.count), baseline=COLD_BASELINE, label="aiostore prefetch"))
    print()
    warm = interleaved_best(warm_ways(args), args.repeat)
    title = f"Warm reads: {args.warm_count:,} keys of 100 B, all cached, one batch"
    print(format_table(title, rows(warm, args.warm_count), baseline=WARM_BASELINE, label="aiostore asyncio"))
    print()
    zarr_cold = cold.get("zarr 2.18 LRUStoreCache: cache[key] per key")
    ours = cold[COLD_BASELINE]
    if isinstance(zarr_cold, float) and isinstance(ours, float):
        speedup = zarr_cold / ours
        print(f"Cold read, aiostore prefetch vs zarr 2.18 LRUStoreCache: {speedup:.0f}x faster (target 50x)")
    warm_best = warm[WARM_BASELINE]
    if isinstance(warm_best, float):
        print(f"Warm get_many: {args.warm_count / warm_best / 1e6:.2f} M keys/s (target 1 M keys/s)")


if __name__ == "__main__":
    main()
