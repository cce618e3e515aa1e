"""Write bookkeeping for :class:`~aiostore.stores.cache.LRUStoreCache`.

:class:`WriteBookkeeping` updates the cache's parts around a write of the store:
when the write begins, fetches in flight for its keys are unregistered (what
they read may be older than the write); when it ends, the written values are
cached and the listings updated for just the keys it touched. Keys written by
overlapping writes are *contested*: the store may apply those writes in any
order, so the cache forgets what it knew of them rather than guess.

It shares the cache's one lock: :meth:`WriteBookkeeping.scope` and
:meth:`WriteBookkeeping.structural` take it, the ``..._locked`` methods need it held.

Examples
--------
>>> import threading
>>> from aiostore import MemoryStore
>>> from aiostore.stores.cache.flights import FetchesInFlight
>>> from aiostore.stores.cache.listings import ListingCache
>>> from aiostore.stores.cache.lru import ByteLRU
>>> lock, store, lru = threading.Lock(), MemoryStore(), ByteLRU(max_size=None)
>>> listings = ListingCache(lock, store, lru)
>>> writes = WriteBookkeeping(lock, lru, listings, FetchesInFlight(lock, store, lru))
>>> with writes.scope([("a", b"1")], []):
...     pass  # the cache writes the store here
>>> lru.get_locked("a"), listings.contains_locked("a")
(b'1', True)
>>> writes.begin_locked(["a"])
>>> writes.begin_locked(["a"])  # an overlapping write of the same key
>>> writes.end_locked(written=[("a", b"2")])
>>> writes.end_locked(written=[("a", b"3")])
>>> "a" in lru, listings.contains_locked("a")  # which one the store kept is unknown
(False, None)
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

from aiostore.abc import Buffer
from aiostore.errors import BatchWriteError
from aiostore.stores.cache.flights import FetchesInFlight
from aiostore.stores.cache.listings import ListingCache
from aiostore.stores.cache.lru import ByteLRU

__all__ = ["WriteBookkeeping"]


class WriteBookkeeping:
    """Writes under way, and what each write does to the cache when it begins and ends.

    :meth:`scope` and :meth:`structural` take ``lock``; every ``..._locked``
    method must be called with it held.

    Parameters
    ----------
    lock : threading.Lock
        The cache's lock.
    lru : ByteLRU
        The cache's values.
    listings : ListingCache
        The cache's key listing, ``contains`` answers and ``listdir`` results.
    flights : FetchesInFlight
        The cache's fetches in flight: a write unregisters its keys' fetches,
        so what they read is not cached.
    """

    def __init__(
        self, lock: threading.Lock, lru: ByteLRU, listings: ListingCache, flights: FetchesInFlight
    ) -> None:
        self._lock = lock
        self._lru = lru
        self._listings = listings
        self._flights = flights
        # Writes under way per key; keys written by overlapping writes, whose
        # final value the cache cannot know (the store may apply them in any order).
        self._writing: dict[str, int] = {}
        self._contested: set[str] = set()

    @contextmanager
    def scope(self, written: list[tuple[str, Buffer]], deleted: list[str]) -> Iterator[None]:
        """Around one write of the store, from either side: drop what is in flight
        for its keys first, then update the caches with what happened."""
        keys = [key for key, _ in written] + deleted
        with self._lock:
            self.begin_locked(keys)
        try:
            yield
        except BatchWriteError as exc:
            with self._lock:
                self.end_locked(
                    written=[(k, v) for k, v in written if k not in exc.failed],
                    deleted=[k for k in deleted if k not in exc.failed],
                    failed=[k for k in keys if k in exc.failed],
                )
            raise
        except KeyError:
            with self._lock:
                if deleted and not written:  # a missing key's delete: now known missing
                    self.end_locked(deleted=deleted)
                else:
                    self.end_locked(failed=keys)
            raise
        except BaseException:
            with self._lock:
                self.end_locked(failed=keys)
            raise
        with self._lock:
            self.end_locked(written=written, deleted=deleted)

    def begin_locked(self, keys: Iterable[str]) -> None:
        """A write of ``keys`` begins: unregister their fetches in flight."""
        self._listings.bump_epoch_locked()
        for key in keys:
            count = self._writing.get(key, 0) + 1
            self._writing[key] = count
            if count > 1:
                self._contested.add(key)
            self._flights.discard_locked(key)

    def end_locked(
        self,
        written: Iterable[tuple[str, Buffer]] = (),
        deleted: Iterable[str] = (),
        failed: Iterable[str] = (),
    ) -> None:
        """A write begun with :meth:`begin_locked` ended: update only what its keys touch.

        ``written`` were stored, ``deleted`` are missing now, and the state of
        ``failed`` is unknown.
        """
        lru, listings = self._lru, self._listings
        listings.bump_epoch_locked()
        # A hierarchical store (memory, directory) removes the directory at a
        # name written or deleted: what was cached below it is gone too.
        written, deleted, failed = list(written), list(deleted), list(failed)  # each read twice
        self._drop_below_locked(lru.noted_dirs_locked(chain((key for key, _ in written), deleted, failed)))
        max_size = lru.max_size
        for key, value in written:
            if self._release_locked(key):
                self._forget_locked(key)
                continue
            if max_size is None or len(value) <= max_size:
                lru.put_locked(key, bytes(value))
            else:
                lru.drop_locked(key)
            listings.written_locked(key)
            lru.note_dirs_locked(key)
        for key in deleted:
            if self._release_locked(key):
                self._forget_locked(key)
                continue
            lru.drop_locked(key)
            listings.deleted_locked(key)
            lru.note_dirs_locked(key)
        for key in failed:
            self._release_locked(key)
            self._forget_locked(key)

    def abandon_locked(self) -> None:
        """In a child made by ``fork``: the writes under way (in threads that did not
        come along) never end here, and what they stored is unknown: forget it."""
        self.end_locked(failed=list(self._writing))

    async def structural(self, operation: Coroutine[Any, Any, None], paths: tuple[str, ...]) -> None:
        """Run a write that touches whole subtrees, dropping what it may change."""
        self._drop_paths(paths)
        try:
            await operation
        finally:
            self._drop_paths(paths)

    def _drop_paths(self, paths: tuple[str, ...]) -> None:
        """Before and after a write of whole subtrees (``""``: everything): drop
        the values and fetches at and below ``paths``, and every listing."""

        def affected(key: str) -> bool:
            return any(not p or key == p or key.startswith(p + "/") for p in paths)

        with self._lock:
            self._lru.drop_where_locked(affected)
            self._flights.discard_where_locked(affected)
            self._listings.clear_locked()

    def _drop_below_locked(self, names: list[str]) -> None:
        """Drop everything cached below ``names``: one pass over the caches."""
        if not names:
            return
        below_names = tuple(f"{name}/" for name in names)
        self._lru.drop_where_locked(lambda key: key.startswith(below_names))
        self._flights.discard_where_locked(lambda key: key.startswith(below_names))
        self._listings.drop_below_locked(below_names)

    def _release_locked(self, key: str) -> bool:
        """End one write of ``key``; True if another write overlapped it."""
        self._flights.discard_locked(key)
        count = self._writing[key] - 1
        contested = key in self._contested
        if count:
            self._writing[key] = count
        else:
            del self._writing[key]
            self._contested.discard(key)
        return contested

    def _forget_locked(self, key: str) -> None:
        """Drop everything cached that ``key``'s state could change."""
        self._lru.drop_locked(key)
        self._listings.forget_locked(key)
