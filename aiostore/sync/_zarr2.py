"""Everything zarr 2 needs of a sync store, in one place.

zarr 2 treats a mapping as one of its own stores -- calling the batch methods
``getitems``/``setitems`` and ``listdir``/``rmdir``/``getsize`` directly -- only
if it is an instance of ``zarr._storage.store.BaseStore``; any other mapping is
wrapped in zarr's ``KVStore``, which reads chunk by chunk. :func:`register`
makes :class:`~aiostore.sync.SyncStore` a virtual subclass of that base class,
and routes ``zarr.copy_store`` to :func:`aiostore.sync.copy_store` when either
store is a sync store (zarr 2's copies one key at a time; ours in batches).
It runs when the first sync store is made, with no import hook: if zarr 2 is
installed and not imported yet, it imports zarr 2's store module then (about
0.3 s, once), so zarr 2 recognises the store whichever of the two is imported
first. :class:`Zarr2Protocol` holds the attributes zarr 2 asks a store for.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Zarr2Protocol", "register"]

_ZARR2_STORE_MODULE = "zarr._storage.store"
_lock = threading.Lock()
_done = False


def _zarr2_installed() -> bool:
    try:
        return importlib.metadata.version("zarr").startswith("2.")
    except importlib.metadata.PackageNotFoundError:
        return False


def register(cls: type) -> None:
    """Make ``cls`` a virtual subclass of zarr 2's ``BaseStore``; the first call
    decides, later ones return at once. A no-op without zarr 2 (zarr 3 has no
    such module)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        module = sys.modules.get(_ZARR2_STORE_MODULE)
        if module is None and _zarr2_installed():
            module = importlib.import_module(_ZARR2_STORE_MODULE)
        base = getattr(module, "BaseStore", None)
        if base is not None and not issubclass(cls, base):
            base.register(cls)
        if base is not None:
            _route_copy_store(cls)
        _done = True


def _route_copy_store(cls: type) -> None:
    """Make ``zarr.copy_store`` run :func:`aiostore.sync.copy_store` when the source or
    the destination is a ``cls``: the same arguments, log lines and result, with reads
    and writes in batches; zarr's ``CopyError`` as zarr raises it. Other stores, as before."""
    convenience = importlib.import_module("zarr.convenience")
    original: Callable[..., Any] = convenience.copy_store
    if getattr(original, "aiostore_route", False):
        return
    from aiostore.errors import CopyError
    from aiostore.sync._hierarchy import copy_store as batch_copy_store

    zarr_copy_error = importlib.import_module("zarr.errors").CopyError

    @functools.wraps(original)
    def copy_store(source: Any, dest: Any, *args: Any, **kwargs: Any) -> Any:
        if not (isinstance(source, cls) or isinstance(dest, cls)):
            return original(source, dest, *args, **kwargs)
        try:
            return batch_copy_store(source, dest, *args, **kwargs)
        except CopyError as exc:
            raise zarr_copy_error(str(exc)) from exc

    copy_store.aiostore_route = True  # type: ignore[attr-defined]
    for module in (convenience, sys.modules["zarr"]):
        if getattr(module, "copy_store", None) is original:
            setattr(module, "copy_store", copy_store)  # noqa: B010  # mypy knows no zarr 2


class Zarr2Protocol:
    """The private attributes zarr 2.18 reads from one of its own stores.

    A mixin of :class:`~aiostore.sync.SyncStore`: ``_store_version``,
    ``_dimension_separator`` and ``_metadata_class`` (which imports zarr 2: it
    exists when zarr 2 asks).
    """

    _store_version = 2

    @property
    def dimension_separator(self) -> str | None:
        """The chunk key separator (the subclass's store's)."""
        raise NotImplementedError

    @property
    def _dimension_separator(self) -> str | None:
        return self.dimension_separator

    @property
    def _metadata_class(self) -> Any:
        from zarr.meta import Metadata2  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return Metadata2
