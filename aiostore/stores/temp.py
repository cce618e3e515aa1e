"""TempStore: a directory store in a temporary directory, removed on close."""

from __future__ import annotations

import atexit
import functools
import os
import tempfile
from typing import Any

from aiostore.stores._fsops import remove_tree
from aiostore.stores.directory import DirectoryStore

__all__ = ["TempStore"]


class TempStore(DirectoryStore):
    """A :class:`DirectoryStore` in a fresh temporary directory.

    The directory is removed when the store is closed, and at interpreter exit
    if it is still there. A pickled copy (for another process, say) refers to
    the same directory and never removes it; once a store has been pickled, its
    own :meth:`aclose` leaves the directory to interpreter exit, since a copy may
    still be using it.

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
        self._owner = True
        self._shared = False
        # The exit hook holds only the path, so it does not keep the store alive.
        self._remove_at_exit = functools.partial(remove_tree, path)
        atexit.register(self._remove_at_exit)

    def _close_blocking(self) -> None:
        if self._owner and not self._shared:
            remove_tree(self.path)
            atexit.unregister(self._remove_at_exit)

    def __getstate__(self) -> dict[str, Any]:
        self._shared = True
        return super().__getstate__()

    def __setstate__(self, state: dict[str, Any]) -> None:
        DirectoryStore.__setstate__(self, state)
        self._owner = False
        self._shared = True
