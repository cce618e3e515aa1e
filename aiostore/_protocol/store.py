"""``Store``: the protocol, base of natively async backends; described in :mod:`aiostore.abc`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import ClassVar

from aiostore._protocol.checks import (
    Buffer,
    BufferLike,
    ByteRange,
    also_failed,
    as_buffer,
    check_byte_range,
    check_open,
    check_rename,
    check_writable,
    closing_scope,
    collect,
    split_conflicts,
)
from aiostore._protocol.hooks import StoreHooks
from aiostore._runtime.portal import run_on_portal
from aiostore.keys import KeyLimits, check_key_collection, normalize_key, normalize_keys, normalize_path

__all__ = ["Store"]


class Store(StoreHooks):
    """The store protocol, and the base class of a natively async backend.

    Every aiostore store is a ``Store``. Its public methods -- async, and a
    blocking ``*_sync`` twin of each -- check their arguments (keys through
    :mod:`aiostore.keys`, values, byte ranges, closed and read-only state) and
    then call the backend's hooks, so hooks always receive normalized keys,
    checked byte ranges and flat byte buffers.

    A natively async backend (one that awaits real async I/O, such as an object
    store client) subclasses ``Store`` and writes five async hooks:

    ``async _get(key, byte_range) -> bytes``
        The value, or its byte range; ``KeyError(key)`` if missing.
    ``async _set(key, value)``
        Store ``value`` (``bytes`` or a flat ``memoryview``), atomically.
    ``async _delete(key)``
        Remove ``key``; ``KeyError(key)`` if missing.
    ``async _contains(key) -> bool``
    ``_list(prefix)``
        An async generator of every key starting with ``prefix``.

    and may override these, whose fallbacks here are built on the five:
    ``_get_many(keys) -> dict``, ``_get_ranges(requests) -> list``, ``_set_many(items)``
    (raise :class:`~aiostore.BatchWriteError` naming the keys that failed),
    ``_delete_many(keys)`` (missing keys ignored), ``_contains_many(keys) -> list``,
    ``_listdir(path)``, ``_rmdir(path)``, ``_rename(src, dst)``, ``_getsize(path)``,
    ``_clear()``, ``_flush()``, ``_close()``; and, to add rules of its own to keys,
    :meth:`check_key` and :meth:`check_keys`. The ``*_sync`` methods run the async
    ones on aiostore's background event loop. A backend whose work is blocking code
    subclasses :class:`aiostore.abc.BlockingStore` instead, whose ``*_sync`` methods
    call that code directly.

    Parameters
    ----------
    read_only : bool
        Refuse every write and delete with :class:`~aiostore.ReadOnlyError`.
    dimension_separator : {".", "/", None}
        The chunk key separator zarr 2 should use with this store.
    normalize_keys : bool
        Lower-case every key (zarr 2's ``normalize_keys``).

    Examples
    --------
    >>> import anyio
    >>> class TinyStore(Store):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.data = {}
    ...     async def _get(self, key, byte_range):
    ...         value = self.data[key]
    ...         return value if byte_range is None else value[byte_range[0]:byte_range[1]]
    ...     async def _set(self, key, value):
    ...         self.data[key] = bytes(value)
    ...     async def _delete(self, key):
    ...         del self.data[key]
    ...     async def _contains(self, key):
    ...         return key in self.data
    ...     async def _list(self, prefix):
    ...         for key in list(self.data):
    ...             if key.startswith(prefix):
    ...                 yield key
    >>> store = TinyStore()
    >>> anyio.run(store.set_many, {"x/a": b"1", "x/b": b"22"})
    >>> anyio.run(store.listdir, "x"), store.getsize_sync("x")
    (['a', 'b'], 3)
    """

    supports_deletes: ClassVar[bool] = True  #: Whether ``delete`` works on this kind of store.
    supports_listing: ClassVar[bool] = True  #: Whether keys can be listed.
    #: Whether a name holds a value or other keys, never both (memory and
    #: directory stores): a batch writing "x" and "x/y" then fails "x/y".
    hierarchical: ClassVar[bool] = False
    #: Whether the ``*_sync`` methods work without an event loop (a blocking backend's do).
    supports_sync_io: ClassVar[bool] = False
    #: What the backend can store beyond the key rules (the longest key and file
    #: name, valid Unicode only): the key gate refuses a key past them with a
    #: ValueError naming it. A class attribute, or set per store in ``__init__``.
    key_limits: KeyLimits = KeyLimits()

    def __init__(
        self,
        *,
        read_only: bool = False,
        dimension_separator: str | None = None,
        normalize_keys: bool = False,
    ) -> None:
        if dimension_separator not in (None, ".", "/"):
            raise ValueError(f"dimension_separator must be '.', '/' or None, not {dimension_separator!r}")
        self._read_only = bool(read_only)
        self._dimension_separator = dimension_separator
        self._normalize_keys = bool(normalize_keys)
        self._closed = False

    @property
    def read_only(self) -> bool:
        """True if the store refuses writes and deletes."""
        return self._read_only

    @property
    def dimension_separator(self) -> str | None:
        """The chunk key separator zarr 2 uses with this store, or None."""
        return self._dimension_separator

    @property
    def normalize_keys(self) -> bool:
        """True if keys are lower-cased (zarr 2's ``normalize_keys``)."""
        return self._normalize_keys

    @property
    def closed(self) -> bool:
        """True once the store has been closed."""
        return self._closed

    # -- the key gate (hooks a backend may extend; call super()) --------------
    def check_key(self, key: object) -> str:
        """Return ``key`` as this store stores it; ``TypeError``/``ValueError`` if bad.

        >>> from aiostore import MemoryStore
        >>> MemoryStore().check_key("/a//b")
        'a/b'
        """
        return normalize_key(key, lower=self._normalize_keys, limits=self.key_limits)

    def check_keys(self, keys: Iterable[object]) -> list[str]:
        """:meth:`check_key` of every key of a batch, duplicates dropped (first kept);
        a ``str`` or ``bytes`` is refused: it is not a collection of keys."""
        if type(self).check_key is not Store.check_key:
            check_key_collection(keys)
            return list(dict.fromkeys(self.check_key(k) for k in keys))
        return normalize_keys(keys, lower=self._normalize_keys, limits=self.key_limits)

    def check_path(self, path: object) -> str:
        """Return a path (``None`` or ``""`` for the root) as this store stores it."""
        return normalize_path(path, lower=self._normalize_keys, limits=self.key_limits)

    def check_items(
        self, mapping: Mapping[str, BufferLike] | Iterable[tuple[str, BufferLike]]
    ) -> list[tuple[str, Buffer]]:
        """The checked ``(key, value)`` pairs of a batch write, later duplicates winning."""
        if not isinstance(mapping, Mapping):
            check_key_collection(mapping, "items")
            mapping = dict(mapping)  # later duplicates win
        keys = self.check_keys(mapping)  # in one batch: C-level scans for keys already normal
        if len(keys) == len(mapping):  # no two keys normalized to one: keys[i] is key i's
            return list(zip(keys, map(as_buffer, mapping.values(), keys), strict=True))
        items = {(k := self.check_key(key)): as_buffer(value, k) for key, value in mapping.items()}
        return list(items.items())

    def without_conflicts(
        self, items: list[tuple[str, Buffer]]
    ) -> tuple[list[tuple[str, Buffer]], dict[str, BaseException]]:
        """Split off the keys of a batch that another key of the batch would hold a value above,
        in a :attr:`hierarchical` store (:func:`~aiostore.abc.split_conflicts`): (the rest,
        {split key: its error})."""
        return split_conflicts(items) if self.hierarchical else (items, {})

    # -- the public async API ----------------------------------------------------
    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return the value stored under ``key``.

        Parameters
        ----------
        key : str
        byte_range : (int, int or None), optional
            ``(start, stop)`` reads ``value[start:stop]``; ``stop=None`` reads to
            the end; ``(-n, None)`` reads the last ``n`` bytes.

        Raises
        ------
        KeyError
            If nothing is stored under ``key``.
        """
        check_open(self)
        return await self._get(self.check_key(key), check_byte_range(byte_range))

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the given keys; missing keys are left out.

        The keys in the result are the normalized keys.
        """
        check_open(self)
        normalized = self.check_keys(keys)
        return await self._get_many(normalized) if normalized else {}

    async def get_ranges(self, requests: Iterable[tuple[str, ByteRange | None]]) -> list[bytes | None]:
        """Read many ``(key, byte_range)`` pairs in one batch; None for a missing key.

        The answers are in the order of ``requests``.
        """
        check_open(self)
        checked = [(self.check_key(k), check_byte_range(r)) for k, r in requests]
        return await self._get_ranges(checked) if checked else []

    async def set(self, key: str, value: BufferLike) -> None:
        """Store ``value`` (any bytes-like object) under ``key``."""
        check_writable(self)
        k = self.check_key(key)
        await self._set(k, as_buffer(value, k))

    async def set_many(self, mapping: Mapping[str, BufferLike] | Iterable[tuple[str, BufferLike]]) -> None:
        """Store many values; each key is written all or nothing.

        Every key and value is checked before anything is written. If some
        writes fail, :class:`~aiostore.BatchWriteError` lists those keys (they
        hold their old values); the others are fully written.
        """
        check_writable(self)
        items = self.check_items(mapping)
        items, conflicts = self.without_conflicts(items)
        with also_failed(conflicts):
            if items:
                await self._set_many(items)

    async def delete(self, key: str) -> None:
        """Remove ``key``; :class:`KeyError` if it is missing."""
        check_writable(self)
        await self._delete(self.check_key(key))

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the given keys; missing keys are ignored."""
        check_writable(self)
        normalized = self.check_keys(keys)
        if normalized:
            await self._delete_many(normalized)

    async def contains(self, key: str) -> bool:
        """Return whether ``key`` holds a value."""
        check_open(self)
        return await self._contains(self.check_key(key))

    async def contains_many(self, keys: Iterable[str]) -> list[bool]:
        """Whether each key holds a value: a list of answers in order, from one batch (a
        repeated key is answered once)."""
        check_open(self)
        normalized = self.check_keys(keys)
        return await self._contains_many(normalized) if normalized else []

    async def listdir(self, path: str | None = "") -> list[str]:
        """Return the sorted names of the children of ``path`` (keys and "directories")."""
        check_open(self)
        return sorted(await self._listdir(self.check_path(path)))

    async def rmdir(self, path: str | None = "") -> None:
        """Remove everything below ``path`` (the whole store for ``""``).

        As in zarr 2, a path that names a single key, or nothing, is left alone.
        """
        check_writable(self)
        normalized = self.check_path(path)
        await (self._rmdir(normalized) if normalized else self._clear())

    async def rename(self, src_path: str, dst_path: str) -> None:
        """Move the key ``src_path`` and everything below it to ``dst_path``.

        Raises :class:`KeyError` if nothing is at ``src_path`` and
        :class:`FileExistsError` if something is at ``dst_path`` (a move never
        merges into or replaces what is stored; an ancestor of ``src_path`` is
        such a destination).
        """
        check_writable(self)
        src, dst = self.check_path(src_path), self.check_path(dst_path)
        if not check_rename(src_path, dst_path, src, dst):
            return
        if not await self._exists(src):
            raise KeyError(src_path)
        if await self._exists(dst):
            raise FileExistsError(f"cannot rename {src_path!r} to {dst_path!r}: {dst_path!r} exists")
        await self._rename(src, dst)

    async def getsize(self, path: str | None = "") -> int:
        """zarr 2 semantics: a key's size, or the summed sizes of a path's
        immediate child keys (not recursive); 0 if nothing is there."""
        check_open(self)
        return await self._getsize(self.check_path(path))

    async def clear(self) -> None:
        """Remove every key."""
        check_writable(self)
        await self._clear()

    async def flush(self) -> None:
        """Make every write so far durable, where the backend buffers writes."""
        check_open(self)
        await self._flush()

    async def aclose(self) -> None:
        """Flush and release the store's resources; later calls are no-ops.

        Runs to the end even in a cancelled scope (``async with`` left by a
        cancellation): a store marked closed has released everything.
        """
        if self._closed:
            return
        with closing_scope():
            try:
                if not self._read_only:
                    await self._flush()
            finally:
                self._closed = True
                await self._close()

    async def __aenter__(self) -> Store:
        check_open(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- the public sync API: the async methods, run on the background loop --------
    # BlockingStore overrides every one of these with direct calls of its blocking code.
    def get_sync(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Blocking :meth:`get`."""
        return run_on_portal(self.get(key, byte_range))

    def get_many_sync(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Blocking :meth:`get_many`."""
        return run_on_portal(self.get_many(keys))

    def get_ranges_sync(self, requests: Iterable[tuple[str, ByteRange | None]]) -> list[bytes | None]:
        """Blocking :meth:`get_ranges`."""
        return run_on_portal(self.get_ranges(requests))

    def set_sync(self, key: str, value: BufferLike) -> None:
        """Blocking :meth:`set`."""
        run_on_portal(self.set(key, value))

    def set_many_sync(
        self: Store, mapping: Mapping[str, BufferLike] | Iterable[tuple[str, BufferLike]]
    ) -> None:
        """Blocking :meth:`set_many`."""
        run_on_portal(self.set_many(mapping))

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`."""
        run_on_portal(self.delete(key))

    def delete_many_sync(self, keys: Iterable[str]) -> None:
        """Blocking :meth:`delete_many`."""
        run_on_portal(self.delete_many(keys))

    def contains_sync(self, key: str) -> bool:
        """Blocking :meth:`contains`."""
        return run_on_portal(self.contains(key))

    def contains_many_sync(self, keys: Iterable[str]) -> list[bool]:
        """Blocking :meth:`contains_many`."""
        return run_on_portal(self.contains_many(keys))

    def list_sync(self, prefix: str = "") -> Iterator[str]:
        """Blocking :meth:`list` (collected on the background loop, then iterated)."""
        return iter(run_on_portal(collect(self.list(prefix))))

    def listdir_sync(self, path: str | None = "") -> list[str]:
        """Blocking :meth:`listdir`."""
        return run_on_portal(self.listdir(path))

    def rmdir_sync(self, path: str | None = "") -> None:
        """Blocking :meth:`rmdir`."""
        run_on_portal(self.rmdir(path))

    def rename_sync(self, src_path: str, dst_path: str) -> None:
        """Blocking :meth:`rename`."""
        run_on_portal(self.rename(src_path, dst_path))

    def getsize_sync(self, path: str | None = "") -> int:
        """Blocking :meth:`getsize`."""
        return run_on_portal(self.getsize(path))

    def clear_sync(self) -> None:
        """Blocking :meth:`clear`."""
        run_on_portal(self.clear())

    def flush_sync(self) -> None:
        """Blocking :meth:`flush`."""
        run_on_portal(self.flush())

    def close_sync(self) -> None:
        """Blocking :meth:`aclose`."""
        run_on_portal(self.aclose())

    # Defined last: inside the class body the name ``list`` is this method.
    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every key starting with ``prefix``, streamed (not collected first).

        ``prefix`` is a plain string prefix: ``"a/b"`` matches ``"a/bc"``; use
        ``"a/b/"`` for what is below ``a/b``.
        """
        check_open(self)
        keys = self._list(self.check_prefix(prefix))
        try:
            async for key in keys:
                yield key
        finally:
            # A caller that stops early closes this generator; close the backend's
            # listing now too (it may hold a directory handle or a transaction).
            aclose = getattr(keys, "aclose", None)
            if aclose is not None:
                await aclose()

    def check_prefix(self, prefix: object) -> str:
        """Check a listing prefix (a plain string prefix, not a path)."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, not {type(prefix).__name__}: {prefix!r}")
        if "\x00" in prefix:
            raise ValueError(f"invalid prefix {prefix!r}: NUL characters are not allowed")
        if self._normalize_keys:
            prefix = prefix.lower()
        return prefix.lstrip("/")
