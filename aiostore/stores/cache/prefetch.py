"""The prefetch queue of :class:`~aiostore.stores.cache.LRUStoreCache` and its workers.

A :class:`Prefetcher` queues keys to read ahead and hands them out in batches
to :class:`~aiostore._runtime.workers.PortalWorkers` on aiostore's background
event loop. With a ``max_size``, it reads ahead only while there is room: the
bytes read ahead and not read back yet, plus what the batches under way are
expected to bring, stay within ``max_size``, and a batch is sized to the room
left at the average size of the values prefetched so far.

It shares the cache's one lock, the cache's :class:`~aiostore.stores.cache.lru.ByteLRU`
(for what is held and how much is unread) and the cache's
:class:`~aiostore.stores.cache.flights.FetchesInFlight` (a batch handed out is
registered there, so readers join it, and fetched through it).

Examples
--------
>>> import threading
>>> from aiostore import MemoryStore
>>> from aiostore.stores.cache.flights import FetchesInFlight
>>> from aiostore.stores.cache.lru import ByteLRU
>>> lock, lru = threading.Lock(), ByteLRU(max_size=None)
>>> flights = FetchesInFlight(lock, MemoryStore(), lru)
>>> prefetcher = Prefetcher(lock, lru, flights, concurrency=1, batch_size=2, on_error=print)
>>> prefetcher.enqueue_locked(["a", "b", "c"])
3
>>> flight, keys = prefetcher.next_job_locked()  # what a worker does, lock held
>>> keys, "a" in flights, "c" in flights
(['a', 'b'], True, False)
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from itertools import filterfalse

from aiostore._runtime.flight import Flight
from aiostore._runtime.portal import portal_loop, portal_thread
from aiostore._runtime.workers import WAIT, PortalWorkers, Wait
from aiostore.stores.cache.flights import FetchesInFlight
from aiostore.stores.cache.lru import ByteLRU

__all__ = ["Prefetcher"]

#: A batch to prefetch: its flight (registered in flight) and its keys.
Job = tuple[Flight, list[str]]


class Prefetcher:
    """Keys queued to read ahead, and the workers reading them in batches.

    The ``..._locked`` methods must be called with ``lock`` held; :meth:`start`
    and :meth:`stop` take it themselves.

    Parameters
    ----------
    lock : threading.Lock
        The cache's lock, shared with the workers.
    lru : ByteLRU
        The cache's values: keys held are not fetched; what is unread bounds reading ahead.
    flights : FetchesInFlight
        The cache's fetches in flight: keys in it are not fetched; a batch
        handed out is registered in it, and fetched through it.
    concurrency : int
        Batches fetched at once.
    batch_size : int
        Most keys per batch.
    on_error : callable
        Receives what a batch raised; nothing is raised to the caller.
    """

    def __init__(
        self,
        lock: threading.Lock,
        lru: ByteLRU,
        flights: FetchesInFlight,
        *,
        concurrency: int,
        batch_size: int,
        on_error: Callable[[Exception], object],
    ) -> None:
        self._lru = lru
        self._flights = flights
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._lock = lock
        self._queue: OrderedDict[str, None] = OrderedDict()
        # A batch handed out at once by start(), for the workers to take first.
        self._ready: deque[Job] = deque()
        # Batches handed out and not finished (at most ``concurrency``), and their keys;
        # the sizes of the values prefetched so far.
        self._jobs = 0
        self._pending = 0
        self._prefetched_bytes = 0
        self._prefetched_values = 0
        self._workers: PortalWorkers[Job] = PortalWorkers(
            lock, concurrency, self.next_job_locked, self._run_job, on_error
        )

    @property
    def concurrency(self) -> int:
        """Batches fetched at once."""
        return self._concurrency

    @property
    def batch_size(self) -> int:
        """Most keys per batch."""
        return self._batch_size

    @property
    def running(self) -> bool:
        """True while workers are running or starting."""
        return self._workers.running

    @property
    def waiting(self) -> bool:
        """True while workers wait for room under ``max_size``."""
        return self._workers.waiting

    # -- the queue -------------------------------------------------------------------------
    def enqueue_locked(self, keys: Iterable[str]) -> int:
        """Queue ``keys``, skipping those held, in flight or queued; return how many were queued.

        Call :meth:`start` afterwards (without the lock) to have them fetched.
        """
        queue = self._queue
        held, flying = self._lru.keys(), self._flights.keys()
        fresh = filterfalse(flying.__contains__, filterfalse(held.__contains__, keys))
        before = len(queue)
        # C-level loops (a big prefetch returns sooner); a key queued already stays where it is.
        deque(map(queue.setdefault, fresh), maxlen=0)
        return len(queue) - before

    def dequeue_locked(self, key: str) -> None:
        """Take ``key`` off the queue, if queued (a reader fetches it itself)."""
        if self._queue:
            self._queue.pop(key, None)

    def next_job_locked(self) -> Job | Wait | None:
        """The next batch to prefetch; WAIT while there is no room; None when done.

        With a ``max_size``, the bytes read ahead and not yet read back (plus
        what batches under way are expected to bring) stay within it: a batch is
        sized to the room left, at the average size of the values prefetched so far.
        """
        if self._ready:
            return self._ready.popleft()
        return self._new_job_locked()

    def _new_job_locked(self, thread: int | None = None) -> Job | Wait | None:
        # A new batch off the queue (see next_job_locked), its fetch to run in ``thread``.
        if not self._queue:
            return None
        count = self._batch_size
        max_size = self._lru.max_size
        if max_size is not None:
            average = self._prefetched_bytes // self._prefetched_values if self._prefetched_values else 0
            expected = self._lru.unread_bytes + self._pending * average
            if expected >= max_size:
                return WAIT
            if average:
                count = max(1, min(count, (max_size - expected) // average))
        keys: list[str] = []
        queue, held, flying = self._queue, self._lru.keys(), self._flights.keys()
        while queue and len(keys) < count:
            # Keys cached or fetched by readers since they were queued are skipped.
            taken = [queue.popitem(last=False)[0] for _ in range(min(count - len(keys), len(queue)))]
            keys += filterfalse(flying.__contains__, filterfalse(held.__contains__, taken))
        if not keys:
            return None
        flight = self._flights.begin_locked(keys, prefetch=True, thread=thread)
        self._jobs += 1
        self._pending += len(keys)
        return flight, keys

    def finished_locked(self, keys: list[str], found: dict[str, bytes] | None) -> None:
        """A batch handed out by :meth:`next_job_locked` ended, with ``found`` (None: failed).

        Passed to :meth:`FetchesInFlight.fetch`, which calls it.
        """
        self._jobs -= 1
        self._pending -= len(keys)
        if found:
            self._prefetched_values += len(found)
            self._prefetched_bytes += sum(map(len, found.values()))

    # -- the workers -----------------------------------------------------------------------
    def start(self) -> None:
        """Make sure workers are fetching the queue (call without the lock held).

        If fewer than ``concurrency`` batches are under way, the next one is
        handed out at once, in the caller's thread: its keys are in flight when
        this returns, so a reader who asks for them next waits for that fetch
        instead of fetching a key of its own ahead of it (the workers hand out
        the batches after it while that one is under way).
        """
        portal_loop()  # the workers' loop, started if need be
        thread = portal_thread()
        with self._lock:
            if self._jobs < self._concurrency:
                job = self._new_job_locked(thread.ident if thread is not None else None)
                if isinstance(job, tuple):
                    self._ready.append(job)
        try:
            self._workers.start()
        except BaseException:
            self._abandon_ready()
            raise

    def wake_locked(self) -> None:
        """Let waiting workers look for room again, if there is some."""
        max_size = self._lru.max_size
        if max_size is None or self._lru.unread_bytes < max_size:
            self._workers.wake_locked()

    async def stop(self) -> None:
        """Empty the queue, cancel the workers and wait for them (call without the lock held)."""
        with self._lock:
            self._queue.clear()
        self._abandon_ready()
        await self._workers.stop()

    def _abandon_ready(self) -> None:
        # Batches handed out that no worker will fetch: their readers fetch for themselves.
        with self._lock:
            ready, self._ready = self._ready, deque()
        for flight, keys in ready:
            self._flights.abandon(flight, keys, self.finished_locked)

    async def _run_job(self, job: Job) -> None:
        flight, keys = job
        await self._flights.fetch(flight, keys, self.finished_locked)
