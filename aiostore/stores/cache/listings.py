"""The listing caches of :class:`~aiostore.stores.cache.LRUStoreCache`.

:class:`ListingCache` keeps what a store answered about which names exist: its
whole key listing, ``contains`` answers and ``listdir`` results, and updates
them for the keys a write touched rather than dropping them all. An *epoch*,
bumped by every change, tells a reader whose answer arrived after a change began
(or ended) not to cache it: that answer may be older than the store.

It shares the cache's one lock: :meth:`ListingCache.contains`,
:meth:`ListingCache.list_keys` and :meth:`ListingCache.listdir` (which ask the store
what is not cached) take it; the ``..._locked`` methods need it held.

Examples
--------
>>> import anyio, threading
>>> from aiostore import MemoryStore
>>> from aiostore.stores.cache.lru import ByteLRU
>>> async def main():
...     store = MemoryStore()
...     await store.set_many({"a": b"1", "b": b"2"})
...     listings = ListingCache(threading.Lock(), store, ByteLRU(max_size=None))
...     print(await listings.listdir(""))  # asks the store, and caches its answer
...     listings.written_locked("c")  # a write added a name: that listing is stale
...     print(listings.listdir_locked(""), listings.contains_locked("c"))
>>> anyio.run(main)
['a', 'b']
None True
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from aiostore.abc import Store, collect
from aiostore.stores.cache.lru import ByteLRU

__all__ = ["ListingCache"]


class ListingCache:
    """A store's key listing, ``contains`` answers and ``listdir`` results.

    :meth:`contains`, :meth:`list_keys` and :meth:`listdir` take ``lock``; every
    ``..._locked`` method must be called with it held.

    Parameters
    ----------
    lock : threading.Lock
        The cache's lock.
    store : Store
        The store asked what is not cached.
    lru : ByteLRU
        The cache's values (a key held exists), where names answered about are
        noted as directories.

    Notes
    -----
    Only the whole key listing is cached, not one per prefix. A reader asks
    for :attr:`epoch` (with the lock held) before asking the store, and passes
    it to ``remember_...``: the answer is kept only if nothing changed since.

    Examples
    --------
    >>> import threading
    >>> from aiostore import MemoryStore
    >>> listings = ListingCache(threading.Lock(), MemoryStore(), ByteLRU(max_size=None))
    >>> epoch = listings.epoch
    >>> listings.bump_epoch_locked()  # a write began while the store was listing
    >>> listings.remember_keys_locked(["a"], epoch), listings.keys_locked()
    (False, None)
    >>> listings.remember_keys_locked(["a"], listings.epoch), listings.keys_locked()
    (True, ['a'])
    >>> listings.deleted_locked("a")
    >>> listings.keys_locked(), listings.contains_locked("a")
    ([], False)
    """

    def __init__(self, lock: threading.Lock, store: Store, lru: ByteLRU) -> None:
        self._lock = lock
        self._store = store
        self._lru = lru
        self._keys: dict[str, None] | None = None
        self._contains: dict[str, bool] = {}
        self._listdir: dict[str, list[str]] = {}
        # Bumped by every write: a listing read that saw a change begin or end is not cached.
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The number of changes begun or ended so far."""
        return self._epoch

    @property
    def has_path_answers(self) -> bool:
        """True while some ``contains`` answer or ``listdir`` result is cached."""
        return bool(self._contains) or bool(self._listdir)

    def bump_epoch_locked(self) -> None:
        """Note that a change began or ended: answers read before it are not cached."""
        self._epoch += 1

    # -- read through: from memory, or asked of the store and cached ------------------------
    async def contains(self, key: str) -> bool:
        """Whether ``key`` exists: held in the LRU, cached, or asked of the store."""
        with self._lock:
            if key in self._lru:
                return True
            known = self._contains.get(key)
            if known is not None:
                return known
            epoch = self._epoch
        answer = await self._store.contains(key)
        with self._lock:
            if self.remember_contains_locked(key, answer, epoch):
                self._lru.note_dirs_locked(key)
        return answer

    async def list_keys(self, prefix: str) -> AsyncIterator[str]:
        """The keys starting with ``prefix``; the whole listing is cached, a prefix's is not."""
        with self._lock:
            cached = self.keys_locked()
            epoch = self._epoch
        if cached is None:
            if prefix:
                # Only the whole listing is cached: listing all of a big remote
                # store to answer one prefix would cost more than it saves.
                async for key in self._store.list(prefix):
                    yield key
                return
            cached = await collect(self._store.list())
            with self._lock:
                self.remember_keys_locked(cached, epoch)
        for key in cached:
            if key.startswith(prefix):
                yield key

    async def listdir(self, path: str) -> list[str]:
        """The names directly below ``path`` (a new list)."""
        with self._lock:
            listing = self._listdir.get(path)
            epoch = self._epoch
        if listing is None:
            listing = await self._store.listdir(path)
            with self._lock:
                if self.remember_listdir_locked(path, listing, epoch):
                    self._lru.note_dirs_locked(path + "/")
        return list(listing)

    # -- lookups ----------------------------------------------------------------------------
    def contains_locked(self, key: str) -> bool | None:
        """The cached ``contains`` answer for ``key``; None if unknown."""
        return self._contains.get(key)

    def keys_locked(self) -> list[str] | None:
        """A copy of the cached key listing; None if unknown."""
        return None if self._keys is None else list(self._keys)

    def listdir_locked(self, path: str) -> list[str] | None:
        """The cached ``listdir`` result for ``path`` (do not change it); None if unknown."""
        return self._listdir.get(path)

    # -- answers from the store -----------------------------------------------------------
    def remember_contains_locked(self, key: str, answer: bool, epoch: int) -> bool:
        """Cache ``answer`` unless something changed since ``epoch``; True if cached."""
        if self._epoch != epoch:
            return False
        self._contains[key] = answer
        return True

    def remember_keys_locked(self, keys: list[str], epoch: int) -> bool:
        """Cache the key listing unless something changed since ``epoch``; True if cached."""
        if self._epoch != epoch:
            return False
        self._keys = dict.fromkeys(keys)
        return True

    def remember_listdir_locked(self, path: str, listing: list[str], epoch: int) -> bool:
        """Cache ``listing`` unless something changed since ``epoch``; True if cached."""
        if self._epoch != epoch:
            return False
        self._listdir[path] = listing
        return True

    # -- changes ------------------------------------------------------------------------------
    def clear_locked(self) -> None:
        """Drop everything cached (and bump the epoch)."""
        self._epoch += 1
        self._keys = None
        self._contains.clear()
        self._listdir.clear()

    def written_locked(self, key: str) -> None:
        """``key`` was written: it exists, and listings that lack it are dropped."""
        self._contains[key] = True
        if self._keys is not None and key not in self._keys:
            self._keys = None
        self._touch_listdir_locked(key, added=True)

    def deleted_locked(self, key: str) -> None:
        """``key`` was deleted: it is missing, and listings that may name it are updated or dropped."""
        self._contains[key] = False
        if self._keys is not None:
            if key in self._keys:
                del self._keys[key]
            else:
                self._keys = None
        self._touch_listdir_locked(key, added=False)

    def forget_locked(self, key: str) -> None:
        """``key``'s state is unknown: drop everything it could change."""
        self._contains.pop(key, None)
        self._keys = None
        self._touch_listdir_locked(key, added=False)

    def drop_below_locked(self, below_names: tuple[str, ...]) -> None:
        """Drop what is cached below the prefixes ``below_names`` (each ending in ``/``)."""
        for key in [k for k in self._contains if k.startswith(below_names)]:
            del self._contains[key]
        for path in [p for p in self._listdir if f"{p}/".startswith(below_names)]:
            del self._listdir[path]
        if self._keys is not None and any(k.startswith(below_names) for k in self._keys):
            self._keys = None

    def _touch_listdir_locked(self, key: str, *, added: bool) -> None:
        if not self._listdir:
            return
        parts = key.split("/")
        for depth in range(len(parts)):
            path, child = "/".join(parts[:depth]), parts[depth]
            listing = self._listdir.get(path)
            # An added key can only add names; a removed one may empty a directory.
            if listing is not None and not (added and child in listing):
                del self._listdir[path]
