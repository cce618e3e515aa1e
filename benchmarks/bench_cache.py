"""aiostore's LRUStoreCache against zarr 2.18's, in front of a store 5 ms away.

Issue 5's benchmark, with issue 12's targets. In one run, on the same 1,000
chunks of 16 KiB (``--count``, ``--size``) of an uncompressed zarr 2 array:

* **cold reads**: a fresh cache each time, in front of a store that answers
  every request after 5 ms (``--latency``). The aiostore store wrapper is an
  object store's model: a batch is one request per key, sent concurrently, at
  most 64 in flight (``--in-flight``; an HTTP connection pool; see
  :class:`LatencyStore` for how it is simulated). zarr 2.18's
  LRUStoreCache sits in front of a ``MutableMapping`` whose every call sleeps
  5 ms. The headline way is the user's: ``prefetch(keys)``, then a reader that
  asks for chunk after chunk, as zarr 2 code does. Its floor is one
  ``get_many`` of the same keys straight from the store (no cache): the
  waves of 64 requests that 1,000 keys need.
* **warm reads**: every value already cached (``--warm-count`` keys of 100 B);
  how many keys a one batch read serves from memory, against a dict
  comprehension ``{k: d[k] for k in keys}`` over a plain dict of the same keys.
  Each way reads once untimed, then the mean of five reads in a row counts
  (``--warm-repeat`` rounds, best round counts).

Targets (issue 12), each a ratio of two ways of the same run: a warm
``get_many`` (and the sync twin's ``getitems``) at most 1.3x the dict
comprehension; prefetch-then-read-key-by-key at most 1.05x the straight
``get_many``. Each is printed with met/MISSED.

Async ways are timed inside their event loop (starting the loop is not
counted). Fast ways take turns for ``--repeat`` rounds, best round counts;
ways that take seconds (a request per key, one after the other) run once.
Every way's result is checked against the data (untimed), and so is the
number of requests that reached the store.

Run::

    python benchmarks/bench_cache.py [--count N] [--size BYTES] [--latency S] [--repeat R]
        [--warm-count N] [--warm-repeat R] [--loop-timers]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import sniffio
from _common import Row, format_table, interleaved_best, machine_description, time_once, time_once_async

import aiostore
import aiostore.sync
from aiostore.abc import Buffer, ByteRange, slice_byte_range

COLD_BASELINE = "aiostore sync LRUStoreCache: prefetch(keys), then cache[key] per key"
COLD_FLOOR = "the store's own get_many(keys), no cache (asyncio): the floor"
COLD_ASYNC = "aiostore LRUStoreCache ({}): prefetch(keys), then await get(key) per key"
WARM_BASELINE = "aiostore LRUStoreCache.get_many (asyncio)"
WARM_FLOOR = "dict comprehension {k: d[k] for k in keys} over a plain dict"
MAX_SIZE = 2**30
T = TypeVar("T")
#: Issue 12's targets: warm reads / the dict comprehension; cold prefetch / the floor.
WARM_TARGET = 1.3
COLD_TARGET = 1.05


class _Network:
    """Answers that arrive at their deadline, as I/O events do.

    One thread for the process sleeps until the next deadline, then wakes the
    waiting request's event loop (``call_soon_threadsafe``, trio's
    ``run_sync_soon``) -- as a socket that becomes readable does. An event
    loop's own timers are not used: they round every wait up to the next whole
    millisecond, counted from whenever the loop last went idle, so whatever
    else the loop did meanwhile (a cache caching the previous answer) would
    stretch the store's latency by up to 1 ms a request.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        threading.Thread(target=self._serve, name="bench-network", daemon=True).start()

    def _serve(self) -> None:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait()
                    continue
                wait = self._due[0][0] - time.perf_counter()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, fire = heapq.heappop(self._due)
                try:
                    fire()
                except Exception:  # the waiter's loop has ended
                    pass

    async def until(self, deadline: float) -> None:
        """Return at ``deadline`` (a ``time.perf_counter()`` time)."""
        event = anyio.Event()
        if sniffio.current_async_library() == "trio":
            import trio

            soon = trio.lowlevel.current_trio_token().run_sync_soon
        else:
            soon = asyncio.get_running_loop().call_soon_threadsafe
        with self._cond:
            heapq.heappush(self._due, (deadline, next(self._order), lambda: soon(event.set)))
            self._cond.notify()
        await event.wait()


_NETWORK: _Network | None = None
_NETWORK_LOCK = threading.Lock()


def _network() -> _Network:
    global _NETWORK
    with _NETWORK_LOCK:
        if _NETWORK is None:
            _NETWORK = _Network()
        return _NETWORK


