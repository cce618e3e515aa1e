"""Single-flight fetches of :class:`~aiostore.stores.cache.LRUStoreCache`.

:class:`FetchesInFlight` maps each key being fetched from the store to its
:class:`~aiostore._runtime.flight.Flight`. A reader wanting such a key joins
that fetch instead of fetching again; when a fetch ends, what it read is cached
for the keys still registered to it. A write or invalidation unregisters the
keys it touches, so a fetch begun before it (which may have read older data)
hands its answer to its readers but caches nothing.

It shares the cache's one lock; its ``..._locked`` methods need it held.

Examples
--------
>>> import anyio, threading
>>> from aiostore import MemoryStore
>>> from aiostore.stores.cache.lru import ByteLRU
>>> async def main():
...     store = MemoryStore()
...     await store.set("a", b"1")
...     lru = ByteLRU(max_size=None)
...     flights = FetchesInFlight(threading.Lock(), store, lru)
...     flight = flights.begin_locked(["a", "b"], prefetch=False)  # lock held, in the cache
...     print(await flights.fetch(flight, ["a", "b"]), "a" in lru, "a" in flights)
>>> anyio.run(main)
{'a': b'1'} True False
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from aiostore._runtime.flight import RETRY, Flight
from aiostore.abc import Store
from aiostore.stores.cache.lru import ByteLRU

__all__ = ["Claim", "FetchesInFlight"]


class Claim(NamedTuple):
    """What :meth:`FetchesInFlight.claim_locked` made of a reader's keys."""

    #: The values held in the LRU (hits).
    found: dict[str, bytes]
    #: The keys this reader fetches itself, with ``flight`` (None if there are none).
    lead: list[str]
    flight: Flight | None
    #: The keys other fetches are getting, by flight: wait with :meth:`FetchesInFlight.join`.
    joined: dict[Flight, list[str]]


class FetchesInFlight:
    """The fetches under way from the store, by key: one fetch per key, which readers join.

    ``in``, ``len`` and :meth:`get` are single reads; the ``..._locked``
    methods must be called with ``lock`` held; :meth:`fetch` and :meth:`join`
    take it themselves.

    Parameters
    ----------
    lock : threading.Lock
        The cache's lock.
    store : Store
        The store fetched from.
    lru : ByteLRU
        Where fetched values are cached.
    """

    def __init__(self, lock: threading.Lock, store: Store, lru: ByteLRU) -> None:
        self._lock = lock
        self._store = store
        self._lru = lru
        self._flights: dict[str, Flight] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)

    def get(self, key: str) -> Flight | None:
        """The fetch under way for ``key``, or None."""
        return self._flights.get(key)

    # -- registration ------------------------------------------------------------------------
    def claim_locked(self, keys: Iterable[str], caller: int | None) -> Claim:
        """Sort a reader's ``keys`` into hits, keys to join and keys to fetch (registered).

        A key another fetch is getting is joined -- unless that fetch runs in
        the thread ``caller`` (a sync reader's, blocked until the read
        returns), where it is fetched anew.
        """
        found: dict[str, bytes] = {}
        lead: list[str] = []
        joined: dict[Flight, list[str]] = {}
        lru, flights = self._lru, self._flights
        for key in keys:
            value = lru.get_locked(key)
            if value is not None:
                found[key] = value
                continue
            other = flights.get(key)
            if other is not None and other.thread != caller:
                joined.setdefault(other, []).append(key)
                continue
            lead.append(key)
        # A key another fetch holds (see ``caller``) is fetched here too, but
        # cached by that fetch only.
        flight = self.begin_locked(lead, prefetch=False) if lead else None
        return Claim(found, lead, flight, joined)

    def begin_locked(self, keys: Iterable[str], *, prefetch: bool) -> Flight:
        """Register a new flight for ``keys`` and return it; fetch it with :meth:`fetch`.

        A key another flight holds stays registered to that one: it is fetched
        by both, but cached by that one only.
        """
        flight = Flight(prefetch=prefetch)
        flights, lru = self._flights, self._lru
        for key in keys:
            flights.setdefault(key, flight)
            lru.note_dirs_locked(key)
        return flight

    def discard_locked(self, key: str) -> None:
        """Unregister ``key``'s fetch, if any: what it reads will not be cached."""
        self._flights.pop(key, None)

    def discard_where_locked(self, match: Callable[[str], bool]) -> None:
        """Unregister the fetch of every key for which ``match(key)`` is true."""
        for key in [k for k in self._flights if match(k)]:
            del self._flights[key]

    def clear_locked(self) -> None:
        """Unregister every fetch."""
        self._flights.clear()

    # -- fetching ------------------------------------------------------------------------------
    async def fetch(
        self,
        flight: Flight,
        keys: list[str],
        finished_locked: Callable[[list[str], dict[str, bytes] | None], object] | None = None,
    ) -> dict[str, bytes]:
        """Fetch ``keys`` for ``flight`` (one store call), cache and share the result.

        ``finished_locked(keys, found)`` is called with the lock held as the
        flight ends, before what it read is cached (``found`` is None if it failed).
        """
        try:
            if len(keys) == 1:
                # A single get lets the store coalesce it with its other gets.
                try:
                    found = {keys[0]: await self._store.get(keys[0])}
                except KeyError:
                    found = {}
            else:
                found = await self._store.get_many(keys)
        except BaseException as exc:
            # An error is shared with the readers who joined; a cancellation
            # is not (they retry on their own).
            self._finish(flight, keys, None, exc if isinstance(exc, Exception) else None, finished_locked)
            raise
        self._finish(flight, keys, found, None, finished_locked)
        return found

    def _finish(
        self,
        flight: Flight,
        keys: list[str],
        found: dict[str, bytes] | None,
        error: BaseException | None,
        finished_locked: Callable[[list[str], dict[str, bytes] | None], object] | None,
    ) -> None:
        with self._lock:
            flights = self._flights
            if finished_locked is not None:
                finished_locked(keys, found)
            for key in keys:
                # A write or invalidation since the fetch began unregistered it:
                # what it read may be older than the store, so it is not cached.
                if flights.get(key) is flight:
                    del flights[key]
                    value = found.get(key) if found is not None else None
                    if value is not None:
                        self._lru.put_locked(key, value)
                        if flight.prefetch:
                            self._lru.mark_unread_locked(key)
        flight.finish(self._lock, found, error)

    async def join(self, joined: Mapping[Flight, list[str]]) -> tuple[dict[str, bytes], list[str]]:
        """Wait for other readers' flights; return ``({key: value}, keys to fetch again)``.

        A key missing from the store is in neither. Raises the error of a
        reader's fetch that failed (a failed prefetch's keys are fetched again).
        """
        found: dict[str, bytes] = {}
        retry: list[str] = []
        for other, other_keys in joined.items():
            await other.wait(self._lock)
            for key in other_keys:
                outcome = other.outcome(key)
                if isinstance(outcome, bytes):
                    found[key] = outcome
                elif outcome is RETRY:
                    retry.append(key)
        return found, retry
