"""The parts of :class:`~aiostore.stores.cache.LRUStoreCache`, made around one lock.

:func:`make_parts` builds the values (:class:`~aiostore.stores.cache.lru.ByteLRU`),
the listings, the fetches in flight, the write bookkeeping and the prefetcher,
sharing one new lock. :func:`renewed_parts` builds them again in a child made
by ``fork``, where threads of the parent did not come along: the lock one of
them held would stay held, and the fetches they were running would never end,
so readers joining them would wait forever. The child gets a new lock, no
fetch in flight and no prefetch queued; it keeps the values cached -- unless
the lock was held at the fork, when they may have been half changed -- except
those of keys that writes under way were changing.

Examples
--------
>>> from aiostore import MemoryStore
>>> from aiostore.stores.cache.lru import ByteLRU
>>> parts = make_parts(MemoryStore(), ByteLRU(None), concurrency=1, batch_size=8, on_error=print)
>>> parts.lru.put_locked("a", b"1")
>>> parts.lru.put_locked("c", b"3")
>>> flight = parts.inflight.begin_locked(["b"], prefetch=False)  # a fetch under way
>>> parts.writes.begin_locked(["c"])  # a write under way
>>> child = renewed_parts(parts, MemoryStore(), lambda: ByteLRU(None), print)  # in a forked child
>>> child.lock is parts.lock, "b" in child.inflight, child.lru.get_locked("a"), "c" in child.lru
(False, False, b'1', False)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from aiostore.abc import Store
from aiostore.stores.cache.flights import FetchesInFlight
from aiostore.stores.cache.listings import ListingCache
from aiostore.stores.cache.lru import ByteLRU
from aiostore.stores.cache.prefetch import Prefetcher
from aiostore.stores.cache.writes import WriteBookkeeping

__all__ = ["CacheParts", "make_parts", "renewed_parts"]


class CacheParts(NamedTuple):
    """The parts of one cache; each is called with ``lock`` held."""

    lock: threading.Lock
    #: The values cached.
    lru: ByteLRU
    #: The key listing, ``contains`` answers and ``listdir`` results cached.
    listings: ListingCache
    #: Fetches under way, by key: readers of those keys wait for them.
    inflight: FetchesInFlight
    writes: WriteBookkeeping
    prefetcher: Prefetcher


def make_parts(
    store: Store,
    lru: ByteLRU,
    *,
    concurrency: int,
    batch_size: int,
    on_error: Callable[[Exception], object],
) -> CacheParts:
    """The parts of a cache of ``store`` holding ``lru``'s values, around a new lock.

    ``concurrency``, ``batch_size`` and ``on_error`` are the prefetcher's.
    """
    lock = threading.Lock()
    listings = ListingCache(lock, store, lru)
    inflight = FetchesInFlight(lock, store, lru)
    writes = WriteBookkeeping(lock, lru, listings, inflight)
    prefetcher = Prefetcher(
        lock, lru, inflight, concurrency=concurrency, batch_size=batch_size, on_error=on_error
    )
    return CacheParts(lock, lru, listings, inflight, writes, prefetcher)


def renewed_parts(
    parts: CacheParts,
    store: Store,
    new_lru: Callable[[], ByteLRU],
    on_error: Callable[[Exception], object],
) -> CacheParts:
    """In a child made by ``fork``, first thing (the only thread): ``parts`` made again.

    A new lock, nothing in flight or queued; the values are kept, those the
    writes under way may change dropped (those writes never end here), unless
    ``parts.lock`` was held at the fork: then every part starts empty (``new_lru()``).
    """
    if parts.lock.locked():  # held by a thread that did not come along, mid-change
        lru = new_lru()
    else:
        lru = parts.lru
        parts.writes.abandon_locked()
    return make_parts(
        store,
        lru,
        concurrency=parts.prefetcher.concurrency,
        batch_size=parts.prefetcher.batch_size,
        on_error=on_error,
    )