class _Waiter:
    """A request waiting for a slot, and the slots it was given."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.given = 0
        self.sent = 0.0
        self.event = anyio.Event()


class _Slots:
    """``in_flight`` request slots of one event loop: a connection pool.

    Slots that answers free go at once to the requests waiting for them, first
    come first served, and those requests are sent then (as a pool sends a
    queued request on the connection just freed): a request sent later cannot
    take them first.
    """

    def __init__(self, total: int) -> None:
        self.free = total
        self.waiting: deque[_Waiter] = deque()

    async def take(self, wanted: int) -> tuple[int, float]:
        """Up to ``wanted`` slots, as soon as there are some; and when they were taken."""
        if self.free and not self.waiting:
            taken = min(self.free, wanted)
            self.free -= taken
            return taken, time.perf_counter()
        waiter = _Waiter(wanted)
        self.waiting.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.given:
                self.give(waiter.given)
            else:
                self.waiting.remove(waiter)
            raise
        return waiter.given, waiter.sent

    def give(self, count: int) -> None:
        self.free += count
        now = time.perf_counter()
        while self.free and self.waiting:
            waiter = self.waiting.popleft()
            waiter.given = min(self.free, waiter.wanted)
            waiter.sent = now
            self.free -= waiter.given
            waiter.event.set()


class _LoopTimerSlots:
    """The model before issue 12 (``--loop-timers``): free slots go to whoever asks
    first after an answer (all waiters are woken), and latency is the event
    loop's own ``sleep``."""

    def __init__(self, total: int) -> None:
        self.free = total
        self.waiters: list[anyio.Event] = []

    async def take(self, wanted: int) -> tuple[int, float]:
        while not self.free:
            event = anyio.Event()
            self.waiters.append(event)
            await event.wait()
        taken = min(self.free, wanted)
        self.free -= taken
        return taken, time.perf_counter()

    def give(self, count: int) -> None:
        self.free += count
        waiters, self.waiters = self.waiters, []
        for event in waiters:
            event.set()


_SLOTS: anyio.lowlevel.RunVar[_Slots | _LoopTimerSlots] = anyio.lowlevel.RunVar("bench_cache_slots")


class LatencyStore(aiostore.Store):
    """A remote store's model: every request takes ``latency`` seconds, and at
    most ``in_flight`` requests (per event loop) are under way at once; a batch
    is one request per key, sent concurrently.

    The requests of a batch go out in waves (as many as there are free slots,
    all answered ``latency`` later) rather than one task per request: the
    same timing, without charging the simulation's own Python overhead to the
    cache being measured (a real object store client does this work in C/Rust).
    Slots freed go to waiting requests first come first served, and answers
    arrive at their deadline as I/O events (see :class:`_Slots` and
    :class:`_Network`); ``loop_timers=True`` is the earlier model
    (:class:`_LoopTimerSlots`), whose answers came late by however long the
    event loop had been busy since it last went idle, up to 1 ms each.
    """

    #: Use the earlier model (``--loop-timers``).
    loop_timers = False

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
            slots = _LoopTimerSlots(self.in_flight) if self.loop_timers else _Slots(self.in_flight)
            _SLOTS.set(slots)
        left = count
        while left:
            taken, sent = await slots.take(left)
            try:
                if self.loop_timers:
                    await anyio.sleep(self.latency)
                else:
                    await _network().until(sent + self.latency)
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

    def floor(_: int) -> float:
        async def measure() -> float:
            store = remote()
            seconds, got = await time_once_async(lambda: store.get_many(keys))
            check(got, store, len(keys))
            return seconds

        return anyio.run(measure)

    fast[COLD_FLOOR] = floor

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

    for backend in ("asyncio", "trio"):
        fast[COLD_ASYNC.format(backend)] = async_prefetch(backend)

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


WARM_READS = 5


def warm_mean(read: Callable[[], T], check: Callable[[T], None]) -> float:
    """Seconds per call of ``read()``: one untimed call, then the mean of
    :data:`WARM_READS` in a row (their answers kept until the end: freeing them
    is not timed). The mean carries whatever a way's reads pay now and then (a
    dict growing its table), as a run of warm reads does."""
    check(read())
    gc.collect()
    answers = []
    start = time.perf_counter()
    for _ in range(WARM_READS):
        answers.append(read())
    seconds = (time.perf_counter() - start) / WARM_READS
    check(answers[-1])
    return seconds


async def warm_mean_async(read: Callable[[], Awaitable[T]], check: Callable[[T], None]) -> float:
    """:func:`warm_mean` for a coroutine function, in the caller's event loop."""
    check(await read())
    gc.collect()
    answers = []
    start = time.perf_counter()
    for _ in range(WARM_READS):
        answers.append(await read())
    seconds = (time.perf_counter() - start) / WARM_READS
    check(answers[-1])
    return seconds


