"""A conformance suite for aiostore stores, to subclass in a backend's tests.

:class:`StoreTests` holds the tests of the whole async protocol (the table in
the README) and of its sync twin (:class:`aiostore.sync.SyncStore`). A backend
subclasses it under a name pytest collects (``Test...``), says how to open its
store, and sets the few capability flags where it differs from the defaults.
Every async test runs under asyncio and under trio, with no ``conftest.py``
needed: the class defines the ``anyio_backend`` fixture. It needs ``pytest``
and the ``anyio`` pytest plugin (installed with anyio); add ``trio`` to run the
trio half.

Examples
--------
In a test module of a backend:

>>> import aiostore
>>> from aiostore.testing import StoreTests
>>> class TestDirectoryStore(StoreTests):
...     values_are_leaves = True  # a file cannot also be a directory
...     async def open_store(self, **kwargs):
...         return aiostore.DirectoryStore(self.tmp_path / "data", **kwargs)
>>> TestDirectoryStore.supports_deletes
True
"""

from __future__ import annotations

from aiostore.testing._cases import BAD_BYTE_RANGES as BAD_BYTE_RANGES
from aiostore.testing._cases import BAD_KEYS as BAD_KEYS
from aiostore.testing._cases import BYTE_RANGES as BYTE_RANGES
from aiostore.testing._cases import BYTES_LIKE as BYTES_LIKE
from aiostore.testing._cases import NOT_BYTES_LIKE as NOT_BYTES_LIKE
from aiostore.testing._cases import ODD_KEYS as ODD_KEYS
from aiostore.testing._hierarchy import HierarchyTests
from aiostore.testing._lifecycle import LifecycleTests
from aiostore.testing._listings import ListingTests
from aiostore.testing._reads import ReadTests
from aiostore.testing._sync import SyncTwinTests
from aiostore.testing._writes import WriteTests

__all__ = ["StoreTests"]


class StoreTests(ReadTests, WriteTests, HierarchyTests, ListingTests, LifecycleTests, SyncTwinTests):
    """Conformance tests of the aiostore protocol, for a backend to subclass.

    A subclass (named ``Test...`` so that pytest collects it) implements
    :meth:`open_store` and sets the capability flags below where its store
    differs from the defaults. Every test opens its stores through that hook,
    closes them, and checks the store's own flags (``store.supports_deletes``,
    ``store.supports_listing``) against the class's. A store is opened fresh
    for each test; a test that opens several opens them over the same data.

    Attributes
    ----------
    supports_deletes : bool
        ``delete``, ``delete_many`` of present keys, ``rmdir`` and ``rename``
        work. If False (``ZipStore``), they raise :class:`NotImplementedError`
        and change nothing, while ``delete_many`` of missing keys, ``rmdir`` of
        a path with nothing below it and ``clear()`` still work, and
        ``rename``'s argument checks still apply.
    supports_listing : bool
        ``list``, ``listdir``, ``getsize`` of a path, ``rmdir`` and ``rename``
        work; if False, the tests that need them are skipped.
    supports_read_only : bool
        ``open_store(read_only=True)`` opens a read-only view of the data the
        test's writable store holds.
    can_reopen : bool
        The data outlives the store: a store opened after the first one was
        closed sees what it wrote (False for ``TempStore``, whose directory
        goes when it is closed).
    supports_pickle : bool
        ``pickle`` round-trips the store (and its sync twin) into a working
        store with the same content.
    values_are_leaves : bool
        A key that holds a value cannot have keys below it, as a file cannot
        be a directory (``MemoryStore`` and the directory stores; zarr 2's
        rules). Writing below a value then fails for that key only -- in a
        ``set_many``, :class:`~aiostore.BatchWriteError` names it -- and
        writing a value where keys are below replaces them. If False (the
        default: flat stores such as DBM, LMDB, Zip, a mapping), ``"x"`` and
        ``"x/y"`` are independent keys.
    returns_buffers : bool
        Values may be read-only buffers -- ``memoryview`` -- instead of
        ``bytes`` (``LMDBStore`` with ``buffers=True``). If False (the
        default), every value read (``get``, ``get_many``, the sync twin's
        ``store[key]``) must be exactly ``bytes``. If True, a value may be
        ``bytes`` or a read-only, contiguous buffer that compares equal to its
        bytes, as a ``memoryview`` does: the suite checks ``bytes(value)`` and
        that ``memoryview(value).readonly``.
    tmp_path : pathlib.Path
        A fresh, empty directory for the test (pytest's ``tmp_path``), for a
        store that keeps files.

    Notes
    -----
    Override the ``anyio_backend`` fixture to run the async tests under fewer
    event loops. Subclasses may add tests of their own, and may mark an
    inherited test (``xfail``, ``skip``) by overriding it::

        @pytest.mark.anyio
        @pytest.mark.xfail(strict=True, reason="...")
        async def test_rename(self, anyio_backend: str) -> None:
            await super().test_rename(anyio_backend)

    Examples
    --------
    A third-party backend's test module::

        import aiostore
        from aiostore.testing import StoreTests

        class TestMyStore(StoreTests):
            supports_pickle = False

            async def open_store(self, **kwargs):
                return MyStore(self.tmp_path / "data.my", read_only=kwargs.get("read_only", False))
    """
