"""TempStore: a directory store in a temporary directory, removed on close."""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from aiostore._runtime.forks import renew_after_fork
from aiostore.abc import Buffer, Request
from aiostore.errors import ClosedStoreError
from aiostore.stores._fsops import remove_tree
from aiostore.stores.directory import DirectoryStore

__all__ = ["TempStore"]

#: Keys listed per entry of the gate while streaming ``list``.
_LIST_CHUNK = 256


class OperationGate:
    """The operations of a store under way: :meth:`close` waits for them to end,
    and every operation entered after it raises :class:`~aiostore.ClosedStoreError`.

    >>> gate = OperationGate("TempStore('/tmp/x')")
    >>> with gate:
    ...     pass  # an operation
    >>> gate.close()
    >>> with gate:
    ...     pass
    Traceback (most recent call last):
    ...
    aiostore.errors.ClosedStoreError: TempStore('/tmp/x') is closed
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._closed = False
        renew_after_fork(self, type(self)._renew_after_fork)

    def __enter__(self) -> None:
        with self._cond:
            if self._closed:
                raise ClosedStoreError(f"{self._name} is closed")
            self._active += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._cond:
            self._active -= 1
            if self._closed and not self._active:
                self._cond.notify_all()

    def close(self) -> None:
        """Refuse new operations and wait for those under way to end."""
        with self._cond:
            self._closed = True
            while self._active:
                self._cond.wait()

    def _renew_after_fork(self) -> None:
        # In a forked child: the parent's operations under way did not come along.
        self._cond = threading.Condition(threading.Lock())
        self._active = 0


def _remove_if_made_here(path: str, pid: int) -> None:
    """At interpreter exit: remove ``path`` -- in the process that made it, not a forked child."""
    if os.getpid() == pid:
        remove_tree(path)


class TempStore(DirectoryStore):
    """A :class:`DirectoryStore` in a fresh temporary directory.

    The directory is removed when the store is closed (once the operations under
    way have ended; those begun later raise :class:`~aiostore.ClosedStoreError`),
    and at interpreter exit if it is still there. A pickled copy (for another
    process, say) or a forked child's copy refers to the same directory and never
    removes it; once a store has been pickled, its own :meth:`aclose` leaves the
    directory to interpreter exit, since a copy may still be using it.

    Parameters
    ----------
    suffix, prefix, dir : str, optional
        As for :func:`tempfile.mkdtemp`.
    normalize_keys : bool
    dimension_separator : {".", "/"}, optional

    Examples
    --------
    >>> import anyio, os
    >>> async def main():
    ...     async with TempStore() as store:
    ...         await store.set("foo/bar", b"baz")
    ...         print(os.listdir(os.path.join(store.path, "foo")))
    ...     return os.path.exists(store.path)
    >>> anyio.run(main)
    ['bar']
    False
    """

    def __init__(
        self,
        suffix: str = "",
        prefix: str = "zarr",
        dir: str | os.PathLike[str] | None = None,
        normalize_keys: bool = False,
        dimension_separator: str | None = None,
    ) -> None:
        path = tempfile.mkdtemp(suffix=suffix, prefix=prefix, dir=dir)
        super().__init__(path, normalize_keys, dimension_separator)
        self._gate = OperationGate(repr(self))
        self._owner = True
        self._shared = False
        # The exit hook holds only the path, so it does not keep the store alive.
        self._remove_at_exit = functools.partial(_remove_if_made_here, path, os.getpid())
        atexit.register(self._remove_at_exit)
        renew_after_fork(self, type(self)._renew_after_fork)

    def _renew_after_fork(self) -> None:
        # A forked child's copy: the directory is the parent's to remove.
        self._owner = False

    # -- every operation passes the gate, so that close() can wait for them ---------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        with self._gate:
            return super()._get_blocking(requests)

    def _contains_blocking(self, key: str) -> bool:
        with self._gate:
            return super()._contains_blocking(key)

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        with self._gate:
            super()._set_blocking(items)

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        with self._gate:
            return super()._delete_blocking(keys)

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        keys = super()._list_blocking(prefix)
        while True:
            with self._gate:
                chunk = list(itertools.islice(keys, _LIST_CHUNK))
            yield from chunk
            if len(chunk) < _LIST_CHUNK:
                return

    def _listdir_blocking(self, path: str) -> list[str]:
        with self._gate:
            return super()._listdir_blocking(path)

    def _rmdir_blocking(self, path: str) -> None:
        with self._gate:
            super()._rmdir_blocking(path)

    def _rename_blocking(self, src: str, dst: str) -> None:
        with self._gate:
            super()._rename_blocking(src, dst)

    def _getsize_blocking(self, path: str) -> int:
        with self._gate:
            return super()._getsize_blocking(path)

    def _clear_blocking(self) -> None:
        with self._gate:
            super()._clear_blocking()

    def _close_blocking(self) -> None:
        self._gate.close()  # the operations under way end first: none writes after the removal
        if self._owner and not self._shared:
            remove_tree(self.path)
            atexit.unregister(self._remove_at_exit)

    def __getstate__(self) -> dict[str, Any]:
        self._shared = True
        return super().__getstate__()

    def __setstate__(self, state: dict[str, Any]) -> None:
        DirectoryStore.__setstate__(self, state)
        self._gate = OperationGate(repr(self))
        self._owner = False
        self._shared = True
