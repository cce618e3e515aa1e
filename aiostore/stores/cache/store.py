"""LRUStoreCache: a byte-bounded LRU cache in front of a slow store.

The cache is itself a store. It keeps recently read values (up to ``max_size``
bytes), the key listing, ``contains`` answers and ``listdir`` results, so a
remote store is asked each thing once. Reads that miss are batched: a
``get_many`` serves its hits from memory and fetches all its misses in one
call of the underlying store's ``get_many``. Fetches are *single-flight*:
readers (tasks or threads) asking for a key that is already being fetched wait
for that fetch instead of issuing another. :meth:`LRUStoreCache.prefetch`
starts fetching keys in the background, so a reader that walks through chunks
one by one finds them in memory, or in flight, when it gets there.

Where things run
----------------
Async callers run the cache in their own event loop. Sync callers (the
``*_sync`` methods, :class:`aiostore.sync.LRUStoreCache`) are served hits in
their own thread, a dict lookup under a lock, and write through the store's
``*_sync`` methods; a sync reader of keys all being fetched (a prefetch, as a
rule) waits for them in its own thread too, and any other miss runs the async
read path, single-flight and all, on aiostore's background loop, where
prefetching also runs.

Examples
--------
>>> import anyio
>>> from aiostore import MemoryStore
>>> async def main():
...     store = MemoryStore()
...     await store.set_many({"a/0": b"x" * 10, "a/1": b"y" * 10})
...     async with LRUStoreCache(store, max_size=15) as cache:
...         await cache.get_many(["a/0", "a/1"])   # two misses, one batch
...         await cache.get("a/1")                  # a hit; a/0 was evicted
...         print(cache.hits, cache.misses, cache.current_size)
>>> anyio.run(main)
1 2 10
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from aiostore._runtime.forks import renew_after_fork
from aiostore._runtime.portal import run_on_portal
from aiostore.abc import (
    Buffer,
    BufferLike,
    ByteRange,
    Store,
    check_open,
    check_writable,
    slice_byte_range,
)
from aiostore.keys import check_key_collection
from aiostore.stores.cache.flights import Claim
from aiostore.stores.cache.lru import ByteLRU
from aiostore.stores.cache.parts import CacheParts, make_parts, renewed_parts
from aiostore.stores.mapping import as_store

__all__ = ["LRUStoreCache"]


class LRUStoreCache(Store):
    """A least-recently-used cache of values, listings and ``contains`` answers.

    Parameters
    ----------
    store : aiostore store, sync store or MutableMapping
        The store holding the data (a mapping is wrapped in :class:`~aiostore.MappingStore`).
        Closing the cache closes it.
    max_size : int or None
        Most bytes of values the cache holds; ``None`` for no limit. A value
        larger than ``max_size`` is never cached.
    prefetch_concurrency : int
        Background fetches (batches) in flight at once during :meth:`prefetch`.
    prefetch_batch_size : int
        Keys per background fetch.

    Notes
    -----
    ``read_only``, ``dimension_separator`` and key normalization follow the
    wrapped store. Writes go through to the store and update only what they
    touch: the written value is cached, its ``contains`` answer updated and its
    parents' ``listdir`` results kept when they already name it. The key
    listing is kept when an existing key is overwritten or deleted, and dropped
    when a write adds a key (the store decides how a new key is listed).
    ``rmdir``, ``rename`` and ``clear`` drop the cached values below their
    paths and every cached listing.

    Examples
    --------
    >>> import anyio
    >>> async def main():
    ...     async with LRUStoreCache({"k": b"v"}, max_size=2**20) as cache:
    ...         print(await cache.get("k"), await cache.get("k"), cache.hits, cache.misses)
    ...         cache.invalidate()
    ...         print(await cache.listdir(), await cache.contains("k"))
    >>> anyio.run(main)
    b'v' b'v' 1 1
    ['k'] True
    """

    #: Hits, writes and waits for a prefetch run in the caller's thread (other misses: background loop).
    supports_sync_io = True

    def __init__(
        self,
        store: object,
        max_size: int | None,
        *,
        prefetch_concurrency: int = 4,
        prefetch_batch_size: int = 64,
    ) -> None:
        inner = as_store(store)
        if max_size is not None and (
            not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 0
        ):
            raise ValueError(f"max_size must be a number of bytes >= 0 or None, not {max_size!r}")
        if prefetch_concurrency < 1 or prefetch_batch_size < 1:
            raise ValueError("prefetch_concurrency and prefetch_batch_size must be >= 1")
        super().__init__(read_only=inner.read_only, dimension_separator=inner.dimension_separator)
        self.key_limits = inner.key_limits
        # Keys are normalized as the store does: it answers with the keys the cache asked for.
        self._normalize_keys = inner.normalize_keys
        self.supports_deletes = inner.supports_deletes  # type: ignore[misc]
        self.supports_listing = inner.supports_listing  # type: ignore[misc]
        self._store = inner
        self._max_size = max_size
        # One lock guards every part; each is called with it held (see cache/parts.py).
        self._use(
            make_parts(
                inner,
                self._new_lru(),
                concurrency=prefetch_concurrency,
                batch_size=prefetch_batch_size,
                on_error=self._prefetch_failed,
            )
        )
        renew_after_fork(self, type(self)._renew_after_fork)
        #: Values served from memory.
        self.hits = 0
        #: Values that were not in memory (fetched, or waited for).
        self.misses = 0
        #: Background fetches that failed (their keys are fetched again when read).
        self.prefetch_errors = 0
        #: The last of those errors, for diagnosis.
        self.last_prefetch_error: BaseException | None = None

    def _new_lru(self) -> ByteLRU:
        return ByteLRU(self._max_size, self._wake_prefetcher_locked)

    def _use(self, parts: CacheParts) -> None:
        self._lock, self._lru, self._listings, self._inflight, self._writes, self._prefetcher = parts

    def _renew_after_fork(self) -> None:
        # In a forked child, first thing: a new lock, no fetch in flight (see cache/parts.py).
        parts = CacheParts(
            self._lock, self._lru, self._listings, self._inflight, self._writes, self._prefetcher
        )
        self._use(renewed_parts(parts, self._store, self._new_lru, self._prefetch_failed))

    # -- properties ---------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The wrapped store."""
        return self._store

    @property
    def max_size(self) -> int | None:
        """Most bytes of values held; None for no limit."""
        return self._max_size

    @property
    def current_size(self) -> int:
        """Bytes of values held now."""
        return self._lru.current_size

    # -- invalidation (zarr 2's API) -----------------------------------------------
    def invalidate(self) -> None:
        """Completely clear the cache (values, listings, ``contains`` answers)."""
        self.invalidate_values()
        self.invalidate_keys()

    def invalidate_values(self) -> None:
        """Clear the values cache.

        Fetches under way are not cached when they finish (they may have read
        what was there before); their readers still get their answers.
        """
        with self._lock:
            self._inflight.clear_locked()
            self._lru.clear_locked()
            if not self._listings.has_path_answers:
                self._lru.clear_dirs_locked()

    def invalidate_keys(self) -> None:
        """Clear the cached key listing, ``contains`` answers and ``listdir`` results."""
        with self._lock:
            self._listings.clear_locked()
            if not len(self._lru) and not self._inflight:
                self._lru.clear_dirs_locked()

    # -- reads --------------------------------------------------------------------------
    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return ``key``'s value, from memory when cached. See :meth:`Store.get`."""
        if byte_range is None and not self._closed:
            value = self._hit(key)
            if value is not None:
                return value
        return await super().get(key, byte_range)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys present; hits come from memory and
        all misses from one batch call of the store. See :meth:`Store.get_many`."""
        check_open(self)
        if not isinstance(keys, list | tuple):
            check_key_collection(keys)
            keys = list(keys)
        found = self._all_hits(keys)
        if found is not None:
            return found
        # Some misses: look every key up again, normalized, and fetch the misses.
        return await super().get_many(keys)

    def _hit(self, key: str) -> bytes | None:
        # ``key``'s value if cached (a hit), else None: no key gate, as in ``_all_hits``.
        try:
            with self._lock:
                value = self._lru.read_locked(key)
                if value is not None:
                    self.hits += 1
                return value
        except TypeError:  # unhashable: the key gate names the problem
            return None

    def _all_hits(self, keys: list[str] | tuple[str, ...]) -> dict[str, bytes] | None:
        """The fast path of both sides: ``{key: value}`` if every key, as given, is
        cached (C-level loops, no key gate: a cached key passed it when cached, and
        normalizing a normalized key gives it back)."""
        with self._lock:
            found = self._lru.read_all_locked(keys)
            if found is not None:
                self.hits += len(found)
            return found

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        if byte_range is None:
            found = await self._get_many([key])
            if key not in found:
                raise KeyError(key)
            return found[key]
        with self._lock:
            value = self._lru.get_locked(key)
            if value is not None:
                self.hits += 1
            else:
                self.misses += 1
        if value is not None:
            return slice_byte_range(value, byte_range)
        # A part of a value is not worth caching; the store reads just that part.
        return await self._store.get(key, byte_range)

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        # Hits from memory, misses fetched in one batch, keys being fetched waited for.
        return await self._inflight.read(keys, None, self._claimed_locked)

    def _claimed_locked(self, keys: list[str], claim: Claim) -> None:
        for key in claim.lead:
            # Not cached, not in flight (or queued for prefetch: this reader
            # is first, so it fetches the key itself now).
            self._prefetcher.dequeue_locked(key)
        self.hits += len(claim.found)
        self.misses += len(keys) - len(claim.found)
        if claim.found and self._lru.has_unread:
            self._lru.consume_unread_locked(claim.found)

    async def _contains(self, key: str) -> bool:
        return await self._listings.contains(key)

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        async for key in self._listings.list_keys(prefix):
            yield key

    async def _listdir(self, path: str) -> list[str]:
        return await self._listings.listdir(path)

    async def _getsize(self, path: str) -> int:
        return await self._store.getsize(path)

    # -- writes: around each, ``self._writes.scope`` drops what is in flight for its keys
    # first, then updates the caches with what happened -------------------------------
    async def _set(self, key: str, value: Buffer) -> None:
        with self._writes.scope([(key, value)], []):
            await self._store.set(key, value)

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        with self._writes.scope(items, []):
            await self._store.set_many(items)

    async def _delete(self, key: str) -> None:
        with self._writes.scope([], [key]):
            await self._store.delete(key)

    async def _delete_many(self, keys: list[str]) -> None:
        with self._writes.scope([], keys):
            await self._store.delete_many(keys)

    async def _rmdir(self, path: str) -> None:
        await self._writes.structural(self._store.rmdir(path), (path,))

    async def _rename(self, src: str, dst: str) -> None:
        await self._writes.structural(self._store.rename(src, dst), (src, dst))

    async def _clear(self) -> None:
        await self._writes.structural(self._store.clear(), ("",))

    async def _flush(self) -> None:
        await self._store.flush()

    async def _close(self) -> None:
        try:
            await self._prefetcher.stop()
        finally:
            await self._store.aclose()

    # -- the sync side: hits and writes in the caller's thread --------------------------
    def get_sync(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Blocking :meth:`get`: a hit never leaves the caller's thread."""
        if byte_range is not None:
            return run_on_portal(self.get(key, byte_range))
        value = None if self._closed else self._hit(key)
        if value is None:
            found = self.get_many_sync([key])  # the key gate, then the miss
            if not found:
                raise KeyError(key)
            value = next(iter(found.values()))
        return value

    def get_many_sync(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Blocking :meth:`get_many`: hits from memory in the caller's thread; the
        misses, if any, in one fetch on the background loop."""
        check_open(self)
        if not isinstance(keys, list | tuple):
            check_key_collection(keys)
            keys = list(keys)
        hits = self._all_hits(keys)
        if hits is not None:
            return hits
        normalized = self.check_keys(keys)
        with self._lock:
            found = self._lru.read_present_locked(normalized)
            self.hits += len(found)
        if len(found) < len(normalized):
            missing = [key for key in normalized if key not in found]
            found.update(self._inflight.read_blocking(missing, threading.get_ident(), self._claimed_locked))
        return found

    def set_sync(self, key: str, value: BufferLike) -> None:
        """Blocking :meth:`set`, through the store's own ``set_sync``."""
        self.set_many_sync({key: value})

    def set_many_sync(self, mapping: Mapping[str, BufferLike] | Iterable[tuple[str, BufferLike]]) -> None:
        """Blocking :meth:`set_many`, through the store's own ``set_many_sync``."""
        check_writable(self)
        items = self.check_items(mapping)
        if items:
            with self._writes.scope(items, []):
                self._store.set_many_sync(items)

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`, through the store's own ``delete_sync``."""
        check_writable(self)
        normalized = self.check_key(key)
        with self._writes.scope([], [normalized]):
            self._store.delete_sync(normalized)

    def delete_many_sync(self, keys: Iterable[str]) -> None:
        """Blocking :meth:`delete_many`, through the store's own ``delete_many_sync``."""
        check_writable(self)
        normalized = self.check_keys(keys)
        if normalized:
            with self._writes.scope([], normalized):
                self._store.delete_many_sync(normalized)

    # -- prefetch --------------------------------------------------------------------
    def prefetch(self, keys: Iterable[str]) -> int:
        """Start fetching ``keys`` in the background and return at once.

        Keys cached, in flight or queued are skipped. Up to ``prefetch_concurrency`` batches of
        ``prefetch_batch_size`` keys are fetched at a time, on aiostore's background loop (from async and
        sync code alike); the first is in flight when this returns. While the values fetched and not yet
        read fill ``max_size``, prefetching waits for readers; values already read are evicted before those
        not read yet. A read of a key being fetched waits for that fetch; of a key still queued, fetches it
        at once. A failed background fetch is counted in :attr:`prefetch_errors`, never raised; a later read
        fetches its keys again. :meth:`aclose` stops the background work.

        Returns
        -------
        int
            How many keys were queued.

        Examples
        --------
        >>> from aiostore.sync import LRUStoreCache as SyncLRUStoreCache
        >>> cache = SyncLRUStoreCache({f"c/{i}": b"x" for i in range(100)}, max_size=None)
        >>> cache.prefetch(f"c/{i}" for i in range(100))
        100
        >>> len(cache.getitems([f"c/{i}" for i in range(100)])), cache.store.mapping["c/0"]
        (100, b'x')
        >>> cache.close()
        """
        check_open(self)
        normalized = self.check_keys(keys)
        with self._lock:
            queued = self._prefetcher.enqueue_locked(normalized)
        if queued:
            self._prefetcher.start()
        return queued

    def _prefetch_failed(self, error: Exception) -> None:
        with self._lock:
            self.prefetch_errors += 1
            self.last_prefetch_error = error

    def _wake_prefetcher_locked(self) -> None:
        # Called by the LRU when unread values may have shrunk (never during __init__).
        self._prefetcher.wake_locked()

    # -- identity ----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # What is cached is not part of the state: a copy starts empty.
        return {
            "store": self._store,
            "max_size": self._max_size,
            "prefetch_concurrency": self._prefetcher.concurrency,
            "prefetch_batch_size": self._prefetcher.batch_size,
        }

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["store"],
            state["max_size"],
            prefetch_concurrency=state["prefetch_concurrency"],
            prefetch_batch_size=state["prefetch_batch_size"],
        )

    def __repr__(self) -> str:
        return f"LRUStoreCache({self._store!r}, max_size={self._max_size!r})"
