"""``BlockingStore``: the base class of backends whose work is blocking code.

Re-exported by :mod:`aiostore.abc`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import is_
from typing import Any, ClassVar

from aiostore._protocol.checks import (
    Buffer,
    BufferLike,
    ByteRange,
    Request,
    also_failed,
    check_byte_range,
    check_open,
    check_rename,
    check_writable,
    child_name,
    joined_values,
    merged_values,
    raise_write_failures,
)
from aiostore._protocol.store import Store
from aiostore._runtime.coalesce import GetCoalescer
from aiostore._runtime.fanout import run_batch_sync
from aiostore._runtime.offload import offload, offload_batch
from aiostore.errors import BatchWriteError
from aiostore.keys import parent_prefix

__all__ = ["BlockingStore"]


class BlockingStore(Store):
    """Base class of a backend whose work is blocking code (files, databases, mappings).

    A subclass writes each operation once, as plain blocking, batch-shaped
    code; a single key is a batch of one. The ``*_sync`` methods call that code
    directly in the caller's thread (no event loop, no thread hop); the async
    methods send whole batches to worker threads (:mod:`aiostore._runtime.offload`:
    a batch is split into at most as many parts as there are threads for
    :attr:`resource`, one hop per part), and concurrent single-key ``get``
    calls are coalesced into one batch first. Both sides run the same checks
    first, so the hooks always receive normalized keys.

    The hooks a subclass writes:

    ``_get_blocking(requests) -> list[bytes | None]``
        ``requests`` is a sequence of ``(key, byte_range)``; answer the value
        (or its byte range; ``(-n, None)`` is the last ``n`` bytes) for each, in
        order, None for a missing key.
    ``_set_blocking(items)``
        Write ``(key, value)`` pairs, each all or nothing; raise
        :class:`~aiostore.BatchWriteError` naming the keys that failed (the
        others stay written).
    ``_delete_blocking(keys) -> list[str]``
        Remove the keys; return those that were missing.
    ``_contains_blocking(key) -> bool``
    ``_list_blocking(prefix) -> Iterator[str]``
        Every key starting with ``prefix``.

    and may override these, whose fallbacks here use the five above:
    ``_listdir_blocking(path)``, ``_rmdir_blocking(path)``,
    ``_rename_blocking(src, dst)`` (called once ``src`` is known to exist and
    ``dst`` not to), ``_getsize_blocking(path)``, ``_clear_blocking()``,
    ``_flush_blocking()``, ``_close_blocking()``.

    Class attributes: :attr:`resource` (the process-wide thread pool its work
    counts against, or None for work so cheap it runs in the event loop's own
    thread, as the memory store's does), :attr:`split_batches` (False for a
    backend whose batch must stay in one thread: one transaction, one lock) and
    :attr:`split_writes` (False for a backend with a single writer).

    Examples
    --------
    >>> import anyio
    >>> class DictStore(BlockingStore):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.data = {}
    ...     def _get_blocking(self, requests):
    ...         out = []
    ...         for key, byte_range in requests:
    ...             value = self.data.get(key)
    ...             if value is not None and byte_range is not None:
    ...                 value = value[slice(*byte_range)]
    ...             out.append(value)
    ...         return out
    ...     def _set_blocking(self, items):
    ...         self.data.update((key, bytes(value)) for key, value in items)
    ...     def _delete_blocking(self, keys):
    ...         return [key for key in keys if self.data.pop(key, None) is None]
    ...     def _contains_blocking(self, key):
    ...         return key in self.data
    ...     def _list_blocking(self, prefix):
    ...         return [key for key in list(self.data) if key.startswith(prefix)]
    >>> store = DictStore()
    >>> store.set_many_sync({"a/x": b"1", "a/y": b"22"})
    >>> anyio.run(store.get, "a/y"), store.listdir_sync("a"), store.getsize_sync("a")
    (b'22', ['x', 'y'], 3)
    """

    #: The process-wide thread pool ("disk" or "network") this backend's work
    #: counts against; None runs it in the calling thread, event loop or not.
    resource: ClassVar[str | None] = "disk"
    #: Whether a batch of reads or deletes may be split over several threads (False
    #: for backends whose work holds the GIL, such as LMDB, or needs one lock anyway).
    split_batches: ClassVar[bool] = True
    #: Whether a batch of writes may be split over several threads (False for a
    #: backend with one writer, such as a Zip file); ``split_batches`` still applies.
    split_writes: ClassVar[bool] = True
    supports_sync_io = True
    #: Keys listed per thread hop while streaming ``list``.
    list_page_size: ClassVar[int] = 1000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._coalescer = GetCoalescer(self._get_ranges)

    # -- hooks: a blocking backend writes these ------------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        raise NotImplementedError

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        raise NotImplementedError

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def _contains_blocking(self, key: str) -> bool:
        raise NotImplementedError

    def _list_blocking(self, prefix: str) -> Iterable[str]:
        raise NotImplementedError

    # -- hooks with fallbacks: override to be faster ---------------------------------
    def _listdir_blocking(self, path: str) -> list[str]:
        prefix = parent_prefix(path)
        return sorted({child_name(prefix, key) for key in self._list_blocking(prefix)})

    def _exists_blocking(self, path: str) -> bool:
        return self._contains_blocking(path) or bool(self._listdir_blocking(path))

    def _rmdir_blocking(self, path: str) -> None:
        self._delete_blocking(list(self._list_blocking(parent_prefix(path))))

    def _rename_blocking(self, src: str, dst: str) -> None:
        keys = list(self._list_blocking(parent_prefix(src)))
        if self._contains_blocking(src):
            keys.append(src)
        values = self._get_blocking([(key, None) for key in keys])
        moved = [(key, value) for key, value in zip(keys, values, strict=True) if value is not None]
        self._set_blocking([(dst + key[len(src) :], value) for key, value in moved])
        self._delete_blocking([key for key, _ in moved])

    def _getsize_blocking(self, path: str) -> int:
        if path and self._contains_blocking(path):
            [value] = self._get_blocking([(path, None)])
            return 0 if value is None else len(value)
        prefix = parent_prefix(path)
        children = [k for k in self._list_blocking(prefix) if "/" not in k[len(prefix) :]]
        return sum(len(v) for v in self._get_blocking([(k, None) for k in children]) if v is not None)

    def _clear_blocking(self) -> None:
        self._rmdir_blocking("")

    def _flush_blocking(self) -> None:
        return None

    def _close_blocking(self) -> None:
        return None

    # -- whole operations, blocking: what both sides run ------------------------------
    def _read_values(self, keys: Sequence[str]) -> dict[str, bytes]:
        values = self._get_blocking(list(zip(keys, repeat(None))))
        # C-level loops for the usual batch, every key present. ``is``: a buffer compared
        # with None (``in``) raises and clears an error inside (0.19 µs a value).
        if not any(map(is_, values, repeat(None))):
            return dict(zip(keys, values, strict=True))  # type: ignore[arg-type]
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    def _set_one(self, key: str, value: Buffer) -> None:
        try:
            self._set_blocking([(key, value)])
        except BatchWriteError as exc:
            # A single write raises what went wrong, not a batch report of one key.
            error = exc.failed.get(key)
            if isinstance(error, Exception) and len(exc.failed) == 1:
                error.__suppress_context__ = True  # its own __cause__, if any, stays
                raise error  # noqa: B904
            raise

    def _contains_each(self, keys: Sequence[str]) -> list[bool]:
        return list(map(self._contains_blocking, keys))

    def _delete_one(self, key: str) -> None:
        if self._delete_blocking([key]):
            raise KeyError(key)

    def _rename_checked(self, src_path: object, dst_path: object, src: str, dst: str) -> None:
        if not check_rename(src_path, dst_path, src, dst):
            return
        if not self._exists_blocking(src):
            raise KeyError(src_path)
        if self._exists_blocking(dst):
            raise FileExistsError(f"cannot rename {src_path!r} to {dst_path!r}: {dst_path!r} exists")
        self._rename_blocking(src, dst)

    def _close_once(self) -> None:
        try:
            if not self._read_only:
                self._flush_blocking()
        finally:
            self._closed = True
            self._close_blocking()

    # -- Store's async hooks: the blocking code, offloaded in batches -----------------
    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        if self.resource is None:
            [value] = self._get_blocking([(key, byte_range)])
        else:
            value = await self._coalescer.get(key, byte_range)
        if value is None:
            raise KeyError(key)
        return value

    async def _get_ranges(self, requests: list[Request]) -> list[bytes | None]:
        return joined_values(await self._offload_batch(self._get_blocking, requests))

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        return merged_values(await self._offload_batch(self._read_values, keys))

    async def _set(self, key: str, value: Buffer) -> None:
        await offload(self.resource, self._set_one, key, value)

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        split = self.split_batches and self.split_writes
        raise_write_failures(
            await offload_batch(self.resource, self._set_blocking, items, split=split, waits=True)
        )

    async def _delete(self, key: str) -> None:
        await offload(self.resource, self._delete_one, key)

    async def _delete_many(self, keys: list[str]) -> None:
        joined_values(await self._offload_batch(self._delete_blocking, keys))

    async def _contains(self, key: str) -> bool:
        return await offload(self.resource, self._contains_blocking, key)

    async def _contains_many(self, keys: list[str]) -> list[bool]:
        return joined_values(await self._offload_batch(self._contains_each, keys))

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        page_size = self.list_page_size
        # Created in the first worker call: starting a listing may itself block.
        iterator: Iterator[str] | None = None

        def next_page() -> list[str]:
            nonlocal iterator
            if iterator is None:
                iterator = iter(self._list_blocking(prefix))
            page = []
            for key in iterator:
                page.append(key)
                if len(page) >= page_size:
                    break
            return page

        try:
            while True:
                page = await offload(self.resource, next_page)
                for key in page:
                    yield key
                if len(page) < page_size:
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    async def _listdir(self, path: str) -> list[str]:
        return await offload(self.resource, self._listdir_blocking, path)

    async def _exists(self, path: str) -> bool:
        return await offload(self.resource, self._exists_blocking, path)

    async def _rmdir(self, path: str) -> None:
        await offload(self.resource, self._rmdir_blocking, path)

    async def _rename(self, src: str, dst: str) -> None:
        await offload(self.resource, self._rename_blocking, src, dst)

    async def _getsize(self, path: str) -> int:
        return await offload(self.resource, self._getsize_blocking, path)

    async def _clear(self) -> None:
        await offload(self.resource, self._clear_blocking)

    async def _flush(self) -> None:
        await offload(self.resource, self._flush_blocking)

    async def _close(self) -> None:
        await offload(self.resource, self._close_blocking)

    async def _offload_batch(self, fn: Any, items: Sequence[Any]) -> list[tuple[Sequence[Any], Any]]:
        return await offload_batch(self.resource, fn, items, split=self.split_batches)

    def _batch_sync(self, fn: Any, items: Sequence[Any]) -> list[tuple[Sequence[Any], Any]]:
        return run_batch_sync(self.resource, fn, items, split=self.split_batches)

    # The checks of rename need the store's state: one blocking call does them and the move.
    async def rename(self, src_path: str, dst_path: str) -> None:
        """Move the key ``src_path`` and everything below it to ``dst_path``.

        Raises :class:`KeyError` if nothing is at ``src_path`` and
        :class:`FileExistsError` if something is at ``dst_path``.
        """
        check_writable(self)
        src, dst = self.check_path(src_path), self.check_path(dst_path)
        await offload(self.resource, self._rename_checked, src_path, dst_path, src, dst)

    # -- the public sync API: the same blocking code, called directly ------------------
    def get_sync(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Blocking :meth:`~Store.get`."""
        check_open(self)
        [value] = self._get_blocking([(self.check_key(key), check_byte_range(byte_range))])
        if value is None:
            raise KeyError(key)
        return value

    def get_many_sync(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Blocking :meth:`~Store.get_many`."""
        check_open(self)
        normalized = self.check_keys(keys)
        return merged_values(self._batch_sync(self._read_values, normalized)) if normalized else {}

    def get_ranges_sync(self, requests: Iterable[tuple[str, ByteRange | None]]) -> list[bytes | None]:
        """Blocking :meth:`~Store.get_ranges`."""
        check_open(self)
        checked = [(self.check_key(k), check_byte_range(r)) for k, r in requests]
        return joined_values(self._batch_sync(self._get_blocking, checked)) if checked else []

    def set_sync(self, key: str, value: BufferLike) -> None:
        """Blocking :meth:`~Store.set`."""
        check_writable(self)
        [(k, buffer)] = self.check_items(((key, value),))
        self._set_one(k, buffer)

    def set_many_sync(self, mapping: Mapping[str, BufferLike] | Iterable[tuple[str, BufferLike]]) -> None:
        """Blocking :meth:`~Store.set_many`."""
        check_writable(self)
        items = self.check_items(mapping)
        items, conflicts = self.without_conflicts(items)
        with also_failed(conflicts):
            if items:
                split = self.split_batches and self.split_writes
                parts = run_batch_sync(self.resource, self._set_blocking, items, split=split, waits=True)
                if len(parts) == 1 and isinstance(parts[0][1], BaseException):
                    raise parts[0][1]  # one call: what it raised, as a direct call would
                raise_write_failures(parts)

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`~Store.delete`."""
        check_writable(self)
        self._delete_one(self.check_key(key))

    def delete_many_sync(self, keys: Iterable[str]) -> None:
        """Blocking :meth:`~Store.delete_many`."""
        check_writable(self)
        normalized = self.check_keys(keys)
        if normalized:
            joined_values(self._batch_sync(self._delete_blocking, normalized))

    def contains_sync(self, key: str) -> bool:
        """Blocking :meth:`~Store.contains`."""
        check_open(self)
        return self._contains_blocking(self.check_key(key))

    def contains_many_sync(self, keys: Iterable[str]) -> list[bool]:
        """Blocking :meth:`~Store.contains_many`."""
        check_open(self)
        normalized = self.check_keys(keys)
        return joined_values(self._batch_sync(self._contains_each, normalized)) if normalized else []

    def list_sync(self, prefix: str = "") -> Iterator[str]:
        """Blocking :meth:`~Store.list`: an iterator over the keys."""
        check_open(self)
        return iter(self._list_blocking(self.check_prefix(prefix)))

    def listdir_sync(self, path: str | None = "") -> list[str]:
        """Blocking :meth:`~Store.listdir`."""
        check_open(self)
        return sorted(self._listdir_blocking(self.check_path(path)))

    def rmdir_sync(self, path: str | None = "") -> None:
        """Blocking :meth:`~Store.rmdir`."""
        check_writable(self)
        normalized = self.check_path(path)
        if normalized:
            self._rmdir_blocking(normalized)
        else:
            self._clear_blocking()

    def rename_sync(self, src_path: str, dst_path: str) -> None:
        """Blocking :meth:`~Store.rename`."""
        check_writable(self)
        self._rename_checked(src_path, dst_path, self.check_path(src_path), self.check_path(dst_path))

    def getsize_sync(self, path: str | None = "") -> int:
        """Blocking :meth:`~Store.getsize`."""
        check_open(self)
        return self._getsize_blocking(self.check_path(path))

    def clear_sync(self) -> None:
        """Blocking :meth:`~Store.clear`."""
        check_writable(self)
        self._clear_blocking()

    def flush_sync(self) -> None:
        """Blocking :meth:`~Store.flush`."""
        check_open(self)
        self._flush_blocking()

    def close_sync(self) -> None:
        """Blocking :meth:`~Store.aclose`: flush, release, mark closed; later calls do nothing."""
        if not self._closed:
            self._close_once()
