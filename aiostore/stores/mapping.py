"""MappingStore: any ``MutableMapping`` of str -> bytes as an aiostore store.

The seed's first promise is that any mutable mapping can hold a zarr array;
this makes such a mapping (a plain ``dict``, a third-party mapping, a zarr 2
store) usable everywhere an aiostore store is. It is a blocking backend: the
mapping may do I/O, so the async side calls it from a worker thread, one batch
per hop, while the sync side calls it directly.

Examples
--------
>>> import anyio
>>> data = {}
>>> anyio.run(MappingStore(data).set_many, {"a/b": b"1"})
>>> data
{'a/b': b'1'}
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

from aiostore.abc import BlockingStore, Buffer, Request, Store, delete_each, read_each, write_each

__all__ = ["MappingStore", "as_store"]


class MappingStore(BlockingStore):
    """Store over any ``MutableMapping`` of str keys to bytes-like values.

    Parameters
    ----------
    mapping : MutableMapping
        Used as it is, not copied. Access is serialised with a lock, since a
        mapping in general is not safe to use from several threads at once. A
        mapping with zarr 2's ``listdir``, ``rmdir``, ``rename`` or ``getsize``
        methods (a zarr 2 store) answers those itself.
    read_only : bool
    dimension_separator : {".", "/"}, optional
        Defaults to the mapping's own ``_dimension_separator``, if any.
    """

    split_batches = False

    def __init__(
        self,
        mapping: MutableMapping[str, Any],
        *,
        read_only: bool = False,
        dimension_separator: str | None = None,
    ) -> None:
        if not isinstance(mapping, MutableMapping):
            raise TypeError(f"MappingStore needs a MutableMapping, not {type(mapping).__name__}")
        if dimension_separator is None:
            dimension_separator = getattr(mapping, "_dimension_separator", None)
        super().__init__(read_only=read_only, dimension_separator=dimension_separator)
        self.mapping = mapping
        self._lock = threading.RLock()

    def _value(self, key: str) -> bytes | None:
        try:
            return _to_bytes(self.mapping[key])
        except KeyError:
            return None

    def _store_value(self, key: str, value: Buffer) -> None:
        self.mapping[key] = bytes(value)

    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        with self._lock:
            return read_each(requests, self._value)

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        with self._lock:
            write_each(items, self._store_value)

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        with self._lock:
            return delete_each(keys, self.mapping.__delitem__)

    def _contains_blocking(self, key: str) -> bool:
        with self._lock:
            return key in self.mapping

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        with self._lock:
            # keys(), not iter(): zarr 2 counts the calls a cache makes (CountingDict).
            keys = list(self.mapping.keys())
        return (k for k in keys if isinstance(k, str) and k.startswith(prefix))

    # -- a zarr 2 store knows its own layout best: use its methods where it has them --
    def _own(self, name: str) -> Callable[..., Any] | None:
        method: Callable[..., Any] | None = getattr(self.mapping, name, None)
        if not callable(method):
            return None
        if name == "rmdir":
            erasable = getattr(self.mapping, "is_erasable", None)
            if callable(erasable) and not erasable():
                return None  # zarr 2 then deletes key by key
        return method

    def _listdir_blocking(self, path: str) -> list[str]:
        own = self._own("listdir")
        if own is None:
            return super()._listdir_blocking(path)
        with self._lock:
            return list(own(path))

    def _rmdir_blocking(self, path: str) -> None:
        own = self._own("rmdir")
        if own is None:
            super()._rmdir_blocking(path)
            return
        with self._lock:
            own(path)

    def _rename_blocking(self, src: str, dst: str) -> None:
        own = self._own("rename")
        if own is None:
            super()._rename_blocking(src, dst)
            return
        with self._lock:
            own(src, dst)

    def _getsize_blocking(self, path: str) -> int:
        own = self._own("getsize")
        if own is None:
            return super()._getsize_blocking(path)
        with self._lock:
            return int(own(path))

    def __getstate__(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "read_only": self._read_only,
            "dimension_separator": self._dimension_separator,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["mapping"],
            read_only=state["read_only"],
            dimension_separator=state["dimension_separator"],
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MappingStore) and self.mapping == other.mapping

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MappingStore({type(self.mapping).__name__})"


def _to_bytes(value: Any) -> bytes:
    return value if type(value) is bytes else bytes(memoryview(value).cast("B"))


def as_store(obj: object) -> Store:
    """Return an aiostore store for ``obj``.

    An aiostore store is returned as it is, a sync store (anything with an
    ``async_store`` attribute holding one) gives its async store, and any
    other ``MutableMapping`` is wrapped in :class:`MappingStore`.

    >>> as_store({})
    MappingStore(dict)
    """
    if isinstance(obj, Store):
        return obj
    inner = getattr(obj, "async_store", None)
    if isinstance(inner, Store):
        return inner
    if isinstance(obj, MutableMapping):
        return MappingStore(obj)
    raise TypeError(f"expected an aiostore store or a MutableMapping, not {type(obj).__name__}")
