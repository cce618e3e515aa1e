"""The conformance tests of a store's life: its flags, closing, reopening and read-only views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aiostore.errors import ClosedStoreError, ReadOnlyError
from aiostore.testing._base import StoreTestsBase
from aiostore.testing._cases import ODD_KEYS, sorted_keys

_anyio = pytest.mark.anyio


class LifecycleTests(StoreTestsBase):
    """The store's flags, ``async with``, ``aclose``, closed stores, reopening and read-only views."""

    # -- the store and its flags ----------------------------------------------------
    @_anyio
    async def test_flags_match_the_store(self, anyio_backend: str) -> None:
        store = await self._open()
        assert store.supports_deletes is self.supports_deletes
        assert store.supports_listing is self.supports_listing
        assert store.read_only is False
        assert store.closed is False
        assert store.dimension_separator in (None, ".", "/")
        await store.aclose()

    # -- flush, close ----------------------------------------------------------------
    @_anyio
    async def test_async_with_closes_and_aclose_is_idempotent(self, anyio_backend: str) -> None:
        store = await self._open()
        async with store as entered:
            assert entered is store
            await store.set("a", b"1")
            await store.flush()
            await store.flush()
            assert await store.get("a") == b"1"  # still open after a flush
        assert store.closed
        await store.aclose()  # a second close is a no-op
        assert store.closed
        with pytest.raises(ClosedStoreError):
            async with store:
                pass

    @_anyio
    async def test_async_with_closes_on_error(self, anyio_backend: str) -> None:
        store = await self._open()
        with pytest.raises(LookupError):
            async with store:
                await store.set("a", b"1")
                raise LookupError("from the body")
        assert store.closed

    @_anyio
    async def test_closed_store_raises_value_error(self, anyio_backend: str) -> None:
        store = await self._open()
        await store.set("a", b"1")
        await store.aclose()
        calls: dict[str, Callable[[], Any]] = {
            "get": lambda: store.get("a"),
            "get-range": lambda: store.get("a", byte_range=(0, 1)),
            "get_many": lambda: store.get_many(["a"]),
            "set": lambda: store.set("a", b"1"),
            "set_many": lambda: store.set_many({"a": b"1"}),
            "delete": lambda: store.delete("a"),
            "delete_many": lambda: store.delete_many(["a"]),
            "contains": lambda: store.contains("a"),
            "list": lambda: sorted_keys(store),
            "listdir": lambda: store.listdir(),
            "rmdir": lambda: store.rmdir("x"),
            "rename": lambda: store.rename("a", "b"),
            "getsize": lambda: store.getsize(),
            "clear": lambda: store.clear(),
            "flush": lambda: store.flush(),
        }
        for name, call in calls.items():
            with pytest.raises(ValueError, match="is closed") as info:
                await call()
            assert isinstance(info.value, ClosedStoreError), name

    @_anyio
    async def test_data_outlives_the_store(self, anyio_backend: str) -> None:
        self._need("can_reopen")
        data = {"a": b"1", "b/c": b"22", "b/d/e": b"", ODD_KEYS[3]: b"odd"}
        async with await self._open() as store:
            await store.set_many(data)
            await store.set("a", b"one")
        data["a"] = b"one"
        async with await self._open() as store:
            assert await store.get_many([*data, "missing"]) == data
            assert await store.get("b/c", byte_range=(1, None)) == b"2"
            if self.supports_listing:
                assert await sorted_keys(store) == sorted(data)
                assert await store.listdir("b") == ["c", "d"]
            await store.set("f", b"later")
        async with await self._open() as store:
            assert await store.get_many(["a", "f"]) == {"a": b"one", "f": b"later"}

    # -- read-only -----------------------------------------------------------------------------
    @_anyio
    async def test_read_only_view(self, anyio_backend: str) -> None:
        self._need("supports_read_only")
        async with await self._open() as writer:
            data = {"a": b"old", "d/e": b"0123", "d/f/g": b"x"}
            await writer.set_many(data)
            async with await self._read_only_view(writer) as view:
                # Reads work, and see what the writer flushed.
                assert await view.get_many([*data, "missing"]) == data
                assert await view.get("d/e", byte_range=(-2, None)) == b"23"
                assert await view.contains("a") and not await view.contains("d")
                assert await view.getsize("d/e") == 4
                if self.supports_listing:
                    assert await sorted_keys(view) == sorted(data)
                    assert await view.listdir("d") == ["e", "f"]
                writes: dict[str, Callable[[], Any]] = {
                    "set": lambda: view.set("a", b"new"),
                    "set-new": lambda: view.set("n", b"new"),
                    "set_many": lambda: view.set_many({"a": b"new", "n": b"new"}),
                    "delete": lambda: view.delete("a"),
                    "delete-missing": lambda: view.delete("missing"),
                    "delete_many": lambda: view.delete_many(["a", "d/e"]),
                    "rmdir": lambda: view.rmdir("d"),
                    "rmdir-root": lambda: view.rmdir(),
                    "rename": lambda: view.rename("d", "x"),
                    "clear": lambda: view.clear(),
                }
                for name, call in writes.items():
                    with pytest.raises(ReadOnlyError) as info:
                        await call()
                    assert isinstance(info.value, PermissionError), name
                await view.flush()  # nothing to flush: no error
                assert await view.get_many([*data, "n", "x/e"]) == data
            assert view.closed
            assert await writer.get_many([*data, "n"]) == data
