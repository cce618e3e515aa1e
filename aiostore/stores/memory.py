"""MemoryStore: a hierarchy of dicts held in memory (``DictStore`` in the seed).

Examples
--------
>>> import anyio
>>> store = MemoryStore()
>>> async def main():
...     await store.set("foo/bar", b"baz")
...     return store.root
>>> anyio.run(main)
{'foo': {'bar': b'baz'}}
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

from aiostore._runtime.forks import renew_after_fork
from aiostore.abc import BlockingStore, Buffer, Request, read_each, write_each
from aiostore.errors import KeyConflictError

__all__ = ["MemoryStore", "DictStore"]


class MemoryStore(BlockingStore):
    """Store that keeps every value in main memory, in nested dicts.

    Each path segment is one level of ``cls`` objects: ``"a/b"`` is stored as
    ``root["a"]["b"]``. A name is either a value or a "directory", never both,
    so writing a key below a value (``0/0`` where ``0`` holds one) raises
    :class:`~aiostore.errors.KeyConflictError` (a :class:`KeyError`) naming both
    keys, and changes nothing. zarr 2's other rules apply (its own store suite
    checks them): writing a value where a directory is replaces the directory,
    and deleting a directory's name removes it. Safe to use from many threads and
    tasks, and in a forked child (a copy: the parent does not see its writes).

    Parameters
    ----------
    root : MutableMapping, optional
        An existing hierarchy to use (not copied).
    cls : type
        The mapping type for each level (default ``dict``).
    dimension_separator : {".", "/"}, optional

    Examples
    --------
    >>> import anyio
    >>> async def main():
    ...     store = MemoryStore()
    ...     await store.set_many({"a/x": b"1", "a/y": b"22", "b": b"3"})
    ...     print(await store.listdir(""), await store.getsize("a"))
    >>> anyio.run(main)
    ['a', 'b'] 3
    """

    #: Memory work is cheaper than any thread hop: it runs in the calling thread.
    resource = None
    hierarchical = True

    def __init__(
        self,
        root: MutableMapping[str, Any] | None = None,
        cls: type[MutableMapping[str, Any]] = dict,
        dimension_separator: str | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(read_only=read_only, dimension_separator=dimension_separator)
        self.cls = cls
        self.root: MutableMapping[str, Any] = cls() if root is None else root
        self._lock = threading.RLock()
        renew_after_fork(self, type(self)._renew_after_fork)

    def _renew_after_fork(self) -> None:
        # In a forked child, first thing: a thread that did not come along may hold the lock.
        self._lock = threading.RLock()

    # -- tree helpers (call with the lock held) ---------------------------
    def _parent(self, key: str) -> tuple[MutableMapping[str, Any], str] | None:
        *dirs, name = key.split("/")
        node = self.root
        for segment in dirs:
            child = node.get(segment)
            if not isinstance(child, self.cls):
                return None
            node = child
        return node, name

    def _require_parent(self, key: str) -> tuple[MutableMapping[str, Any], str]:
        *dirs, name = key.split("/")
        node = self.root
        for i, segment in enumerate(dirs):
            child = node.get(segment)
            if child is None:
                child = node[segment] = self.cls()
            elif not isinstance(child, self.cls):
                # A KeyError, as zarr 2's MemoryStore raises here.
                raise KeyConflictError(key, "/".join(dirs[: i + 1]))
            node = child
        return node, name

    def _node(self, path: str) -> Any:
        if not path:
            return self.root
        found = self._parent(path)
        return None if found is None else found[0].get(found[1])

    def _walk(self, node: MutableMapping[str, Any], path: str) -> Iterator[str]:
        for name, child in list(node.items()):
            key = f"{path}/{name}" if path else name
            if isinstance(child, self.cls):
                yield from self._walk(child, key)
            else:
                yield key

    # -- blocking hooks (memory work: run in the calling thread, never offloaded) --
    def _value(self, key: str) -> bytes | None:
        value = self._node(key)
        return None if isinstance(value, self.cls) else value

    def _store_value(self, key: str, value: Buffer) -> None:
        parent, name = self._require_parent(key)
        # A directory already at ``key`` is replaced, as zarr 2's MemoryStore does.
        parent[name] = bytes(value)

    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        with self._lock:
            return read_each(requests, self._value)

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        with self._lock:
            write_each(items, self._store_value)

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        missing: list[str] = []
        with self._lock:
            for key in keys:
                found = self._parent(key)
                if found is None or found[1] not in found[0]:
                    missing.append(key)
                else:
                    # A directory's name deletes the directory, as zarr 2's MemoryStore does.
                    del found[0][found[1]]
                    self._prune(key)
        return missing

    def _prune(self, key: str) -> None:
        """Drop the directories above ``key`` left empty: a name whose last key was
        deleted is gone from listings (call with the lock held)."""
        parts = key.split("/")[:-1]
        while parts:
            found = self._parent("/".join(parts))
            if found is None:
                return
            parent, name = found
            child = parent.get(name)
            if not isinstance(child, self.cls) or child:
                return
            del parent[name]
            parts.pop()

    def _contains_blocking(self, key: str) -> bool:
        with self._lock:
            value = self._node(key)
        return value is not None and not isinstance(value, self.cls)

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        # Start the walk at the deepest directory the prefix names in full.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        with self._lock:
            node = self._node(base)
            keys = list(self._walk(node, base)) if isinstance(node, self.cls) else []
        return (key for key in keys if key.startswith(prefix))

    # -- faster paths -------------------------------------------------------
    def _listdir_blocking(self, path: str) -> list[str]:
        with self._lock:
            node = self._node(path)
            return sorted(node) if isinstance(node, self.cls) else []

    def _rmdir_blocking(self, path: str) -> None:
        with self._lock:
            found = self._parent(path)
            if found is not None and isinstance(found[0].get(found[1]), self.cls):
                del found[0][found[1]]
                self._prune(path)

    def _rename_blocking(self, src: str, dst: str) -> None:
        with self._lock:
            found = self._parent(src)
            if found is None or found[1] not in found[0]:
                raise KeyError(src)
            existing = self._node(dst)
            # An empty directory (left by deleting its last key) holds nothing.
            if existing is not None and not (isinstance(existing, self.cls) and not existing):
                raise FileExistsError(f"cannot rename {src!r} to {dst!r}: {dst!r} exists")
            parent, name = self._require_parent(dst)
            parent[name] = found[0].pop(found[1])
            self._prune(src)

    def _getsize_blocking(self, path: str) -> int:
        with self._lock:
            node = self._node(path)
            if node is None:
                return 0
            if isinstance(node, self.cls):
                return sum(len(v) for v in node.values() if not isinstance(v, self.cls))
            return len(node)

    def _clear_blocking(self) -> None:
        with self._lock:
            self.root.clear()

    # -- identity -----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryStore) and self.root == other.root and self.cls == other.cls

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {
                "root": self.root,
                "cls": self.cls,
                "dimension_separator": self._dimension_separator,
                "read_only": self._read_only,
            }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["root"],
            state["cls"],
            state["dimension_separator"],
            read_only=state["read_only"],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: The seed's name for :class:`MemoryStore`.
DictStore = MemoryStore
