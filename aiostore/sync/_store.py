"""``SyncStore``: a blocking ``MutableMapping`` over any aiostore store.

Every method calls the wrapped store's public ``*_sync`` method of the same
operation: for a blocking backend that is its blocking code, run in the
caller's thread; for a natively async store, its async method run on
aiostore's background event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from aiostore.abc import BufferLike, Store
from aiostore.keys import check_key_collection
from aiostore.stores.mapping import as_store
from aiostore.sync._zarr2 import Zarr2Protocol, register

__all__ = ["SyncStore", "as_sync_store"]

S = TypeVar("S", bound=Store)


class SyncStore(Zarr2Protocol, MutableMapping[str, bytes], Generic[S]):
    """A blocking ``MutableMapping`` view of an aiostore store, for zarr 2.

    Parameters
    ----------
    store : aiostore.abc.Store
        The async store to wrap.

    Examples
    --------
    >>> from aiostore import MemoryStore
    >>> store = SyncStore(MemoryStore())
    >>> store["a/b"] = b"xyz"
    >>> store.getitems(["a/b", "missing"], contexts={})
    {'a/b': b'xyz'}
    >>> store.listdir("a"), store.getsize("a/b"), len(store)
    (['b'], 3, 1)
    """

    def __init__(self, store: S) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"SyncStore wraps an aiostore store, not {type(store).__name__}")
        register(SyncStore)
        self._store: S = store

    @property
    def async_store(self) -> S:
        """The wrapped async store."""
        return self._store

    @property
    def read_only(self) -> bool:
        """True if the store refuses writes."""
        return self._store.read_only

    @property
    def dimension_separator(self) -> str | None:
        """The chunk key separator zarr 2 uses with this store, or None."""
        return self._store.dimension_separator

    # -- MutableMapping -----------------------------------------------------
    def __getitem__(self, key: str) -> bytes:
        return self._store.get_sync(key)

    def __setitem__(self, key: str, value: BufferLike) -> None:
        self._store.set_sync(key, value)

    def __delitem__(self, key: str) -> None:
        self._store.delete_sync(key)

    def __contains__(self, key: object) -> bool:
        return self._store.contains_sync(key)  # type: ignore[arg-type]  # the key gate names a bad key

    def __iter__(self) -> Iterator[str]:
        return self._store.list_sync()

    def __len__(self) -> int:
        return sum(1 for _ in self._store.list_sync())

    def clear(self) -> None:
        """Remove every key."""
        self._store.clear_sync()

    # -- zarr 2 store API -----------------------------------------------------
    def getitems(self, keys: Iterable[str], *, contexts: Any = None) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys present (zarr 2's batch read).

        The result is keyed by the keys as given (zarr 2 looks its chunk keys
        up in it), not by the normalized keys ``get_many`` answers with.
        """
        check_key_collection(keys)
        requested = keys if isinstance(keys, list) else list(keys)
        found = self._store.get_many_sync(requested)
        # Every key already normal (zarr's own keys, as a rule); the answer in the
        # order asked (a warm cache's) is one C-level list compare.
        if len(found) == len(requested) and (
            list(found) == requested or all(map(found.__contains__, requested))
        ):
            return found
        answer: dict[str, bytes] = {}
        for key in requested:
            value = found.get(key)
            if value is None:
                value = found.get(self._store.check_key(key))
            if value is not None:
                answer[key] = value
        return answer

    def setitems(self, values: Mapping[str, BufferLike]) -> None:
        """Store many values in one batch (zarr 2's batch write)."""
        self._store.set_many_sync(values)

    def delitems(self, keys: Iterable[str]) -> None:
        """Remove many keys in one batch; missing keys are ignored."""
        self._store.delete_many_sync(keys)

    def listdir(self, path: str | None = None) -> list[str]:
        """Sorted names of the children of ``path``."""
        return self._store.listdir_sync(path)

    def rmdir(self, path: str | None = None) -> None:
        """Remove ``path`` and everything below it."""
        self._store.rmdir_sync(path)

    def rename(self, src_path: str, dst_path: str) -> None:
        """Move ``src_path`` and everything below it to ``dst_path``."""
        self._store.rename_sync(src_path, dst_path)

    def getsize(self, path: str | None = None) -> int:
        """A key's size, or the summed sizes of a path's immediate children."""
        return self._store.getsize_sync(path)

    def flush(self) -> None:
        """Make the writes so far durable."""
        self._store.flush_sync()

    def close(self) -> None:
        """Flush and close the store."""
        self._store.close_sync()

    def is_readable(self) -> bool:
        """zarr 2's probe: always True."""
        return True

    def is_writeable(self) -> bool:
        """zarr 2's probe: False for a read-only store."""
        return not self._store.read_only

    def is_listable(self) -> bool:
        """zarr 2's probe: whether keys can be listed."""
        return self._store.supports_listing

    def is_erasable(self) -> bool:
        """zarr 2's probe: whether keys can be deleted."""
        return self._store.supports_deletes and not self._store.read_only

    def __enter__(self) -> SyncStore[S]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- identity and pickling --------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, SyncStore) and self._store == other.async_store

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self._store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        SyncStore.__init__(self, state["store"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"

    def __getattr__(self, name: str) -> Any:
        # Store-specific attributes (``path``, ``root``, ``mapping`` ...) of the
        # wrapped store; never private ones, so zarr's feature probes stay honest.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.__dict__["_store"], name)


def as_sync_store(obj: object) -> SyncStore[Store]:
    """A :class:`SyncStore` for an aiostore store, a sync store or any mapping.

    >>> as_sync_store({"a": b"1"})["a"]
    b'1'
    """
    if isinstance(obj, SyncStore):
        return obj
    return SyncStore(as_store(obj))
