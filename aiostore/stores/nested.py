"""NestedDirectoryStore: a directory store whose chunk keys nest."""

from __future__ import annotations

import os
from typing import Any

from aiostore.stores.directory import DirectoryStore

__all__ = ["NestedDirectoryStore"]


class NestedDirectoryStore(DirectoryStore):
    """A :class:`DirectoryStore` whose chunk keys nest: ``"/"`` separates chunk indices.

    zarr 2 writes chunk ``(1, 0)`` as ``"1/0"``, so each chunk dimension becomes a
    directory level and no directory holds too many files.

    Parameters
    ----------
    path : str or os.PathLike
    normalize_keys : bool
    dimension_separator : {"/"}, optional
        Only ``"/"`` (or None, meaning ``"/"``) is accepted.
    read_only : bool

    Examples
    --------
    >>> NestedDirectoryStore("data/array.zarr").dimension_separator
    '/'
    >>> NestedDirectoryStore("data/array.zarr", dimension_separator=".")
    Traceback (most recent call last):
    ...
    ValueError: NestedDirectoryStore only supports '/' as dimension_separator, not '.'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        normalize_keys: bool = False,
        dimension_separator: str | None = "/",
        *,
        read_only: bool = False,
    ) -> None:
        if dimension_separator is None:
            dimension_separator = "/"
        elif dimension_separator != "/":
            raise ValueError(
                f"NestedDirectoryStore only supports '/' as dimension_separator, not {dimension_separator!r}"
            )
        super().__init__(path, normalize_keys, dimension_separator, read_only=read_only)

    def __setstate__(self, state: dict[str, Any]) -> None:
        NestedDirectoryStore.__init__(
            self, state["path"], state["normalize_keys"], read_only=state["read_only"]
        )
