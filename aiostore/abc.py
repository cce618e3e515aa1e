"""The async store protocol every aiostore store implements.

A backend subclasses :class:`Store` and writes five primitives (``_get``,
``_set``, ``_delete``, ``_contains``, ``_list``). Everything else -- batches,
``listdir``, ``rmdir``, ``rename``, ``getsize``, ``clear`` -- has a working
fallback here built on those primitives, which a backend overrides only to be
faster. The public methods are the one place that checks keys (through
:mod:`aiostore.keys`), values, byte ranges, read-only and closed state, so a
backend's underscore methods always receive normalized keys and byte buffers.

Examples
--------
>>> import anyio
>>> from aiostore import MemoryStore
>>> async def main():
...     async with MemoryStore() as store:
...         await store.set_many({"a/0": b"x", "a/1": b"yz", "b": b"w"})
...         print(await store.get_many(["a/0", "a/1", "missing"]))
...         print(await store.listdir("a"), await store.getsize("a"))
...         print(await store.get("a/1", byte_range=(-1, None)))
>>> anyio.run(main)
{'a/0': b'x', 'a/1': b'yz'}
['0', '1'] 3
b'z'
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, TypeAlias

import anyio
import sniffio

from aiostore._inline import is_inline
from aiostore.errors import BatchWriteError, ClosedStoreError, ReadOnlyError
from aiostore.keys import normalize_key, normalize_keys, normalize_path, parent_prefix

__all__ = [
    "Store",
    "ByteRange",
    "Buffer",
    "as_buffer",
    "check_byte_range",
    "closing_scope",
    "child_name",
    "slice_byte_range",
]

#: ``(start, stop)``: ``stop=None`` reads to the end; ``start < 0`` (with
#: ``stop=None``) reads the last ``-start`` bytes.
ByteRange: TypeAlias = tuple[int, int | None]
#: What backends receive as a value: the caller's bytes, or a flat byte view.
Buffer: TypeAlias = bytes | memoryview


def as_buffer(value: object, key: str = "") -> Buffer:
    """Return ``value``'s raw bytes as ``bytes`` or a 1-d unsigned-byte view.

    Accepts anything with the buffer protocol (bytes, bytearray, memoryview,
    numpy arrays -- including datetime64/timedelta64 ones, whose raw bytes are
    their int64 values -- and ``array.array``); a C-contiguous buffer is not
    copied, others are copied in memory order. Raises :class:`TypeError` for
    anything else (``str``, lists, object arrays), naming the key.

    >>> as_buffer(b"ab")
    b'ab'
    >>> import numpy as np
    >>> bytes(as_buffer(np.arange(2, dtype="<u2")))
    b'\\x00\\x00\\x01\\x00'
    >>> as_buffer([1, 2], "k")
    Traceback (most recent call last):
    ...
    TypeError: value for key 'k' must be bytes-like (buffer protocol), not list
    """
    if type(value) is bytes:
        return value
    if isinstance(value, str) or (not hasattr(type(value), "__buffer__") and not _has_buffer(value)):
        raise TypeError(
            f"value for key {key!r} must be bytes-like (buffer protocol), not {type(value).__name__}"
        )
    try:
        view = memoryview(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, NotImplementedError) as exc:
        if getattr(getattr(value, "dtype", None), "kind", None) in ("m", "M"):
            # numpy exports no buffer for datetimes, yet zarr 2 passes such chunks
            # unencoded when there is no compressor: store their int64 bytes.
            import numpy as np

            return as_buffer(np.asarray(value).view(np.uint64), key)
        raise TypeError(
            f"value for key {key!r} must be bytes-like (buffer protocol), not {type(value).__name__}: {exc}"
        ) from None
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    if view.format == "O":
        # Raw bytes of an object array are pointers: meaningless once stored.
        raise TypeError(f"value for key {key!r} is an object array; encode it to bytes first")
    if view.nbytes == 0:
        return b""  # memoryview.cast refuses shapes with a zero in them
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(view.tobytes(order="A"))


def _has_buffer(value: object) -> bool:
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    except (ValueError, NotImplementedError):
        return True  # a buffer, but not a usable one: as_buffer names the problem
    return True


def check_byte_range(byte_range: object) -> ByteRange | None:
    """Validate a ``byte_range`` argument and return it as a tuple.

    >>> check_byte_range((2, None)), check_byte_range([0, 4]), check_byte_range(None)
    ((2, None), (0, 4), None)
    >>> check_byte_range((-4, 2))
    Traceback (most recent call last):
    ...
    ValueError: invalid byte_range (-4, 2): a suffix range (start < 0) must have stop=None
    """
    if byte_range is None:
        return None
    try:
        start: object
        stop: object
        start, stop = byte_range  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"byte_range must be a (start, stop) pair, not {byte_range!r}") from None
    if not isinstance(start, int) or isinstance(start, bool):
        raise TypeError(f"invalid byte_range {byte_range!r}: start must be an int")
    if stop is not None and (not isinstance(stop, int) or isinstance(stop, bool)):
        raise TypeError(f"invalid byte_range {byte_range!r}: stop must be an int or None")
    if start < 0 and stop is not None:
        raise ValueError(
            f"invalid byte_range {(start, stop)!r}: a suffix range (start < 0) must have stop=None"
        )
    if stop is not None and stop < start:
        raise ValueError(f"invalid byte_range {(start, stop)!r}: stop < start")
    return (start, stop)


def slice_byte_range(data: bytes, byte_range: ByteRange | None) -> bytes:
    """Apply a checked byte range to a whole value.

    >>> slice_byte_range(b"abcdef", (1, 3)), slice_byte_range(b"abcdef", (-2, None))
    (b'bc', b'ef')
    """
    if byte_range is None:
        return data
    start, stop = byte_range
    return data[start:stop]


class Store(abc.ABC):
    """Abstract async key-value store.

    Parameters
    ----------
    read_only : bool
        Refuse every write and delete with :class:`~aiostore.ReadOnlyError`.
    dimension_separator : {".", "/", None}
        The chunk key separator zarr 2 should use with this store.
    normalize_keys : bool
        Lower-case every key (zarr 2's ``normalize_keys``).
    """

    #: Whether ``delete`` works on this kind of store.
    supports_deletes: ClassVar[bool] = True
    #: Whether keys can be listed.
    supports_listing: ClassVar[bool] = True
    #: True for stores whose async methods never suspend when called from the
    #: sync side (they do no I/O of their own, or call blocking code inline).
    _sync_inline: ClassVar[bool] = False

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

    # -- properties ------------------------------------------------------
    @property
    def read_only(self) -> bool:
        """True if the store refuses writes and deletes."""
        return self._read_only

    @property
    def dimension_separator(self) -> str | None:
        """The chunk key separator zarr 2 uses with this store, or None."""
        return self._dimension_separator

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    # -- checks ----------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedStoreError(f"{self!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnlyError(f"{self!r} is read-only")

    def _key(self, key: object) -> str:
        return normalize_key(key, lower=self._normalize_keys)

    def _batch_keys(self, keys: Iterable[object]) -> list[str]:
        """The normalized keys of a batch, duplicates dropped (first kept)."""
        if type(self)._key is not Store._key:
            # A subclass adds rules of its own to every key.
            return list(dict.fromkeys(self._key(k) for k in keys))
        return normalize_keys(keys, lower=self._normalize_keys)

    def _path(self, path: object) -> str:
        return normalize_path(path, lower=self._normalize_keys)

    def _items(
        self, mapping: Mapping[Any, object] | Iterable[tuple[Any, object]]
    ) -> list[tuple[str, Buffer]]:
        pairs = mapping.items() if isinstance(mapping, Mapping) else mapping
        items: dict[str, Buffer] = {}
        for key, value in pairs:
            k = self._key(key)
            items[k] = as_buffer(value, k)
        return list(items.items())

    # -- primitives: every backend writes these --------------------------
    @abc.abstractmethod
    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        """Return the value (or the byte range of it); ``KeyError`` if missing."""

    @abc.abstractmethod
    async def _set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key``, replacing it atomically."""

    @abc.abstractmethod
    async def _delete(self, key: str) -> None:
        """Remove ``key``; ``KeyError`` if missing."""

    @abc.abstractmethod
    async def _contains(self, key: str) -> bool:
        """Return whether ``key`` holds a value."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> AsyncIterator[str]:
        """Yield every key that starts with ``prefix`` (a plain string prefix)."""

    # -- fallbacks: override to be faster ----------------------------------
    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key in keys:
            try:
                found[key] = await self._get(key, None)
            except KeyError:
                pass
        return found

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        failed: dict[str, BaseException] = {}
        for key, value in items:
            try:
                await self._set(key, value)
            except Exception as exc:
                failed[key] = exc
        if failed:
            raise BatchWriteError(failed)

    async def _delete_many(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self._delete(key)
            except KeyError:
                pass

    async def _listdir(self, path: str) -> list[str]:
        prefix = parent_prefix(path)
        return sorted({child_name(prefix, key) async for key in self._list(prefix)})

    async def _keys_under(self, path: str) -> list[str]:
        """The key ``path`` itself (if it holds a value) and every key below it."""
        keys = [k async for k in self._list(parent_prefix(path))]
        if path and await self._contains(path):
            keys.append(path)
        return keys

    async def _rmdir(self, path: str) -> None:
        # zarr 2 semantics: only what is *below* path; rmdir of a plain key is a no-op.
        await self._delete_many([k async for k in self._list(parent_prefix(path))])

    async def _rename(self, src: str, dst: str) -> None:
        moves = {}
        for key in await self._keys_under(src):
            moves[key] = dst + key[len(src) :]
        values = await self._get_many(list(moves))
        await self._set_many([(moves[k], v) for k, v in values.items()])
        await self._delete_many(list(values))

    async def _getsize(self, path: str) -> int:
        if path and await self._contains(path):
            return len(await self._get(path, None))
        prefix = parent_prefix(path)
        children = [k async for k in self._list(prefix) if "/" not in k[len(prefix) :]]
        values = await self._get_many(children)
        return sum(len(v) for v in values.values())

    async def _clear(self) -> None:
        await self._rmdir("")

    async def _flush(self) -> None:
        return None

    async def _close(self) -> None:
        return None

    # -- the public API ----------------------------------------------------
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
        self._check_open()
        return await self._get(self._key(key), check_byte_range(byte_range))

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the given keys; missing keys are left out.

        The keys in the result are the normalized keys.
        """
        self._check_open()
        normalized = self._batch_keys(keys)
        if not normalized:
            return {}
        return await self._get_many(normalized)

    async def set(self, key: str, value: object) -> None:
        """Store ``value`` (any bytes-like object) under ``key``."""
        self._check_writable()
        k = self._key(key)
        await self._set(k, as_buffer(value, k))

    async def set_many(self, mapping: Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
        """Store many values; each key is written all or nothing.

        Every key and value is checked before anything is written. If some
        writes fail, :class:`~aiostore.BatchWriteError` lists those keys (they
        hold their old values); the others are fully written.
        """
        self._check_writable()
        items = self._items(mapping)
        if items:
            await self._set_many(items)

    async def delete(self, key: str) -> None:
        """Remove ``key``; :class:`KeyError` if it is missing."""
        self._check_writable()
        await self._delete(self._key(key))

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the given keys; missing keys are ignored."""
        self._check_writable()
        normalized = self._batch_keys(keys)
        if normalized:
            await self._delete_many(normalized)

    async def contains(self, key: str) -> bool:
        """Return whether ``key`` holds a value."""
        self._check_open()
        return await self._contains(self._key(key))

    async def listdir(self, path: str | None = "") -> list[str]:
        """Return the sorted names of the children of ``path`` (keys and "directories")."""
        self._check_open()
        return sorted(await self._listdir(self._path(path)))

    async def rmdir(self, path: str | None = "") -> None:
        """Remove everything below ``path`` (the whole store for ``""``).

        As in zarr 2, a path that names a single key, or nothing, is left alone.
        """
        self._check_writable()
        normalized = self._path(path)
        if normalized:
            await self._rmdir(normalized)
        else:
            await self._clear()

    async def rename(self, src_path: str, dst_path: str) -> None:
        """Move the key ``src_path`` and everything below it to ``dst_path``.

        Raises :class:`KeyError` if nothing is at ``src_path`` and
        :class:`FileExistsError` if something is at ``dst_path`` (a move never
        merges into or replaces what is stored; an ancestor of ``src_path`` is
        such a destination).
        """
        self._check_writable()
        src, dst = self._path(src_path), self._path(dst_path)
        if not src or not dst:
            raise ValueError(f"cannot rename the store root ({src_path!r} -> {dst_path!r})")
        if src == dst:
            return
        if dst.startswith(src + "/"):
            raise ValueError(f"cannot rename {src_path!r} into itself ({dst_path!r})")
        if not (await self._contains(src) or await self._listdir(src)):
            raise KeyError(src_path)
        if await self._contains(dst) or await self._listdir(dst):
            raise FileExistsError(f"cannot rename {src_path!r} to {dst_path!r}: {dst_path!r} exists")
        await self._rename(src, dst)

    async def getsize(self, path: str | None = "") -> int:
        """zarr 2 semantics: a key's size, or the summed sizes of a path's
        immediate child keys (not recursive); 0 if nothing is there."""
        self._check_open()
        return await self._getsize(self._path(path))

    async def clear(self) -> None:
        """Remove every key."""
        self._check_writable()
        await self._clear()

    async def flush(self) -> None:
        """Make every write so far durable, where the backend buffers writes."""
        self._check_open()
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
        self._check_open()
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

    # Defined last: inside the class body the name ``list`` is this method.
    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every key starting with ``prefix``, streamed (not collected first).

        ``prefix`` is a plain string prefix: ``"a/b"`` matches ``"a/bc"``; use
        ``"a/b/"`` for what is below ``a/b``.
        """
        self._check_open()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, not {type(prefix).__name__}")
        if "\x00" in prefix:
            raise ValueError(f"invalid prefix {prefix!r}: NUL characters are not allowed")
        if self._normalize_keys:
            prefix = prefix.lower()
        keys = self._list(prefix.lstrip("/"))
        try:
            async for key in keys:
                yield key
        finally:
            # A caller that stops early closes this generator; close the backend's
            # listing now too (it may hold a directory handle or a transaction).
            aclose = getattr(keys, "aclose", None)
            if aclose is not None:
                await aclose()


def closing_scope() -> contextlib.AbstractContextManager[Any]:
    """A scope that shields a store's closing from cancellation (nothing when inline).

    A cancelled close would leave a store marked closed that still holds its
    files, environments or temporary directory; the close is short and its
    thread work cannot be interrupted anyway.

    >>> with closing_scope():
    ...     pass
    """
    if is_inline():
        return contextlib.nullcontext()  # no event loop: nothing can cancel
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return contextlib.nullcontext()
    return anyio.CancelScope(shield=True)


def child_name(prefix: str, key: str) -> str:
    """The first segment of ``key`` after ``prefix``.

    >>> child_name("a/", "a/b/c")
    'b'
    """
    return key[len(prefix) :].split("/", 1)[0]
