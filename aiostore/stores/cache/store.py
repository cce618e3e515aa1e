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
Async callers run the cache in their own event loop. The sync twin
:class:`aiostore.sync.LRUStoreCache` drives it inline, in the caller's thread,
whatever the store: a hit is a dict lookup under a lock, with no event loop and
no thread hop. Only the calls that reach the store go elsewhere when they must:
a natively async store's (an object store's) run on aiostore's background event
loop (:mod:`aiostore._runtime.portal`); a blocking store's run in the caller's thread.
Prefetching needs background tasks, so it always runs on that background loop,
whichever side called :meth:`~LRUStoreCache.prefetch`; readers in any thread
or loop can wait for what it fetches.

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
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from aiostore._runtime.flight import RETRY, Flight
from aiostore._runtime.portal import run_on_portal
from aiostore._runtime.workers import WAIT, PortalWorkers, Wait
from aiostore.abc import (
    Buffer,
    BufferLike,
    ByteRange,
    Store,
    check_open,
    check_writable,
    collect,
    slice_byte_range,
)
from aiostore.errors import BatchWriteError
from aiostore.stores.mapping import as_store

__all__ = ["LRUStoreCache"]

T = TypeVar("T")


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

    #: Hits and writes run in the caller's thread (a miss, on the background loop).
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
        # Keys are normalized exactly as the store does, so the keys the store
        # answers with are the keys the cache asked for.
        self._normalize_keys = inner.normalize_keys
        self.supports_deletes = inner.supports_deletes  # type: ignore[misc]
        self.supports_listing = inner.supports_listing  # type: ignore[misc]
        self._store = inner
        self._max_size = max_size
        self._prefetch_concurrency = prefetch_concurrency
        self._prefetch_batch_size = prefetch_batch_size
        self._lock = threading.Lock()
        self._values: OrderedDict[str, bytes] = OrderedDict()
        self._current_size = 0
        self._keys_cache: dict[str, None] | None = None
        self._contains_cache: dict[str, bool] = {}
        self._listdir_cache: dict[str, list[str]] = {}
        self._inflight: dict[str, Flight] = {}
        # Every directory something cached (or in flight) lies below: writing or
        # deleting such a name may remove that directory (see _drop_below_locked).
        self._dirs: set[str] = set()
        # Writes under way per key; keys written by overlapping writes, whose
        # final value the cache cannot know (the store may apply them in any order).
        self._writing: dict[str, int] = {}
        self._contested: set[str] = set()
        # Bumped by every write: a listing read that saw a change begin or end is not cached.
        self._epoch = 0
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._unread: dict[str, int] = {}
        self._unread_bytes = 0
        # Keys in prefetch batches under way; the sizes of the values prefetched so far.
        self._prefetch_pending = 0
        self._prefetched_bytes = 0
        self._prefetched_values = 0
        self._workers = PortalWorkers(
            self._lock,
            prefetch_concurrency,
            self._next_prefetch_job_locked,
            self._run_prefetch_job,
            self._prefetch_failed,
        )
        #: Values served from memory.
        self.hits = 0
        #: Values that were not in memory (fetched, or waited for).
        self.misses = 0
        #: Background fetches that failed (their keys are fetched again when read).
        self.prefetch_errors = 0
        #: The last of those errors, for diagnosis.
        self.last_prefetch_error: BaseException | None = None

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
        return self._current_size

    # -- the value cache (call with the lock held) --------------------------------
    def _cache_value_locked(self, key: str, value: bytes) -> None:
        old = self._values.pop(key, None)
        if old is not None:
            self._current_size -= len(old)
            self._forget_unread_locked(key)
        size = len(value)
        limit = self._max_size
        if limit is not None:
            if size > limit:
                return
            while self._current_size + size > limit:
                evicted, data = self._values.popitem(last=False)
                if evicted in self._unread and self._current_size > self._unread_bytes:
                    # Prefetched and not read yet, while values already read are
                    # held: those go first, or prefetching would evict its own work.
                    self._values[evicted] = data
                    continue
                self._current_size -= len(data)
                if self._unread:
                    self._forget_unread_locked(evicted)
        self._values[key] = value
        self._current_size += size
        self._note_dirs_locked(key)

    def _note_dirs_locked(self, key: str) -> None:
        dirs = self._dirs
        cut = key.rfind("/")
        while cut > 0:
            name = key[:cut]
            if name in dirs:
                return  # its ancestors are noted too
            dirs.add(name)
            cut = key.rfind("/", 0, cut)

    def _drop_value_locked(self, key: str) -> None:
        old = self._values.pop(key, None)
        if old is not None:
            self._current_size -= len(old)
            self._forget_unread_locked(key)

    def _forget_unread_locked(self, key: str) -> None:
        size = self._unread.pop(key, None)
        if size is not None:
            self._unread_bytes -= size
            self._wake_prefetcher_locked()

    def _consume_unread_locked(self, keys: Iterable[str]) -> None:
        for key in keys:
            size = self._unread.pop(key, None)
            if size is not None:
                self._unread_bytes -= size
        self._wake_prefetcher_locked()

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
            self._values.clear()
            self._current_size = 0
            self._inflight.clear()
            self._unread.clear()
            self._unread_bytes = 0
            self._wake_prefetcher_locked()
            if not self._contains_cache and not self._listdir_cache:
                self._dirs.clear()

    def invalidate_keys(self) -> None:
        """Clear the cached key listing, ``contains`` answers and ``listdir`` results."""
        with self._lock:
            self._epoch += 1
            self._keys_cache = None
            self._contains_cache.clear()
            self._listdir_cache.clear()
            if not self._values and not self._inflight:
                self._dirs.clear()

    # -- reads --------------------------------------------------------------------------
    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return ``key``'s value, from memory when cached. See :meth:`Store.get`."""
        if byte_range is None and not self._closed:
            try:
                with self._lock:
                    value = self._values.get(key)
                    if value is not None:
                        self._values.move_to_end(key)
                        self.hits += 1
                        if self._unread:
                            self._consume_unread_locked((key,))
                        return value
            except TypeError:  # unhashable: the key gate names the problem
                pass
        return await super().get(key, byte_range)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys present; hits come from memory and
        all misses from one batch call of the store. See :meth:`Store.get_many`."""
        check_open(self)
        if not isinstance(keys, list | tuple):
            keys = list(keys)
        values = self._values
        try:
            with self._lock:
                # C-level loops: a warm batch costs a few hundred ns per key.
                found_values = list(map(values.get, keys))
                if None not in found_values:
                    deque(map(values.move_to_end, keys), maxlen=0)
                    found = dict(zip(keys, found_values, strict=True))
                    self.hits += len(found)
                    if self._unread:
                        self._consume_unread_locked(found)
                    return found
        except TypeError:  # an unhashable key: the key gate below names it
            return await super().get_many(keys)
        # Some misses: look every key up again, normalized, and fetch the misses.
        return await super().get_many(keys)

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        if byte_range is None:
            found = await self._get_many([key])
            if key not in found:
                raise KeyError(key)
            return found[key]
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if value is not None:
            return slice_byte_range(value, byte_range)
        # A part of a value is not worth caching; the store reads just that part.
        return await self._store.get(key, byte_range)

    async def _get_many(self, keys: list[str], caller: int | None = None) -> dict[str, bytes]:
        """Hits from memory, misses fetched in one batch; a key another fetch is
        getting is waited for -- unless that fetch runs in the thread ``caller``
        (a sync reader's, blocked until this returns), where it fetches anew."""
        found: dict[str, bytes] = {}
        lead: list[str] = []
        joined: dict[Flight, list[str]] = {}
        flight = None
        with self._lock:
            values, inflight, queue = self._values, self._inflight, self._queue
            for key in keys:
                value = values.get(key)
                if value is not None:
                    values.move_to_end(key)
                    found[key] = value
                    continue
                other = inflight.get(key)
                if other is not None and other.thread != caller:
                    joined.setdefault(other, []).append(key)
                    continue
                # Not cached, not in flight (or queued for prefetch: this reader
                # is first, so it fetches the key itself now).
                if queue:
                    queue.pop(key, None)
                lead.append(key)
                self._note_dirs_locked(key)
            self.hits += len(found)
            self.misses += len(keys) - len(found)
            if found and self._unread:
                self._consume_unread_locked(found)
            if lead:
                flight = Flight(prefetch=False)
                for key in lead:
                    # setdefault: a key another fetch holds (see ``caller``) is
                    # fetched here too, but cached by that fetch only.
                    inflight.setdefault(key, flight)
        if flight is not None:
            found.update(await self._fetch(flight, lead))
        if joined:
            retry: list[str] = []
            for other, other_keys in joined.items():
                await other.wait(self._lock)
                for key in other_keys:
                    outcome = other.outcome(key)
                    if isinstance(outcome, bytes):
                        found[key] = outcome
                    elif outcome is RETRY:
                        retry.append(key)
            if retry:
                found.update(await self._get_many(retry, caller))
        return found

    async def _fetch(self, flight: Flight, keys: list[str]) -> dict[str, bytes]:
        """Fetch ``keys`` for ``flight`` (one store call), cache and share the result."""
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
            self._finish(flight, keys, None, exc if isinstance(exc, Exception) else None)
            raise
        self._finish(flight, keys, found, None)
        return found

    def _finish(
        self, flight: Flight, keys: list[str], found: dict[str, bytes] | None, error: BaseException | None
    ) -> None:
        with self._lock:
            inflight = self._inflight
            if flight.prefetch:
                self._prefetch_pending -= len(keys)
                if found:
                    self._prefetched_values += len(found)
                    self._prefetched_bytes += sum(map(len, found.values()))
            for key in keys:
                # A write or invalidation since the fetch began unregistered it:
                # what it read may be older than the store, so it is not cached.
                if inflight.get(key) is flight:
                    del inflight[key]
                    value = found.get(key) if found is not None else None
                    if value is not None:
                        self._cache_value_locked(key, value)
                        if flight.prefetch and key in self._values:
                            self._unread[key] = len(value)
                            self._unread_bytes += len(value)
        flight.finish(self._lock, found, error)

    async def _contains(self, key: str) -> bool:
        with self._lock:
            if key in self._values:
                return True
            known = self._contains_cache.get(key)
            if known is not None:
                return known
            epoch = self._epoch
        answer = await self._store.contains(key)
        with self._lock:
            if self._epoch == epoch:
                self._contains_cache[key] = answer
                self._note_dirs_locked(key)
        return answer

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        with self._lock:
            cached = None if self._keys_cache is None else list(self._keys_cache)
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
                if self._epoch == epoch:
                    self._keys_cache = dict.fromkeys(cached)
        for key in cached:
            if key.startswith(prefix):
                yield key

    async def _listdir(self, path: str) -> list[str]:
        with self._lock:
            listing = self._listdir_cache.get(path)
            epoch = self._epoch
        if listing is None:
            listing = await self._store.listdir(path)
            with self._lock:
                if self._epoch == epoch:
                    self._listdir_cache[path] = listing
                    self._note_dirs_locked(path + "/")
        return list(listing)

    async def _getsize(self, path: str) -> int:
        return await self._store.getsize(path)

    # -- writes ----------------------------------------------------------------------
    def _begin_write(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._epoch += 1
            for key in keys:
                count = self._writing.get(key, 0) + 1
                self._writing[key] = count
                if count > 1:
                    self._contested.add(key)
                self._inflight.pop(key, None)

    def _end_write(
        self,
        written: Iterable[tuple[str, Buffer]] = (),
        deleted: Iterable[str] = (),
        failed: Iterable[str] = (),
    ) -> None:
        """Update the caches after a write: only what the written keys touch."""
        with self._lock:
            self._epoch += 1
            # A hierarchical store (memory, directory) removes the directory at a
            # name written or deleted: what was cached below it is gone too.
            written, deleted, failed = list(written), list(deleted), list(failed)  # each read twice
            dirs = self._dirs
            if dirs:
                self._drop_below_locked(
                    [key for key, _ in written if key in dirs]
                    + [key for key in deleted if key in dirs]
                    + [key for key in failed if key in dirs]
                )
            for key, value in written:
                if self._release_write_locked(key):
                    self._forget_locked(key)
                    continue
                if self._max_size is None or len(value) <= self._max_size:
                    self._cache_value_locked(key, bytes(value))
                else:
                    self._drop_value_locked(key)
                self._contains_cache[key] = True
                self._note_dirs_locked(key)
                if self._keys_cache is not None and key not in self._keys_cache:
                    self._keys_cache = None
                self._touch_listdir_locked(key, added=True)
            for key in deleted:
                if self._release_write_locked(key):
                    self._forget_locked(key)
                    continue
                self._drop_value_locked(key)
                self._contains_cache[key] = False
                self._note_dirs_locked(key)
                if self._keys_cache is not None:
                    if key in self._keys_cache:
                        del self._keys_cache[key]
                    else:
                        self._keys_cache = None
                self._touch_listdir_locked(key, added=False)
            for key in failed:
                self._release_write_locked(key)
                self._forget_locked(key)

    def _drop_below_locked(self, names: list[str]) -> None:
        """Drop everything cached below ``names``: one pass over the caches."""
        if not names:
            return
        below_names = tuple(f"{name}/" for name in names)
        for key in [k for k in self._values if k.startswith(below_names)]:
            self._drop_value_locked(key)
        for key in [k for k in self._inflight if k.startswith(below_names)]:
            del self._inflight[key]
        for key in [k for k in self._contains_cache if k.startswith(below_names)]:
            del self._contains_cache[key]
        for path in [p for p in self._listdir_cache if f"{p}/".startswith(below_names)]:
            del self._listdir_cache[path]
        if self._keys_cache is not None and any(k.startswith(below_names) for k in self._keys_cache):
            self._keys_cache = None

    def _release_write_locked(self, key: str) -> bool:
        """End one write of ``key``; True if another write overlapped it."""
        self._inflight.pop(key, None)
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
        self._drop_value_locked(key)
        self._contains_cache.pop(key, None)
        self._keys_cache = None
        self._touch_listdir_locked(key, added=False)

    def _touch_listdir_locked(self, key: str, *, added: bool) -> None:
        if not self._listdir_cache:
            return
        parts = key.split("/")
        for depth in range(len(parts)):
            path, child = "/".join(parts[:depth]), parts[depth]
            listing = self._listdir_cache.get(path)
            # An added key can only add names; a removed one may empty a directory.
            if listing is not None and not (added and child in listing):
                del self._listdir_cache[path]

    @contextmanager
    def _write_scope(self, written: list[tuple[str, Buffer]], deleted: list[str]) -> Iterator[None]:
        """Around one write of the store, from either side: drop what is in flight
        for its keys first, then update the caches with what happened."""
        keys = [key for key, _ in written] + deleted
        self._begin_write(keys)
        try:
            yield
        except BatchWriteError as exc:
            self._end_write(
                written=[(k, v) for k, v in written if k not in exc.failed],
                deleted=[k for k in deleted if k not in exc.failed],
                failed=[k for k in keys if k in exc.failed],
            )
            raise
        except KeyError:
            if deleted and not written:  # a missing key's delete: now known missing
                self._end_write(deleted=deleted)
            else:
                self._end_write(failed=keys)
            raise
        except BaseException:
            self._end_write(failed=keys)
            raise
        self._end_write(written=written, deleted=deleted)

    async def _set(self, key: str, value: Buffer) -> None:
        with self._write_scope([(key, value)], []):
            await self._store.set(key, value)

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        with self._write_scope(items, []):
            await self._store.set_many(items)

    async def _delete(self, key: str) -> None:
        with self._write_scope([], [key]):
            await self._store.delete(key)

    async def _delete_many(self, keys: list[str]) -> None:
        with self._write_scope([], keys):
            await self._store.delete_many(keys)

    async def _structural(self, operation: Coroutine[Any, Any, None], paths: tuple[str, ...]) -> None:
        """Run a write that touches whole subtrees, dropping what it may change."""
        self._drop_paths(paths)
        try:
            await operation
        finally:
            self._drop_paths(paths)

    def _drop_paths(self, paths: tuple[str, ...]) -> None:
        def affected(key: str) -> bool:
            return any(not p or key == p or key.startswith(p + "/") for p in paths)

        with self._lock:
            self._epoch += 1
            for key in [k for k in self._values if affected(k)]:
                self._drop_value_locked(key)
            for key in [k for k in self._inflight if affected(k)]:
                del self._inflight[key]
            self._keys_cache = None
            self._contains_cache.clear()
            self._listdir_cache.clear()

    async def _rmdir(self, path: str) -> None:
        await self._structural(self._store.rmdir(path), (path,))

    async def _rename(self, src: str, dst: str) -> None:
        await self._structural(self._store.rename(src, dst), (src, dst))

    async def _clear(self) -> None:
        await self._structural(self._store.clear(), ("",))

    async def _flush(self) -> None:
        await self._store.flush()

    async def _close(self) -> None:
        try:
            with self._lock:
                self._queue.clear()
            await self._workers.stop()
        finally:
            await self._store.aclose()

    # -- the sync side: hits and writes in the caller's thread --------------------------
    def get_sync(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Blocking :meth:`get`: a hit never leaves the caller's thread."""
        if byte_range is None:
            found = self.get_many_sync([key])
            if found:
                return next(iter(found.values()))
            raise KeyError(key)
        return run_on_portal(self.get(key, byte_range))

    def get_many_sync(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Blocking :meth:`get_many`: hits from memory in the caller's thread; the
        misses, if any, in one fetch on the background loop."""
        check_open(self)
        normalized = self.check_keys(keys)
        with self._lock:
            values = self._values
            found = {key: value for key in normalized if (value := values.get(key)) is not None}
            deque(map(values.move_to_end, found), maxlen=0)
            self.hits += len(found)
            if found and self._unread:
                self._consume_unread_locked(found)
        if len(found) < len(normalized):
            missing = [key for key in normalized if key not in found]
            found.update(run_on_portal(self._get_many(missing, threading.get_ident())))
        return found

    def set_sync(self, key: str, value: BufferLike) -> None:
        """Blocking :meth:`set`, through the store's own ``set_sync``."""
        self.set_many_sync({key: value})

    def set_many_sync(self, mapping: Mapping[str, BufferLike] | Iterable[tuple[str, BufferLike]]) -> None:
        """Blocking :meth:`set_many`, through the store's own ``set_many_sync``."""
        check_writable(self)
        items = self.check_items(mapping)
        if items:
            with self._write_scope(items, []):
                self._store.set_many_sync(items)

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`, through the store's own ``delete_sync``."""
        check_writable(self)
        normalized = self.check_key(key)
        with self._write_scope([], [normalized]):
            self._store.delete_sync(normalized)

    def delete_many_sync(self, keys: Iterable[str]) -> None:
        """Blocking :meth:`delete_many`, through the store's own ``delete_many_sync``."""
        check_writable(self)
        normalized = self.check_keys(keys)
        if normalized:
            with self._write_scope([], normalized):
                self._store.delete_many_sync(normalized)

    # -- prefetch --------------------------------------------------------------------
    def prefetch(self, keys: Iterable[str]) -> int:
        """Start fetching ``keys`` in the background and return at once.

        Keys already cached, in flight or queued are skipped. Up to
        ``prefetch_concurrency`` batches of ``prefetch_batch_size`` keys are
        fetched at a time, on aiostore's background event loop, so this works
        the same from async code and from sync code. While the values fetched
        and not yet read fill ``max_size``, prefetching waits for readers (and
        the waiting workers keep the cache alive until :meth:`aclose`); values
        already read are evicted before those not read yet.

        A read of a key being fetched waits for that fetch; a read of a key
        still queued fetches it at once. A failed background fetch is counted in
        :attr:`prefetch_errors` and never raised; a later read of its keys
        fetches them again. :meth:`aclose` stops the background work.

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
        normalized = [self.check_key(key) for key in keys]
        with self._lock:
            values, inflight, queue = self._values, self._inflight, self._queue
            queued = 0
            for key in normalized:
                if key in values or key in inflight or key in queue:
                    continue
                queue[key] = None
                queued += 1
        if queued:
            self._workers.start()
        return queued

    def _next_prefetch_job_locked(self) -> tuple[Flight, list[str]] | Wait | None:
        """The next batch to prefetch; WAIT while there is no room; None when done.

        With a ``max_size``, the bytes read ahead and not yet read back (plus
        what batches under way are expected to bring) stay within it: a batch is
        sized to the room left, at the average size of the values prefetched so far.
        """
        if not self._queue:
            return None
        count = self._prefetch_batch_size
        if self._max_size is not None:
            average = self._prefetched_bytes // self._prefetched_values if self._prefetched_values else 0
            expected = self._unread_bytes + self._prefetch_pending * average
            if expected >= self._max_size:
                return WAIT
            if average:
                count = max(1, min(count, (self._max_size - expected) // average))
        keys: list[str] = []
        queue, values, inflight = self._queue, self._values, self._inflight
        while queue and len(keys) < count:
            key, _ = queue.popitem(last=False)
            if key not in values and key not in inflight:
                keys.append(key)
        if not keys:
            return None
        flight = Flight(prefetch=True)
        for key in keys:
            inflight[key] = flight
            self._note_dirs_locked(key)
        self._prefetch_pending += len(keys)
        return flight, keys

    async def _run_prefetch_job(self, job: tuple[Flight, list[str]]) -> None:
        await self._fetch(*job)

    def _prefetch_failed(self, error: Exception) -> None:
        with self._lock:
            self.prefetch_errors += 1
            self.last_prefetch_error = error

    def _wake_prefetcher_locked(self) -> None:
        if self._max_size is None or self._unread_bytes < self._max_size:
            self._workers.wake_locked()

    # -- identity ----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # What is cached is not part of the state: a copy starts empty.
        return {
            "store": self._store,
            "max_size": self._max_size,
            "prefetch_concurrency": self._prefetch_concurrency,
            "prefetch_batch_size": self._prefetch_batch_size,
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
