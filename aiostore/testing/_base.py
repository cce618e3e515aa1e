"""The base of the conformance suite: its capability flags, hooks, fixtures and helpers.

The test mixins (reads, writes, hierarchy, lifecycle, sync twin) derive from
:class:`StoreTestsBase`; :class:`aiostore.testing.StoreTests` combines them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from aiostore.abc import Store
from aiostore.sync import SyncStore

__all__ = ["StoreTestsBase"]


class StoreTestsBase:
    """What every test of the suite uses; see :class:`aiostore.testing.StoreTests`."""

    supports_deletes: ClassVar[bool] = True
    supports_listing: ClassVar[bool] = True
    supports_read_only: ClassVar[bool] = True
    can_reopen: ClassVar[bool] = True
    supports_pickle: ClassVar[bool] = True
    values_are_leaves: ClassVar[bool] = False
    returns_buffers: ClassVar[bool] = False  # values may be read-only memoryviews, not bytes

    tmp_path: Path

    # -- hooks -------------------------------------------------------------------
    async def open_store(self, **kwargs: Any) -> Store:
        """Open the store under test (the one hook every subclass writes).

        Called in the event loop of the test. Every call within one test opens
        the same data: the first call's store starts empty, later calls see what
        earlier stores wrote once those were flushed (or closed). Only the tests
        of :attr:`can_reopen`, :attr:`supports_read_only` and
        :attr:`supports_pickle` open a store a second time (or copy one).

        Parameters
        ----------
        **kwargs
            The suite passes only ``read_only=True``, and only if
            :attr:`supports_read_only`: open a read-only view of the data (the
            writable store that wrote it has been flushed, and is still open).

        Returns
        -------
        aiostore.abc.Store
            An open store; the suite closes it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement open_store()")

    def open_store_sync(self, **kwargs: Any) -> SyncStore[Store]:
        """Open the store for the sync tests, which run with no event loop.

        The default wraps what :meth:`open_store` returns (run with
        :func:`anyio.run`) in :class:`~aiostore.sync.SyncStore`. Override to
        return the backend's sync twin, e.g. ``aiostore.sync.DirectoryStore``.

        Parameters
        ----------
        **kwargs
            As for :meth:`open_store`.

        Returns
        -------
        aiostore.sync.SyncStore
        """
        return SyncStore(anyio.run(functools.partial(self.open_store, **kwargs)))

    # -- fixtures ---------------------------------------------------------------
    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        """Run every async test under asyncio and under trio."""
        return str(request.param)

    @pytest.fixture(autouse=True)
    def _store_tests_state(self, tmp_path: Path) -> Iterator[None]:
        self.tmp_path = tmp_path
        self._opened: list[Store] = []
        yield
        # A test that failed half-way still releases every store it opened
        # (file handles, LMDB environments, temporary directories).
        for store in reversed(self._opened):
            if not store.closed:
                SyncStore(store).close()

    # -- helpers ------------------------------------------------------------------
    async def _open(self, **kwargs: Any) -> Store:
        store = await self.open_store(**kwargs)
        self._opened.append(store)
        assert isinstance(store, Store), f"open_store() returned {type(store).__name__}, not a Store"
        assert not store.closed
        return store

    async def _read_only_view(self, writer: Store) -> Store:
        await writer.flush()
        view = await self._open(read_only=True)
        assert view.read_only
        return view

    def _open_sync(self, **kwargs: Any) -> SyncStore[Store]:
        store = self.open_store_sync(**kwargs)
        assert isinstance(store, SyncStore), f"open_store_sync() returned {type(store).__name__}"
        self._opened.append(store.async_store)
        return store

    def _value_bytes(self, value: object, expected: bytes | None = None) -> bytes:
        """Check that ``value`` is a value the store may return; return its bytes.

        ``bytes`` exactly, or with :attr:`returns_buffers` a read-only,
        contiguous buffer; and, if given, ``expected``'s bytes.
        """
        if not self.returns_buffers:
            assert type(value) is bytes, f"a value is {type(value).__name__}, not bytes"
            data = value
        else:
            try:
                view = memoryview(value)  # type: ignore[arg-type]  # checked here
            except TypeError:
                raise AssertionError(f"a value is {type(value).__name__}, not a buffer") from None
            with view:  # released at once: a buffer may hold resources (LMDB: a snapshot)
                assert view.readonly, f"a value is a writable {type(value).__name__}, not a read-only buffer"
                assert view.c_contiguous, f"a value is a non-contiguous {type(value).__name__}"
                data = view.tobytes()
        if expected is not None:
            assert data == expected, f"{data!r} != {expected!r}"
        return data

    def _need(self, flag: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False")
