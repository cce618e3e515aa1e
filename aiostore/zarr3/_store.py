"""The zarr 3 store :class:`ZarrStore`, over any aiostore store."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import aclosing
from functools import partial
from time import perf_counter
from typing import Any, ClassVar

from zarr.abc.store import ByteRequest  # type: ignore[import-not-found,import-untyped,unused-ignore]
from zarr.abc.store import Store as _ZarrStore  # type: ignore[import-not-found,import-untyped,unused-ignore]
from zarr.core.buffer import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
    Buffer,
    BufferPrototype,
    default_buffer_prototype,
)

from aiostore._runtime.coalesce import INLINE_SECONDS
from aiostore.abc import Store, as_buffer, check_open, check_writable
from aiostore.stores.mapping import as_store
from aiostore.zarr3._batching import (
    WriteCoalescer,
    asyncio_running,
    delete_groups,
    fast_hops,
    inline_policy,
    read_many,
    set_groups,
    stream_keys,
    sum_sizes,
)
from aiostore.zarr3._conversions import ranges_answer, raw_value, to_buffer, to_byte_range

__all__ = ["ZarrStore"]


class ZarrStore(_ZarrStore):  # type: ignore[misc,unused-ignore]
    """A zarr 3 store (``zarr.abc.store.Store``) over any aiostore store.

    Parameters
    ----------
    store : aiostore.abc.Store, aiostore.sync.SyncStore or MutableMapping
        The backend. A sync store is unwrapped; any other mutable mapping is
        wrapped in :class:`aiostore.MappingStore`.
    read_only : bool
        Refuse writes through this adapter. A read-only backend makes the
        adapter read-only whatever this says.

    Notes
    -----
    Missing keys read as ``None`` and deleting one is a no-op, as zarr 3
    expects. ``close()`` flushes and closes the backend; views made by
    :meth:`with_read_only` share that backend. Two adapters are equal when
    their backends are, so a pickled and unpickled adapter equals the original.
    ``set_if_not_exists`` checks, then writes: like zarr 3's default, it is not
    atomic against another writer of the same key.

    For backends whose methods run without an event loop (blocking backends
    and the memory store) the adapter also offers zarr 3's synchronous
    protocol (``get_sync``, ``set_sync``, ``delete_sync``, ``get_ranges_sync``),
    which calls the blocking code directly in the caller's thread.

    Reads of a blocking backend skip the thread hop while they are cheap: a
    small value in the page cache takes a few microseconds to read, a hop 60 to
    300, so reads that take at most :attr:`inline_read_seconds` are made in the
    event loop's thread. Once slow reads are the rule -- a cold disk, a network
    file system, large values -- reads go back to the backend's threads, where
    concurrent gets are coalesced into batches, and try inline again a while
    later (see :class:`~aiostore._runtime.coalesce.InlineReads`). Values reach
    zarr without a copy (see :func:`~aiostore.zarr3.to_buffer`).

    Examples
    --------
    >>> import zarr
    >>> from aiostore import MemoryStore
    >>> store = ZarrStore(MemoryStore())
    >>> group = zarr.group(store, zarr_format=2)
    >>> group.attrs["title"] = "demo"
    >>> sorted(store.store.root)
    ['.zattrs', '.zgroup']
    >>> store.get_sync(".zattrs").to_bytes()
    b'{\\n  "title": "demo"\\n}'
    """

    #: A blocking backend's reads are made in the event loop's thread, with no
    #: thread hop, while slower reads than this stay rare (100 µs: about a hop's
    #: cost); 0 sends every read to the backend's threads. Read when an adapter is made.
    inline_read_seconds: ClassVar[float] = INLINE_SECONDS

    def __init__(self, store: Any, *, read_only: bool = False) -> None:
        backend = as_store(store)
        super().__init__(read_only=bool(read_only) or backend.read_only)
        self._store: Store = backend
        self._inline = inline_policy(backend, self.inline_read_seconds)
        # zarr 3 writes one chunk per call: concurrent calls become one batch.
        self._sets = WriteCoalescer(partial(set_groups, backend))
        self._deletes = WriteCoalescer(partial(delete_groups, backend))

    # -- properties -------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The aiostore store this adapter reads and writes."""
        return self._store

    @property
    def supports_writes(self) -> bool:
        """Whether the backend accepts writes at all."""
        return not self._store.read_only

    @property
    def supports_deletes(self) -> bool:
        """Whether the backend can delete keys."""
        return self._store.supports_deletes

    @property
    def supports_listing(self) -> bool:
        """Whether the backend can list keys."""
        return self._store.supports_listing

    @property
    def _supports_sync_io(self) -> bool:
        # zarr 3 takes its synchronous fast path only if this is true: offer it
        # only where the sync methods really skip the event loop.
        return self._store.supports_sync_io

    # -- opening, closing, views --------------------------------------------------
    async def _open(self) -> None:
        check_open(self._store)
        await super()._open()

    async def _ensure_open(self) -> None:
        # Never raises "already open": concurrent first calls may all get here.
        self._is_open = True

    def with_read_only(self, read_only: bool = False) -> ZarrStore:
        """A new, unopened adapter over the same backend with ``read_only`` set.

        >>> from aiostore import MemoryStore
        >>> ZarrStore(MemoryStore()).with_read_only(True).read_only
        True
        """
        return type(self)(self._store, read_only=read_only)

    def close(self) -> None:
        """Flush and close the backend (and mark this adapter closed)."""
        super().close()
        self._store.close_sync()

    # -- reading -----------------------------------------------------------------
    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """The value (or byte range of it) under ``key``, or None if it is missing."""
        self._is_open = True
        request = None if byte_range is None else to_byte_range(byte_range)
        inline = self._inline
        try:
            if inline is not None and inline.allowed():
                # zarr's hot path: one call per chunk, kept lean.
                start = perf_counter()
                try:
                    data = self._store.get_sync(key, request)
                finally:
                    inline.record(perf_counter() - start)
            else:
                with fast_hops():
                    data = await self._store.get(key, request)
        except KeyError:
            return None
        return to_buffer(data, prototype or default_buffer_prototype())

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Values (or byte ranges) for many keys, in order; None where missing.

        Whole values are fetched with one ``get_many`` batch; byte ranges of a
        blocking backend are read in one batch of thread hops as well.
        """
        self._is_open = True
        requests = [(key, to_byte_range(byte_range)) for key, byte_range in key_ranges]
        results = await read_many(self._store, requests, self._inline)
        return [None if data is None else to_buffer(data, prototype) for data in results]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        # zarr's batch read; batched here like get_partial_values.
        self._is_open = True
        listed = [(key, prototype, to_byte_range(byte_range)) for key, prototype, byte_range in requests]
        results = await read_many(self._store, [(key, request) for key, _, request in listed], self._inline)
        for (key, prototype, _), data in zip(listed, results, strict=True):
            yield key, None if data is None else to_buffer(data, prototype)

    def get_ranges_sync(
        self,
        key: str,
        byte_ranges: Sequence[ByteRequest | None],
        *,
        prototype: BufferPrototype,
        **coalescing: Any,
    ) -> Sequence[tuple[int, Buffer | None]]:
        """Many byte ranges of ``key``, blocking (zarr's FusedCodecPipeline reads a
        shard's inner chunks with it), as zarr's ``Store.get_ranges_sync``.

        zarr's own merges nearby ranges (``coalescing``), then makes one
        ``get_sync`` per merged range. With merging off (``max_coalesced_bytes=0``:
        zarr's ``array.sharding_coalesce_max_bytes``) that is one read per range, so
        a blocking backend reads them all in one batch instead -- one open of the
        shard's file for a directory store. A missing key raises
        ``BaseExceptionGroup([FileNotFoundError])``, as zarr's does.
        """
        if not self._store.supports_sync_io or coalescing.get("max_coalesced_bytes", 1) > 0:
            return super().get_ranges_sync(key, byte_ranges, prototype=prototype, **coalescing)  # type: ignore[no-any-return,unused-ignore]
        self._is_open = True
        requests = [(key, to_byte_range(byte_range)) for byte_range in byte_ranges]
        try:
            values = self._store.get_ranges_sync(requests) if requests else []
        except Exception as exc:  # zarr's contract: failures come in a group
            raise BaseExceptionGroup("chunk read failed", [exc]) from None
        return ranges_answer(key, prototype, values)

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value."""
        with fast_hops():
            return await self._store.contains(key)

    async def getsize(self, key: str) -> int:
        """The size in bytes of the value under ``key``; FileNotFoundError if missing."""
        with fast_hops():
            if not await self._store.contains(key):
                raise FileNotFoundError(key)
            return await self._store.getsize(key)

    async def getsize_prefix(self, prefix: str) -> int:
        """The summed sizes of every value below ``prefix`` (recursive)."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = [key async for key in self.list_prefix(prefix)]
        with fast_hops():
            return await sum_sizes(self._store, keys)

    # -- listing --------------------------------------------------------------------
    async def list(self) -> AsyncIterator[str]:
        """Every key in the store, streamed."""
        async with aclosing(stream_keys(self._store, "")) as keys:
            async for key in keys:
                yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Every key that starts with ``prefix`` (a plain string prefix)."""
        async with aclosing(stream_keys(self._store, prefix)) as keys:
            async for key in keys:
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """The names (keys and "directories") directly below ``prefix``."""
        with fast_hops():
            names = await self._store.listdir(prefix.rstrip("/"))
        for name in names:
            yield name

    async def is_empty(self, prefix: str) -> bool:
        """Whether no key lies below ``prefix`` (the whole store for ``""``)."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        async with aclosing(stream_keys(self._store, prefix)) as keys:
            async for _ in keys:
                return False
        return True

    # -- writing ------------------------------------------------------------------
    async def set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key`` (in one batch with concurrent sets)."""
        self._check_writable()
        self._is_open = True
        check_writable(self._store)
        # Checked here, so a bad key or value fails only its own call, not a batch.
        normalized = self._store.check_key(key)
        raw = as_buffer(raw_value(value, key), normalized)
        if _direct():
            await self._store.set(normalized, raw)
        else:
            await self._sets.submit(normalized, raw)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key`` unless ``key`` already holds a value."""
        self._check_writable()
        self._is_open = True
        raw = raw_value(value, key)
        with fast_hops():
            if not await self._store.contains(key):
                await self._store.set(key, raw)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        # zarr's batch write: one aiostore set_many (a native batch).
        self._check_writable()
        self._is_open = True
        with fast_hops():
            await self._store.set_many([(key, raw_value(value, key)) for key, value in values])

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        self._check_writable()
        check_writable(self._store)
        normalized = self._store.check_key(key)
        if _direct():
            await self._store.delete_many([normalized])
        else:
            await self._deletes.submit(normalized, None)

    async def delete_dir(self, prefix: str) -> None:
        """Remove every key below ``prefix`` (the whole store for ``""``)."""
        self._check_writable()
        path = prefix.strip("/")
        with fast_hops():
            if not path:
                await self._store.clear()
            elif await self._store.contains(path):
                # ``path`` is itself a key, which zarr keeps: remove only what is below.
                below = [key async for key in stream_keys(self._store, path + "/")]
                await self._store.delete_many(below)
            else:
                await self._store.rmdir(path)

    async def clear(self) -> None:
        """Remove every key."""
        self._check_writable()
        with fast_hops():
            await self._store.clear()

    # -- zarr 3's synchronous protocol: the backend's own *_sync methods ---------------
    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Blocking :meth:`get` (direct calls for blocking backends, no event loop)."""
        self._is_open = True
        try:
            data = self._store.get_sync(key, None if byte_range is None else to_byte_range(byte_range))
        except KeyError:
            return None
        return to_buffer(data, prototype or default_buffer_prototype())

    def set_sync(self, key: str, value: Buffer) -> None:
        """Blocking :meth:`set`."""
        self._check_writable()
        self._is_open = True
        self._store.set_sync(key, raw_value(value, key))

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`; a missing key is not an error."""
        self._check_writable()
        self._store.delete_many_sync([key])

    # -- identity -------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZarrStore) and self._store == other.store

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self._store, "read_only": self._read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["store"], read_only=state["read_only"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ZarrStore({self._store!r})"


def _direct() -> bool:
    """True where writes are not coalesced: outside asyncio (zarr 3 itself
    always runs on asyncio)."""
    return not asyncio_running()
