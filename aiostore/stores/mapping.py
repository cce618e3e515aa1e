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
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

from aiostore._runtime.offload import BlockingStore
from aiostore.abc import Buffer, ByteRange, Store, slice_byte_range

__all__ = ["MappingStore", "as_store"]


class MappingStore(BlockingStore):
    """Store over any ``MutableMapping`` of str keys to bytes-like values.

    Parameters
    ----------
    mapping : MutableMapping
        Used as it is, not copied. Access is serialised with a lock, since a
        mapping in general is not safe to use from several threads at once.
    read_only : bool
    dimension_separator : {".", "/"}, optional
        Defaults to the mapping's own ``_dimension_separator``, if any.
    """

    _split_batches = False

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

    def _get_blocking(self, key: str, byte_range: ByteRange | None) -> bytes:
        with self._lock:
            value = self.mapping[key]
        return slice_byte_range(_to_bytes(value), byte_range)

    def _get_batch(self, keys: Sequence[str]) -> dict[str, bytes]:
        found = {}
        with self._lock:
            for key in keys:
                try:
                    found[key] = _to_bytes(self.mapping[key])
                except KeyError:
                    pass
        return found

    def _set_blocking(self, key: str, value: Buffer) -> None:
        with self._lock:
            self.mapping[key] = bytes(value)

    def _set_batch(self, items: Sequence[tuple[str, Buffer]]) -> None:
        with self._lock:
            super()._set_batch(items)

    def _delete_blocking(self, key: str) -> None:
        with self._lock:
            del self.mapping[key]

    def _contains_blocking(self, key: str) -> bool:
        with self._lock:
            return key in self.mapping

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        with self._lock:
            # keys(), not iter(): zarr 2 counts the calls a cache makes (CountingDict).
            keys = list(self.mapping.keys())
        return (k for k in keys if isinstance(k, str) and k.startswith(prefix))

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
