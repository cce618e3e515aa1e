"""The byte-bounded LRU of values behind :class:`~aiostore.stores.cache.LRUStoreCache`.

:class:`ByteLRU` holds values in least-recently-used order, at most
``max_size`` bytes of them. It also keeps two notes for the cache: which values
were prefetched and not read yet (eviction spares them while values already
read are held), and every directory above a name the cache knows something
about (so a write that may remove such a directory can drop what lies below it).

It has no lock of its own: the cache calls it with the cache's one lock held.

Examples
--------
>>> lru = ByteLRU(max_size=4)
>>> lru.put_locked("a/0", b"xx")
>>> lru.put_locked("a/1", b"yy")
>>> lru.get_locked("a/0")  # a hit makes a/0 the most recently used
b'xx'
>>> lru.put_locked("b", b"zz")  # evicts a/1, the least recently used
>>> list(lru.keys()), lru.current_size, lru.noted_dirs_locked(["a", "b"])
(['a/0', 'b'], 4, ['a'])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, KeysView, Mapping, Sequence, ValuesView
from itertools import islice
from operator import itemgetter, methodcaller

__all__ = ["ByteLRU"]


def _nothing() -> None:
    pass


class ByteLRU:
    """Values in least-recently-used order, at most ``max_size`` bytes of them.

    Not thread-safe on its own: every ``..._locked`` method must be called with
    the owner's lock held (the cache's one lock, shared by all its parts). The
    properties and ``len``/``in`` are single reads, safe without it.

    Parameters
    ----------
    max_size : int or None
        Most bytes of values held; ``None`` for no limit. A value larger than
        ``max_size`` is never held.
    on_unread_freed : callable, optional
        Called (with the lock held) whenever values prefetched and not read yet
        may have shrunk: read, dropped, evicted or cleared. The cache wakes its
        prefetcher there, since there may be room to read ahead again.

    Notes
    -----
    *Unread* values are those marked with :meth:`mark_unread_locked` (the
    cache marks what a prefetch brought) and not yet passed to
    :meth:`consume_unread_locked`. To make room, values already read are
    evicted first: an unread value goes only when nothing else is left, or
    prefetching would evict its own work.

    *Noted directories* are every ``/``-separated ancestor of the names passed
    to :meth:`note_dirs_locked` (and of the values held). They outlive the
    values: the owner clears them with :meth:`clear_dirs_locked` once nothing
    it caches can lie below them.

    The values are a plain dict in least-recently-used order: a hit takes its
    value out and puts it back at the end, so a batch of hits is two C-level
    passes (one builds the answer; the other puts the answer back), about the
    cost of a dict comprehension over a plain dict. A dict has no cheap way to
    its first live entry, though (taking entries out of its front leaves holes
    that every later scan from the front walks over), so eviction takes its
    victims from a *snapshot* of the least recently used keys, taken in one
    scan once per many evictions; a key used, dropped or written again since
    the snapshot leaves it (it is no longer among the least recently used).

    Examples
    --------
    >>> lru = ByteLRU(max_size=6)
    >>> lru.put_locked("ahead", b"aa")
    >>> lru.mark_unread_locked("ahead")
    >>> lru.put_locked("read", b"rr")
    >>> lru.put_locked("c", b"cc")
    >>> lru.put_locked("d", b"dd")  # evicts "read", not "ahead": that was not read yet
    >>> list(lru.keys()), lru.unread_bytes
    (['c', 'ahead', 'd'], 2)
    >>> lru.consume_unread_locked(["ahead"])
    >>> lru.unread_bytes, lru.has_unread
    (0, False)
    """

    def __init__(self, max_size: int | None, on_unread_freed: Callable[[], None] = _nothing) -> None:
        self._max_size = max_size
        self._on_unread_freed = on_unread_freed
        self._values: dict[str, bytes] = {}
        self._current_size = 0
        # The next victims, least recently used first (a snapshot of the front of
        # ``_values``), and those of them still there and not used since.
        self._victims: deque[str] = deque()
        self._still_victims: set[str] = set()
        # Entries taken out of ``_values`` since it was last compacted (its holes, at most).
        self._taken = 0
        self._unread: dict[str, int] = {}
        self._unread_bytes = 0
        self._dirs: set[str] = set()

    # -- state ------------------------------------------------------------------------
    @property
    def max_size(self) -> int | None:
        """Most bytes of values held; None for no limit."""
        return self._max_size

    @property
    def current_size(self) -> int:
        """Bytes of values held now."""
        return self._current_size

    @property
    def unread_bytes(self) -> int:
        """Bytes of values marked unread and not read yet."""
        return self._unread_bytes

    @property
    def has_unread(self) -> bool:
        """True while some value is marked unread."""
        return bool(self._unread)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def keys(self) -> KeysView[str]:
        """The keys held, least recently used first (iterate with the lock held)."""
        return self._values.keys()

    def values(self) -> ValuesView[bytes]:
        """The values held, least recently used first (iterate with the lock held)."""
        return self._values.values()

    # -- lookups: a hit becomes the most recently used ------------------------------------
    # ``get_locked`` only looks up; the ``read_...`` methods are a reader's hits,
    # which also consume what they find unread.
    def get_locked(self, key: str) -> bytes | None:
        """``key``'s value, or None if not held. Raises TypeError for an unhashable key."""
        values = self._values
        value = values.pop(key, None)
        if value is not None:
            values[key] = value
            self._taken += 1
            if self._still_victims:
                self._still_victims.discard(key)
        return value

    def read_locked(self, key: str) -> bytes | None:
        """:meth:`get_locked`, and a value found is read (see :meth:`consume_unread_locked`)."""
        value = self.get_locked(key)
        if value is not None and self._unread:
            size = self._unread.pop(key, None)
            if size is not None:
                self._unread_bytes -= size
                self._on_unread_freed()
        return value

    def read_all_locked(self, keys: Sequence[str]) -> dict[str, bytes] | None:
        """``{key: value}`` if every key is held (and read), else None.

        Two C-level passes: the values are taken out into the answer, then the
        answer is put back, most recently used last (a warm batch costs about
        as much as a dict comprehension over a plain dict). When a key is not
        held (or is given twice, or is unhashable), the keys before it have
        still become the most recently used: the caller reads them the slow way
        next, which orders them again just as it would have.
        """
        values = self._values
        found: dict[str, bytes] = {}
        try:
            found.update(zip(keys, map(values.pop, keys), strict=True))
        except (KeyError, TypeError):
            self._put_back_locked(found)
            return None
        self._put_back_locked(found)
        if self._unread:
            self.consume_unread_locked(found)
        return found

    def read_present_locked(self, keys: Iterable[str]) -> dict[str, bytes]:
        """``{key: value}`` for the keys held; those values are read."""
        pop = self._values.pop
        found = {key: value for key in keys if (value := pop(key, None)) is not None}
        self._put_back_locked(found)
        if found and self._unread:
            self.consume_unread_locked(found)
        return found

    def _put_back_locked(self, found: dict[str, bytes]) -> None:
        # Values taken out by a read go back, as the most recently used.
        self._values.update(found)
        self._taken += len(found)
        if self._still_victims:
            self._still_victims.difference_update(found)

    # -- changes ----------------------------------------------------------------------------
    def put_locked(self, key: str, value: bytes) -> None:
        """Hold ``value`` as ``key``'s, evicting the least recently used to make room.

        A value larger than ``max_size`` is not held (and ``key``'s old one is dropped).
        A value that is not ``bytes`` is held as a copy: a read-only buffer from the
        store behind (LMDB's zero-copy reads) would keep its read snapshot open, and
        its reader slot taken, for as long as the cache held it.
        """
        if type(value) is not bytes:
            value = bytes(value)
        self.drop_locked(key)
        size = len(value)
        limit = self._max_size
        if limit is not None:
            if size > limit:
                return
            values = self._values
            while self._current_size + size > limit:
                evicted = self._next_victim_locked()
                data = values.pop(evicted)
                self._taken += 1
                if evicted in self._unread and self._current_size > self._unread_bytes:
                    # Prefetched and not read yet, while values already read are
                    # held: those go first, or prefetching would evict its own work.
                    values[evicted] = data
                    continue
                self._current_size -= len(data)
                if self._unread:
                    self._forget_unread_locked(evicted)
        self._values[key] = value
        self._current_size += size
        self.note_dirs_locked(key)

    def _next_victim_locked(self) -> str:
        """The least recently used key (there must be one), off the snapshot."""
        victims, still = self._victims, self._still_victims
        while True:
            if not victims:
                self._take_snapshot_locked()
            key = victims.popleft()
            if key in still:
                still.discard(key)
                return key

    def _take_snapshot_locked(self) -> None:
        # One scan of the front of the values for the next eighth of them (at
        # least 64): the holes the scan walks over are paid for by as many evictions.
        values = self._values
        if self._taken > 2 * len(values) + 1024:
            # Compacted in place (views of it stay valid): a scan walks no hole.
            compact = dict(values)
            values.clear()
            values.update(compact)
            self._taken = 0
        victims = list(islice(values, max(64, len(values) >> 3)))
        self._victims.extend(victims)
        self._still_victims.update(victims)

    def put_many_locked(self, items: Mapping[str, bytes], *, unread: bool = False) -> None:
        """:meth:`put_locked` of every item, in order, and with ``unread``
        :meth:`mark_unread_locked` of those held.

        A batch fetched into room to spare (no key held yet, no eviction) is
        cached with C-level loops.
        """
        if not set(map(type, items.values())) <= {bytes}:  # buffers: held as copies (see put_locked)
            items = {key: bytes(value) for key, value in items.items()}
        values = self._values
        size = sum(map(len, items.values()))
        limit = self._max_size
        if (limit is not None and self._current_size + size > limit) or not values.keys().isdisjoint(items):
            for key, value in items.items():
                self.put_locked(key, value)
                if unread:
                    self.mark_unread_locked(key)
            return
        values.update(items)
        self._current_size += size
        if unread:
            self._unread.update(zip(items.keys(), map(len, items.values()), strict=True))
            self._unread_bytes += size
        self.note_dirs_many_locked(items)

    def drop_locked(self, key: str) -> None:
        """Drop ``key``'s value, if held."""
        old = self._values.pop(key, None)
        if old is not None:
            self._taken += 1
            self._current_size -= len(old)
            if self._still_victims:
                self._still_victims.discard(key)
            self._forget_unread_locked(key)

    def drop_where_locked(self, match: Callable[[str], bool]) -> None:
        """Drop the value of every key held for which ``match(key)`` is true."""
        for key in [k for k in self._values if match(k)]:
            self.drop_locked(key)

    def clear_locked(self) -> None:
        """Drop every value (the noted directories stay), then call ``on_unread_freed``."""
        self._values.clear()
        self._victims.clear()
        self._still_victims.clear()
        self._taken = 0
        self._current_size = 0
        self._unread.clear()
        self._unread_bytes = 0
        self._on_unread_freed()

    # -- values read ahead --------------------------------------------------------------
    def mark_unread_locked(self, key: str) -> None:
        """Mark ``key``'s value, if held, as read ahead and not read yet."""
        value = self._values.get(key)
        if value is not None:
            self._unread[key] = len(value)
            self._unread_bytes += len(value)

    def consume_unread_locked(self, keys: Iterable[str]) -> None:
        """The values of ``keys`` were read: unmark them, then call ``on_unread_freed``."""
        for key in keys:
            size = self._unread.pop(key, None)
            if size is not None:
                self._unread_bytes -= size
        self._on_unread_freed()

    def _forget_unread_locked(self, key: str) -> None:
        size = self._unread.pop(key, None)
        if size is not None:
            self._unread_bytes -= size
            self._on_unread_freed()

    # -- directories ------------------------------------------------------------------------
    def note_dirs_locked(self, key: str) -> None:
        """Note every directory ``key`` lies below (``"a/b/c"``: ``"a/b"`` and ``"a"``)."""
        dirs = self._dirs
        cut = key.rfind("/")
        while cut > 0:
            name = key[:cut]
            if name in dirs:
                return  # its ancestors are noted too
            dirs.add(name)
            cut = key.rfind("/", 0, cut)

    def note_dirs_many_locked(self, keys: Iterable[str]) -> None:
        """:meth:`note_dirs_locked` of every key (once per directory they lie in)."""
        for parent in set(map(itemgetter(0), map(methodcaller("rpartition", "/"), keys))):
            if parent:
                self.note_dirs_locked(parent + "/")

    def noted_dirs_locked(self, names: Iterable[str]) -> list[str]:
        """The ``names`` that are noted directories, in order."""
        dirs = self._dirs
        if not dirs:
            return []
        return [name for name in names if name in dirs]

    def clear_dirs_locked(self) -> None:
        """Forget every noted directory."""
        self._dirs.clear()