def warm_ways(args: argparse.Namespace) -> dict[str, Callable[[int], float]]:
    """The warm-read ways: every key cached before the timing starts (filled
    from the store with its latency off: only hits are timed, and a hit never
    reaches the store)."""
    keys = [f"w/{i}" for i in range(args.warm_count)]
    data = {k: i.to_bytes(4, "little") * 25 for i, k in enumerate(keys)}
    ways: dict[str, Callable[[int], float]] = {}

    def check(got: dict[str, bytes] | list[bytes]) -> None:
        values = got if isinstance(got, list) else [got[k] for k in keys]
        assert len(values) == len(keys) and values[-1] == data[keys[-1]], "wrong values"

    def remote() -> LatencyStore:
        return LatencyStore(data, 0.0, args.in_flight)  # args.latency once filled

    def dict_comprehension(_: int) -> float:
        plain = dict(data)
        return warm_mean(lambda: {k: plain[k] for k in keys}, check)

    ways[WARM_FLOOR] = dict_comprehension

    def async_warm(backend: str) -> Callable[[int], float]:
        def run(_: int) -> float:
            async def measure() -> float:
                store = remote()
                async with aiostore.LRUStoreCache(store, max_size=MAX_SIZE) as cache:
                    await cache.get_many(keys)
                    store.latency, requests = args.latency, store.requests
                    seconds = await warm_mean_async(lambda: cache.get_many(keys), check)
                    assert store.requests == requests, "a warm read reached the store"
                return seconds

            return anyio.run(measure, backend=backend)

        return run

    ways[WARM_BASELINE] = async_warm("asyncio")
    ways["aiostore LRUStoreCache.get_many (trio)"] = async_warm("trio")

    def sync_warm(over_remote: bool) -> Callable[[int], float]:
        def run(_: int) -> float:
            store: Any = remote() if over_remote else dict(data)
            cache = aiostore.sync.LRUStoreCache(store, max_size=MAX_SIZE)
            cache.getitems(keys, contexts={})
            if over_remote:
                store.latency, requests = args.latency, store.requests
            seconds = warm_mean(lambda: cache.getitems(keys, contexts={}), check)
            assert not over_remote or store.requests == requests, "a warm read reached the store"
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
                    return warm_mean(lambda: cache.getitems(keys, contexts={}), check)
                return warm_mean(lambda: [cache[k] for k in keys], check)

            return run

        ways["zarr 2.18 LRUStoreCache.getitems"] = zarr_warm(True)
        ways["zarr 2.18 LRUStoreCache[key] per key"] = zarr_warm(False)
    return ways


NOTES = {
    COLD_BASELINE: "a zarr-2-style reader; hits and waits in the caller's thread",
    COLD_FLOOR: "one batch of 64-request waves: no way can be faster",
    WARM_FLOOR: "the C-level floor of building the answer",
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
    parser.add_argument("--warm-repeat", type=int, default=7, help="rounds of the warm ways")
    parser.add_argument(
        "--loop-timers",
        action="store_true",
        help="the store model before issue 12: latency from the event loop's timers (see LatencyStore)",
    )
    args = parser.parse_args()
    LatencyStore.loop_timers = args.loop_timers

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
    warm = interleaved_best(warm_ways(args), args.warm_repeat)
    title = (
        f"Warm reads: {args.warm_count:,} keys of 100 B, all cached, one batch "
        f"(a warm-up read, then the mean of {WARM_READS} in a row)"
    )
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
    print()
    print("Targets (issue 12), each a ratio of two ways of this run:")
    warm_ours = [name for name in warm if name.startswith("aiostore")]
    cold_ours = [COLD_BASELINE, *(COLD_ASYNC.format(backend) for backend in ("asyncio", "trio"))]
    for results, floor, ours, target, what in (
        (warm, WARM_FLOOR, warm_ours, WARM_TARGET, "the dict comprehension"),
        (cold, COLD_FLOOR, cold_ours, COLD_TARGET, "the store's own get_many"),
    ):
        for name in ours:
            print(target_line(name, results.get(name), results.get(floor), target, what))
    if args.loop_timers:
        print("(store model: --loop-timers, the event loop's own timers)")


def target_line(name: str, seconds: object, floor: object, target: float, what: str) -> str:
    """``- name / what: ratio (target at most target): met`` (or MISSED)."""
    if not isinstance(seconds, float) or not isinstance(floor, float):
        return f"- {name} / {what}: not measured: MISSED"
    ratio = seconds / floor
    verdict = "met" if ratio <= target else "MISSED"
    return f"- {name} / {what}: {ratio:.2f} (target at most {target:g}): {verdict}"


if __name__ == "__main__":
    main()
