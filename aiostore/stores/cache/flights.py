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
from collections import deque
from collections.abc import Callable, Iterable, KeysView, Mapping
from itertools import compress, repeat
from operator import is_
from typing import NamedTuple

import anyio.lowlevel

from aiostore._runtime.flight import RETRY, Flight
from aiostore._runtime.portal import run_on_portal
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
        # Threads with no event loop wait here for flights to end (see join_blocking).
        self._ended = threading.Condition(lock)
        self._blocked = 0

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)

    def keys(self) -> KeysView[str]:
        """The keys being fetched (use with the lock held)."""
        return self._flights.keys()

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

    def begin_locked(self, keys: Iterable[str], *, prefetch: bool, thread: int | None = None) -> Flight:
        """Register a new flight for ``keys`` and return it; fetch it with :meth:`fetch`.

        A key another flight holds stays registered to that one: it is fetched
        by both, but cached by that one only. ``thread``: the thread whose event
        loop will fetch it, if not this one (see :attr:`Flight.thread`).
        """
        flight = Flight(prefetch=prefetch)
        if thread is not None:
            flight.thread = thread
        keys = keys if isinstance(keys, list) else list(keys)
        deque(map(self._flights.setdefault, keys, repeat(flight)), maxlen=0)
        self._lru.note_dirs_many_locked(keys)
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
            if flight.prefetch:
                # Let the fetches waiting for the store send their requests before
                # this answer is cached: a store that hands its free connections to
                # whoever asks first would otherwise let the next prefetch batch
                # overtake earlier ones -- the ones a reader wants next.
                await anyio.lowlevel.cancel_shielded_checkpoint()
        except BaseException as exc:
            # An error is shared with the readers who joined; a cancellation
            # is not (they retry on their own).
            self._finish(flight, keys, None, exc if isinstance(exc, Exception) else None, finished_locked)
            raise
        self._finish(flight, keys, found, None, finished_locked)
        return found

    def abandon(
        self,
        flight: Flight,
        keys: list[str],
        finished_locked: Callable[[list[str], dict[str, bytes] | None], object] | None = None,
    ) -> None:
        """End ``flight`` unfetched (call without the lock held): its readers fetch its keys again.

        For a flight begun with :meth:`begin_locked` that :meth:`fetch` will never run.
        """
        self._finish(flight, keys, None, None, finished_locked)

    def _finish(
        self,
        flight: Flight,
        keys: list[str],
        found: dict[str, bytes] | None,
        error: BaseException | None,
        finished_locked: Callable[[list[str], dict[str, bytes] | None], object] | None,
    ) -> None:
        with self._lock:
            if finished_locked is not None:
                finished_locked(keys, found)
            # A write or invalidation since the fetch began unregistered some keys:
            # what it read of them may be older than the store, so it is not cached.
            flights = self._flights
            mine = list(compress(keys, map(is_, map(flights.get, keys), repeat(flight))))
            deque(map(flights.pop, mine, repeat(None)), maxlen=0)
            if found:
                get = found.get
                cached = {key: value for key in mine if (value := get(key)) is not None}
                self._lru.put_many_locked(cached, unread=flight.prefetch)
        flight.finish(self._lock, found, error)
        with self._lock:
            if self._blocked:
                self._ended.notify_all()

    def joinable_locked(self, keys: Iterable[str], caller: int) -> dict[Flight, list[str]] | None:
        """``keys`` by the flight getting them, if other threads' flights get every one, else None.

        A flight running in the thread ``caller`` does not count (see :meth:`claim_locked`).
        """
        joined: dict[Flight, list[str]] = {}
        flights = self._flights
        for key in keys:
            other = flights.get(key)
            if other is None or other.thread == caller:
                return None
            joined.setdefault(other, []).append(key)
        return joined

    async def read(
        self, keys: list[str], caller: int | None, claimed_locked: Callable[[list[str], Claim], object]
    ) -> dict[str, bytes]:
        """A reader's ``keys``: the hits, one fetch of the keys no fetch is getting,
        the answers of the fetches under way for the others (see :meth:`claim_locked`
        for ``caller``); keys a fetch ended without an answer for are read again.

        ``claimed_locked(keys, claim)`` is called with the lock held once the keys
        are sorted (the cache counts its hits there).
        """
        with self._lock:
            claim = self.claim_locked(keys, caller)
            claimed_locked(keys, claim)
        found, lead, flight, joined = claim
        if flight is not None:
            found.update(await self.fetch(flight, lead))
        if joined:
            joined_found, retry = await self.join(joined)
            found.update(joined_found)
            if retry:
                found.update(await self.read(retry, caller, claimed_locked))
        return found

    def read_blocking(
        self, keys: list[str], caller: int, claimed_locked: Callable[[list[str], Claim], object]
    ) -> dict[str, bytes]:
        """:meth:`read` for a reader in the thread ``caller``, which has no event loop.

        If other threads' fetches are getting every one of ``keys`` (a prefetch,
        as a rule), it waits for them here (:meth:`join_blocking`), waking no
        event loop; anything else is read on aiostore's background loop.
        """
        with self._lock:
            joined = self.joinable_locked(keys, caller)
            if joined is not None:
                claimed_locked(keys, Claim({}, [], None, joined))
        found: dict[str, bytes] = {}
        if joined is not None:
            found, keys = self.join_blocking(joined)
        if keys:
            found.update(run_on_portal(self.read(keys, caller, claimed_locked)))
        return found

    async def join(self, joined: Mapping[Flight, list[str]]) -> tuple[dict[str, bytes], list[str]]:
        """Wait for other readers' flights; return ``({key: value}, keys to fetch again)``.

        A key missing from the store is in neither; the values a prefetch
        brought are read (see :meth:`ByteLRU.consume_unread_locked`). Raises the
        error of a reader's fetch that failed (a failed prefetch's keys are
        fetched again).
        """
        for other in joined:
            await other.wait(self._lock)
        return self._outcomes(joined)

    def join_blocking(self, joined: Mapping[Flight, list[str]]) -> tuple[dict[str, bytes], list[str]]:
        """:meth:`join` for a thread with no event loop of its own: it waits here.

        A sync reader waits for a prefetch this way rather than on the
        background loop, so the loop it would wake (where the fetches run)
        keeps to its fetches. The flights must run in other threads.
        """
        with self._ended:
            self._blocked += 1
            try:
                for other in joined:
                    other.waiting += 1
                    try:
                        while not other.done:
                            self._ended.wait()
                    finally:
                        other.waiting -= 1
            finally:
                self._blocked -= 1
        return self._outcomes(joined)

    def _outcomes(self, joined: Mapping[Flight, list[str]]) -> tuple[dict[str, bytes], list[str]]:
        found: dict[str, bytes] = {}
        retry: list[str] = []
        for other, other_keys in joined.items():
            for key in other_keys:
                outcome = other.outcome(key)
                if isinstance(outcome, bytes):
                    found[key] = outcome
                elif outcome is RETRY:
                    retry.append(key)
        if found and self._lru.has_unread:
            with self._lock:
                self._lru.consume_unread_locked(found)
        return found, retry
