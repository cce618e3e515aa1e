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

import array
import functools
import pickle
import re
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import anyio
import anyio.lowlevel
import numpy as np
import pytest

from aiostore.abc import BufferLike, Store
from aiostore.errors import BatchWriteError, ClosedStoreError, ReadOnlyError
from aiostore.sync import SyncStore

__all__ = ["StoreTests"]

_anyio = pytest.mark.anyio

#: Keys a store must refuse with ``ValueError`` (the README's "bad key" rule).
BAD_KEYS = ["..", "../x", "a/../b", ".", "./a", "a/./b", "a/.", "a\x00b", "\x00", "", "/", "//"]

#: Keys with characters that must round-trip unchanged through every store.
ODD_KEYS = [
    ".zgroup",
    "a.b/.zarray",
    "with space/x y",
    "grüße/数据",
    "a-b_c/0.0.0",
    "~tilde/=eq",
    "..hidden/x.",  # starts with "..", ends with ".": plain names all the same
    "e./..f",
]


def _value(i: int, size: int = 10) -> bytes:
    """A value that differs from key to key (and is easy to recognize)."""
    return (f"<{i}>".encode() * size)[:size]


def _spread(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A view of ``a``'s values that is neither C- nor Fortran-contiguous."""
    big = np.zeros((4, 4), dtype=a.dtype)
    big[::2, ::2] = a
    return big[::2, ::2]


#: Bytes-like values that all store ``b"\x01\x02\x03\x04"`` (memory order).
BYTES_LIKE: dict[str, Callable[[], object]] = {
    "bytes": lambda: b"\x01\x02\x03\x04",
    "bytearray": lambda: bytearray(b"\x01\x02\x03\x04"),
    "memoryview": lambda: memoryview(b"\x00\x01\x02\x03\x04\x05")[1:5],
    "memoryview-strided": lambda: memoryview(bytes([1, 0, 2, 0, 3, 0, 4, 0]))[::2],
    "array.array": lambda: array.array("B", [1, 2, 3, 4]),
    "numpy-u1": lambda: np.array([1, 2, 3, 4], dtype="u1"),
    "numpy-u2": lambda: np.array([0x0201, 0x0403], dtype="<u2"),
    "numpy-2d": lambda: np.array([[1, 2], [3, 4]], dtype="u1"),
    "numpy-strided": lambda: np.array([1, 9, 2, 9, 3, 9, 4, 9], dtype="u1")[::2],
    "numpy-fortran": lambda: np.asfortranarray(np.array([[1, 3], [2, 4]], dtype="u1")),
    "numpy-transposed": lambda: np.array([[1, 2], [3, 4]], dtype="u1").T,
    "numpy-2d-strided": lambda: _spread(np.array([[1, 2], [3, 4]], dtype="u1")),
}

#: Values without the buffer protocol: ``TypeError``, nothing of the call written.
NOT_BYTES_LIKE: dict[str, Callable[[], object]] = {
    "list": lambda: [1, 2],
    "str": lambda: "text",
    "int": lambda: 3,
    "None": lambda: None,
    "dict": lambda: {"a": 1},
    "object-array": lambda: np.array([object()]),
}

#: ``(byte_range, expected)`` over the value ``b"0123456789"``.
BYTE_RANGES: list[tuple[Any, bytes]] = [
    (None, b"0123456789"),
    ((0, None), b"0123456789"),
    ((2, 5), b"234"),
    ((7, None), b"789"),
    ((-3, None), b"789"),
    ((-1, None), b"9"),
    ((-10, None), b"0123456789"),
    ((-20, None), b"0123456789"),  # a suffix longer than the value is the whole value
    ((0, 0), b""),
    ((4, 4), b""),
    ((9, 10), b"9"),
    ((8, 50), b"89"),  # a stop past the end stops at the end
    ((10, None), b""),
    ((20, None), b""),  # a start past the end is empty, not an error
    ((20, 30), b""),
    ([1, 3], b"12"),  # any pair is accepted
]

#: Byte ranges that are refused, with the error.
BAD_BYTE_RANGES: list[tuple[Any, type[Exception]]] = [
    ((-3, 5), ValueError),  # a suffix has no stop
    ((5, 2), ValueError),
    ((1.5, None), TypeError),
    ((True, None), TypeError),
    ((0, "3"), TypeError),
    ((1, 2, 3), TypeError),
    (5, TypeError),
]


async def _keys(store: Store, prefix: str = "") -> list[str]:
    return sorted([key async for key in store.list(prefix)])


class StoreTests:
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

    supports_deletes: ClassVar[bool] = True
    supports_listing: ClassVar[bool] = True
    supports_read_only: ClassVar[bool] = True
    can_reopen: ClassVar[bool] = True
    supports_pickle: ClassVar[bool] = True
    values_are_leaves: ClassVar[bool] = False

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

    def _need(self, flag: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False")

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

    # -- get ------------------------------------------------------------------------
    @_anyio
    async def test_get_and_set(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("a/b", b"hello")
            value = await store.get("a/b")
            assert value == b"hello" and type(value) is bytes
            await store.set("a/b", b"bye")  # overwritten, not appended to
            assert await store.get("a/b") == b"bye"
            await store.set("empty", b"")
            assert await store.get("empty") == b""
            big = np.random.default_rng(0).integers(0, 256, 300_000, dtype="u1").tobytes()
            await store.set("big", big)
            assert await store.get("big") == big
            assert await store.get("big", byte_range=(100_000, 100_010)) == big[100_000:100_010]
            assert await store.get("big", byte_range=(-7, None)) == big[-7:]
            with pytest.raises(KeyError):
                await store.get("a/c")
            with pytest.raises(KeyError):
                await store.get("a")  # a path with keys below it is not a value
            with pytest.raises(KeyError):
                await store.get("a", byte_range=(0, 1))
            with pytest.raises(KeyError):
                await store.get("a/b/c")
            for key in ODD_KEYS:
                await store.set(key, key.encode())
            assert await store.get_many(ODD_KEYS) == {key: key.encode() for key in ODD_KEYS}

    @_anyio
    async def test_keys_are_normalized(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("/a//b/", b"1")
            await store.set("c\\d", b"2")
            assert await store.get("a/b") == b"1" and await store.get("//a/b") == b"1"
            assert await store.get("c/d") == b"2"
            assert await store.get_many(["a/b", "c/d"]) == {"a/b": b"1", "c/d": b"2"}
            if self.supports_listing:
                assert await _keys(store) == ["a/b", "c/d"]

    @_anyio
    async def test_byte_ranges(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many({"k": b"0123456789", "empty": b""})
            for byte_range, expected in BYTE_RANGES:
                got = await store.get("k", byte_range=byte_range)
                assert got == expected, f"byte_range={byte_range!r}: {got!r} != {expected!r}"
                assert type(got) is bytes
            for byte_range in [(0, None), (0, 5), (-3, None), (2, None)]:
                assert await store.get("empty", byte_range=byte_range) == b""
            with pytest.raises(KeyError):
                await store.get("missing", byte_range=(0, 1))
            with pytest.raises(KeyError):
                await store.get("missing", byte_range=(-1, None))

    @_anyio
    async def test_invalid_byte_ranges(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("k", b"0123456789")
            for byte_range, error in BAD_BYTE_RANGES:
                with pytest.raises(error, match="byte_range"):
                    await store.get("k", byte_range=byte_range)
            assert await store.get("k") == b"0123456789"

    @_anyio
    async def test_get_many(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many({"a": b"1", "b/c": b"2", "e": b""})
            assert await store.get_many(["a", "missing", "b/c", "b", "e"]) == {
                "a": b"1",
                "b/c": b"2",
                "e": b"",
            }
            assert await store.get_many(["a", "a", "/a", "b/c"]) == {"a": b"1", "b/c": b"2"}
            assert await store.get_many(["/b//c/"]) == {"b/c": b"2"}  # normalized keys answer
            assert await store.get_many([]) == {}
            assert await store.get_many(["x", "y/z"]) == {}
            assert await store.get_many(key for key in ["a"]) == {"a": b"1"}
            many = {f"m/{i}": _value(i) for i in range(300)}
            await store.set_many(many)
            assert await store.get_many([*many, "m/missing"]) == many
            for value in (await store.get_many(["a", "b/c"])).values():
                assert type(value) is bytes

    # -- set ------------------------------------------------------------------------
    @_anyio
    async def test_every_bytes_like_value_is_stored_as_its_bytes(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            for kind, make in BYTES_LIKE.items():
                await store.set(f"one/{kind}", make())  # type: ignore[arg-type]  # each kind is bytes-like
            await store.set_many({f"many/{kind}": make() for kind, make in BYTES_LIKE.items()})  # type: ignore[arg-type]
            stored = await store.get_many([f"{how}/{kind}" for how in ("one", "many") for kind in BYTES_LIKE])
            wrong = {key: value for key, value in stored.items() if value != b"\x01\x02\x03\x04"}
            assert len(stored) == 2 * len(BYTES_LIKE) and not wrong, wrong
            await store.set("numpy-empty", np.zeros((0, 3)))
            assert await store.get("numpy-empty") == b""
            days = np.array(["1970-01-02", "1970-01-04"], dtype="M8[D]")
            await store.set("days", days)
            assert await store.get("days") == np.array([1, 3], dtype="<i8").tobytes()

    @_anyio
    async def test_stored_values_do_not_alias_the_callers_buffer(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            buf = bytearray(b"abc")
            arr = np.array([1, 2], dtype="u1")
            values: dict[str, BufferLike] = {"buf": buf, "arr": arr}
            await store.set_many(values)
            await store.set("one", buf)
            buf[0] = ord("X")
            arr[0] = 99
            assert await store.get_many(["buf", "arr", "one"]) == {
                "buf": b"abc",
                "arr": b"\x01\x02",
                "one": b"abc",
            }

    @_anyio
    async def test_wrong_value_type_is_type_error_and_writes_nothing(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("good1", b"old")
            for kind, make in NOT_BYTES_LIKE.items():
                with pytest.raises(TypeError, match="'k'"):
                    await store.set("k", make())  # type: ignore[arg-type]  # the point of the test
                with pytest.raises(TypeError, match="'bad'"):
                    await store.set_many({"good1": b"new", "bad": make(), "good2": b"y"})  # type: ignore[arg-type]
                assert await store.get_many(["good1", "good2", "k", "bad"]) == {"good1": b"old"}, kind

    @_anyio
    async def test_set_many(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many([("a", b"1"), ("b", b"2"), ("/a", b"3")])  # pairs; the last "a" wins
            assert await store.get_many(["a", "b"]) == {"a": b"3", "b": b"2"}
            await store.set_many({})
            await store.set_many({"a": b"4", "c/d": b"5"})  # overwrites and adds
            assert await store.get_many(["a", "b", "c/d"]) == {"a": b"4", "b": b"2", "c/d": b"5"}
            if self.supports_listing:
                assert await _keys(store) == ["a", "b", "c/d"]

    # -- bad keys ----------------------------------------------------------------------
    @_anyio
    async def test_bad_keys_are_value_errors(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("a/b", b"1")
            for key in BAD_KEYS:
                calls: dict[str, Callable[[], Any]] = {
                    "get": functools.partial(store.get, key),
                    "set": functools.partial(store.set, key, b"x"),
                    "contains": functools.partial(store.contains, key),
                    "get_many": functools.partial(store.get_many, ["a/b", key]),
                    "set_many": functools.partial(store.set_many, {"good": b"x", key: b"x"}),
                }
                if self.supports_deletes:
                    calls["delete"] = functools.partial(store.delete, key)
                    calls["delete_many"] = functools.partial(store.delete_many, ["a/b", key])
                for call in calls.values():
                    with pytest.raises(ValueError, match=re.escape(f"invalid key {key!r}")):
                        await call()  # the error names the key
            with pytest.raises(TypeError):
                await store.set(3, b"x")  # type: ignore[arg-type]
            not_str: Any = {"good": b"x", 3: b"y"}
            with pytest.raises(TypeError):
                await store.set_many(not_str)
            assert await store.get_many(["a/b", "good", "x"]) == {"a/b": b"1"}
            if self.supports_listing:
                assert await _keys(store) == ["a/b"]

    @_anyio
    async def test_bad_paths_are_value_errors(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            await store.set("a/b", b"1")
            for path in ["..", "a/..", "./a", "a\x00"]:
                for call in (store.listdir, store.getsize, store.rmdir):
                    with pytest.raises(ValueError):
                        await call(path)
                with pytest.raises(ValueError):
                    await store.rename(path, "x")
                with pytest.raises(ValueError):
                    await store.rename("a", path)
            with pytest.raises(ValueError):
                await _keys(store, "a\x00")
            with pytest.raises(TypeError):
                await _keys(store, 3)  # type: ignore[arg-type]
            assert await _keys(store) == ["a/b"]

    # -- delete -----------------------------------------------------------------------
    @_anyio
    async def test_delete_and_delete_many(self, anyio_backend: str) -> None:
        self._need("supports_deletes")
        async with await self._open() as store:
            await store.set_many({"a": b"1", "b": b"2", "c/d": b"3", "c/e": b"4"})
            await store.delete("a")
            assert not await store.contains("a")
            with pytest.raises(KeyError):
                await store.get("a")
            with pytest.raises(KeyError):
                await store.delete("a")
            with pytest.raises(KeyError):
                await store.delete("never")
            await store.delete("/c//d")
            assert await store.get_many(["b", "c/d", "c/e"]) == {"b": b"2", "c/e": b"4"}
            await store.delete_many(["b", "missing", "c/e", "b"])
            await store.delete_many([])
            await store.delete_many(["missing"])
            assert await store.get_many(["a", "b", "c/d", "c/e"]) == {}
            if self.supports_listing:
                assert await _keys(store) == []
            await store.set("a", b"again")  # a deleted key can be written again
            assert await store.get("a") == b"again"

    @_anyio
    async def test_store_without_deletes(self, anyio_backend: str) -> None:
        if self.supports_deletes:
            pytest.skip(f"{type(self).__name__}.supports_deletes is True")
        self._need("supports_listing")
        async with await self._open() as store:
            data = {"a": b"1", "d/e": b"2", "d/f/g": b"3"}
            await store.set_many(data)
            with pytest.raises(NotImplementedError):
                await store.delete("a")
            with pytest.raises(NotImplementedError):
                await store.delete_many(["missing", "a"])
            with pytest.raises(NotImplementedError):
                await store.rmdir("d")
            with pytest.raises(NotImplementedError):
                await store.rename("d", "x")
            with pytest.raises(NotImplementedError):
                await store.rename("a", "b")
            await store.delete_many(["missing", "d"])  # nothing to delete: fine
            await store.delete_many([])
            await store.rmdir("nothing/here")
            await store.rmdir("a")  # a plain key: nothing below it
            assert await store.get_many([*data, "b", "x/e"]) == data
            await store.clear()
            assert await store.get_many(list(data)) == {}
            await store.set("a", b"again")
            assert await store.get("a") == b"again"

    # -- contains ----------------------------------------------------------------------
    @_anyio
    async def test_contains(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many({"a/b": b"1", "e": b""})
            assert await store.contains("a/b") is True
            assert await store.contains("/a//b") is True
            assert await store.contains("e") is True  # an empty value is a value
            assert await store.contains("a") is False  # keys below, no value
            assert await store.contains("a/b/c") is False
            assert await store.contains("x") is False
            assert await store.contains("a/bb") is False

    # -- listing ------------------------------------------------------------------------
    @_anyio
    async def test_list_with_prefix(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            assert await _keys(store) == []
            keys = ["ab", "abc", "a/b", "a/c/d", "b/a", ".zgroup", *ODD_KEYS]
            await store.set_many({k: b"v" for k in keys})
            assert await _keys(store) == sorted(set(keys))
            assert await _keys(store, "a") == ["a-b_c/0.0.0", "a.b/.zarray", "a/b", "a/c/d", "ab", "abc"]
            assert await _keys(store, "ab") == ["ab", "abc"]
            assert await _keys(store, "a/") == ["a/b", "a/c/d"]
            assert await _keys(store, "a/c") == ["a/c/d"]
            assert await _keys(store, "grüße/") == ["grüße/数据"]
            assert await _keys(store, "zzz") == []
            assert await _keys(store, "a/c/d/e") == []
            listed = [key async for key in store.list()]
            assert len(listed) == len(set(listed))  # no key twice

    @_anyio
    async def test_list_stops_early_and_tolerates_writes(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            keys = {f"k/{i:04d}": _value(i) for i in range(1200)}
            await store.set_many(keys)
            seen: list[str] = []
            listing = cast(AsyncGenerator[str, None], store.list("k/"))
            async for key in listing:
                seen.append(key)
                # Other calls while a listing is open must neither fail nor deadlock.
                assert await store.get(key) == keys[key]
                await store.set("other", b"1")
                if len(seen) == 3:
                    break
            await listing.aclose()
            assert len(set(seen)) == 3 and set(seen) <= set(keys)
            assert await _keys(store, "k/") == sorted(keys)
            assert await store.get("other") == b"1"
            with anyio.fail_after(30):  # an abandoned listing holds nothing
                await store.set("k/new", b"2")
                assert len(await _keys(store, "k/")) == len(keys) + 1

    @_anyio
    async def test_listdir(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            assert await store.listdir() == []
            await store.set_many({"a": b"1", "c/d": b"2", "c/e/f": b"3", "c/e/g": b"4", ".zattrs": b"{}"})
            for root in ("", None, "/"):
                assert await store.listdir(root) == [".zattrs", "a", "c"]
            assert await store.listdir() == [".zattrs", "a", "c"]
            assert await store.listdir("c") == ["d", "e"]
            assert await store.listdir("/c/") == ["d", "e"]
            assert await store.listdir("c/e") == ["f", "g"]
            for nothing in ["x", "a", "a/x", "c/d", "c/x/y", "c/e/f", "ce"]:
                assert await store.listdir(nothing) == [], nothing

    @_anyio
    async def test_rmdir(self, anyio_backend: str) -> None:
        self._need("supports_deletes")
        self._need("supports_listing")
        async with await self._open() as store:
            await store.set_many({"a": b"1", "c/d": b"2", "c/e/f": b"3", "ce": b"4", "c/e/g/h": b"5"})
            await store.rmdir("c/e")
            assert await _keys(store) == ["a", "c/d", "ce"]
            for harmless in ["x", "a", "a/x", "c/d", "c/d/x"]:  # missing paths and plain keys: no-op
                await store.rmdir(harmless)
            assert await _keys(store) == ["a", "c/d", "ce"]
            await store.rmdir("/c/")
            assert await _keys(store) == ["a", "ce"]  # "ce" only shares a prefix
            assert await store.listdir("c") == []
            await store.rmdir()
            assert await _keys(store) == []
            await store.set("c/d", b"again")  # a removed path can be written again
            assert await store.get("c/d") == b"again"

    # -- rename ---------------------------------------------------------------------------
    @_anyio
    async def test_rename(self, anyio_backend: str) -> None:
        self._need("supports_deletes")
        self._need("supports_listing")
        async with await self._open() as store:
            await store.set_many({"a": b"1", "c/d": b"2", "c/e/f": b"3", "cx": b"4"})
            await store.rename("c", "n/m")
            assert await _keys(store) == ["a", "cx", "n/m/d", "n/m/e/f"]
            assert await store.get_many(["n/m/d", "n/m/e/f", "c/d"]) == {"n/m/d": b"2", "n/m/e/f": b"3"}
            await store.rename("a", "b")  # a single key moves too
            assert await store.get_many(["a", "b"]) == {"b": b"1"}
            await store.rename("n/m", "n/m")  # to itself: nothing happens
            assert await store.get("n/m/d") == b"2"
            await store.rename("n/m/e", "e")  # up the tree
            await store.rename("/n/", "p")  # paths are normalized
            assert await _keys(store) == ["b", "cx", "e/f", "p/m/d"]
            assert await store.listdir("n") == [] and not await store.contains("n/m/d")

    @_anyio
    async def test_rename_never_merges_or_replaces(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            data = {"a/b/x": b"1", "a/b/b/x": b"2", "a/y": b"3", "k": b"4"}
            await store.set_many(data)
            for dst in ["a", "a/y", "k"]:  # an ancestor, a sibling key, another key
                with pytest.raises(FileExistsError):
                    await store.rename("a/b", dst)
            with pytest.raises(FileExistsError):
                await store.rename("k", "a")
            with pytest.raises(KeyError):
                await store.rename("missing", "elsewhere")
            with pytest.raises(KeyError):
                await store.rename("a/b/x/z", "elsewhere")
            assert await store.get_many(list(data)) == data
            assert await _keys(store) == sorted(data)

    @_anyio
    async def test_rename_refuses_root_and_into_itself(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("a/k", b"1")
            for src, dst in [("", "x"), ("x", ""), ("/", "x"), ("a", "a/b"), ("a", "/a/b/c/")]:
                with pytest.raises(ValueError):
                    await store.rename(src, dst)
            assert await store.get_many(["a/k", "x/a/k", "a/b/k"]) == {"a/k": b"1"}

    # -- getsize ----------------------------------------------------------------------------
    @_anyio
    async def test_getsize(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            if self.supports_listing:
                assert await store.getsize() == 0
            await store.set_many({"a": b"aaa", "b": b"bb", "c/d": b"dddd", "c/e/f": b"ffffff", "g": b""})
            assert await store.getsize("a") == 3  # a key: its own size
            assert await store.getsize("/a/") == 3
            assert await store.getsize("c/e/f") == 6
            assert await store.getsize("g") == 0
            if self.supports_listing:
                for nothing in ["x", "a/x", "c/x/y", "c/d/y"]:
                    assert await store.getsize(nothing) == 0, nothing
                assert await store.getsize() == 5  # immediate child keys only
                assert await store.getsize("") == 5
                assert await store.getsize(None) == 5
                assert await store.getsize("c") == 4  # not recursive
                assert await store.getsize("c/e") == 6
            await store.set("a", b"a")  # an overwrite changes the size
            assert await store.getsize("a") == 1

    # -- clear, flush, close ----------------------------------------------------------------
    @_anyio
    async def test_clear(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            await store.set_many({"a": b"1", "b/c": b"2", "d/e/f": b"3"})
            await store.clear()
            assert await store.get_many(["a", "b/c", "d/e/f"]) == {}
            assert not await store.contains("a")
            assert await _keys(store) == []
            assert await store.listdir() == []
            await store.clear()  # clearing an empty store is fine
            await store.set("a", b"again")  # still usable
            assert await store.get("a") == b"again"

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
            "list": lambda: _keys(store),
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
                assert await _keys(store) == sorted(data)
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
                    assert await _keys(view) == sorted(data)
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

    # -- concurrency ---------------------------------------------------------------------------
    @_anyio
    async def test_concurrent_gets(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            values = {f"c/{i}": _value(i, 5 + i % 40) for i in range(150)}
            await store.set_many(values)
            expected: dict[tuple[str, Any], bytes] = {}
            for i, (key, value) in enumerate(values.items()):
                expected[(key, None)] = value
                if i % 2:
                    expected[(key, (1, 4))] = value[1:4]
                if i % 3 == 0:
                    expected[(key, (-2, None))] = value[-2:]
            results: dict[tuple[str, Any], bytes] = {}
            missing: list[str] = []

            async def get_one(key: str, byte_range: Any) -> None:
                try:
                    results[(key, byte_range)] = await store.get(key, byte_range=byte_range)
                except KeyError:
                    missing.append(key)

            async def get_many(keys: list[str]) -> None:
                assert await store.get_many(keys) == {k: values[k] for k in keys if k in values}

            async with anyio.create_task_group() as tg:
                for key, byte_range in expected:
                    tg.start_soon(get_one, key, byte_range)
                for i in range(15):
                    tg.start_soon(get_one, f"c/missing{i}", (0, 1) if i % 2 else None)
                    tg.start_soon(get_many, [f"c/{j}" for j in range(i, 150, 15)] + [f"nope/{i}"])
            assert results == expected
            assert sorted(missing) == sorted(f"c/missing{i}" for i in range(15))

    @_anyio
    async def test_concurrent_writes(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            values = {f"w/{i}": _value(i) for i in range(100)}

            async def write(keys: list[str]) -> None:
                if len(keys) == 1:
                    await store.set(keys[0], values[keys[0]])
                else:
                    await store.set_many({k: values[k] for k in keys})

            size = 64 * 1024

            async def overwrite(fill: int) -> None:
                await store.set("same", bytes([fill]) * size)

            torn: list[bytes] = []

            async def read_same() -> None:
                for _ in range(5):
                    try:
                        value = await store.get("same")
                    except KeyError:
                        pass  # not written yet
                    else:
                        if len(value) != size or value != value[:1] * size:
                            torn.append(value)
                    await anyio.lowlevel.checkpoint()

            keys = list(values)
            async with anyio.create_task_group() as tg:
                for i in range(0, 50):
                    tg.start_soon(write, [keys[i]])
                for i in range(50, 100, 10):
                    tg.start_soon(write, keys[i : i + 10])
                for fill in range(12):
                    tg.start_soon(overwrite, fill)
                    tg.start_soon(read_same)
            assert not torn, f"{len(torn)} read(s) saw a value being written"
            assert await store.get_many(keys) == values
            same = await store.get("same")  # one whole value of one writer, never torn
            assert len(same) == size and same == same[:1] * size and same[0] < 12

    # -- partial failures ------------------------------------------------------------------------
    @_anyio
    async def test_writing_below_a_value(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            if not self.values_are_leaves:
                await store.set_many({"x": b"1", "x/y": b"2", "z": b"3"})
                await store.set("x/w", b"4")
                assert await store.get_many(["x", "x/y", "x/w", "z"]) == {
                    "x": b"1",
                    "x/y": b"2",
                    "x/w": b"4",
                    "z": b"3",
                }
                await store.set("x", b"5")  # a value over keys below it leaves them alone
                assert await store.get_many(["x", "x/y", "x/w"]) == {"x": b"5", "x/y": b"2", "x/w": b"4"}
                return
            # The README's example: the key below a value fails, every other key is written.
            with pytest.raises(BatchWriteError) as info:
                await store.set_many({"x": b"1", "x/y": b"2", "z": b"3"})
            error = info.value
            assert isinstance(error, OSError) and list(error.failed) == ["x/y"]
            assert isinstance(error.failed["x/y"], Exception) and "'x/y'" in str(error)
            assert await store.get_many(["x", "x/y", "z"]) == {"x": b"1", "z": b"3"}
            with pytest.raises(BatchWriteError) as info:
                await store.set_many({"a": b"a", "x/y/z": b"2", "b": b"b"})  # deeper below it
            assert list(info.value.failed) == ["x/y/z"]
            assert await store.get_many(["a", "b", "x", "x/y/z"]) == {"a": b"a", "b": b"b", "x": b"1"}
            with pytest.raises(KeyError):
                await store.set("x/y", b"2")  # a single write below a value
            assert await store.get("x") == b"1" and not await store.contains("x/y")
            if self.supports_deletes and self.supports_listing:
                await store.set_many({"c/d": b"1", "c/e/f": b"2"})
                with pytest.raises(KeyError):
                    await store.rename("c", "x/m")  # a move below a value moves nothing
                assert await store.get_many(["c/d", "c/e/f", "x/m/d"]) == {"c/d": b"1", "c/e/f": b"2"}
                await store.rmdir("c")
            # A value written where keys are below replaces them.
            await store.set_many({"d/e": b"1", "d/f/g": b"2", "h/i": b"3"})
            await store.set("d", b"3")
            await store.set_many({"h": b"4", "j": b"5"})
            assert await store.get_many(["d", "d/e", "d/f/g", "h", "h/i", "j"]) == {
                "d": b"3",
                "h": b"4",
                "j": b"5",
            }
            assert not await store.contains("d/e")
            if self.supports_listing:
                assert await store.listdir("d") == [] and await store.listdir("h") == []
                assert await _keys(store) == ["a", "b", "d", "h", "j", "x", "z"]

    @_anyio
    async def test_a_name_that_is_a_key_and_a_path(self, anyio_backend: str) -> None:
        if self.values_are_leaves:
            pytest.skip(f"{type(self).__name__}.values_are_leaves: a name is a key or a path, never both")
        self._need("supports_listing")
        async with await self._open() as store:
            await store.set_many({"x": b"1", "x/y": b"22", "x/z/w": b"333", "xa": b"4", "z": b"5"})
            assert await store.listdir() == ["x", "xa", "z"]  # each child named once
            assert await store.listdir("x") == ["y", "z"]
            assert await store.getsize("x") == 1  # the key's own size
            assert await store.getsize("x/z") == 3
            assert await store.getsize() == 1 + 1 + 1
            assert await _keys(store, "x/") == ["x/y", "x/z/w"]
            if not self.supports_deletes:
                return
            await store.rename("x", "q")  # the key and everything below it move
            assert await _keys(store) == ["q", "q/y", "q/z/w", "xa", "z"]
            await store.rmdir("q")  # only what is below it goes
            assert await _keys(store) == ["q", "xa", "z"]
            await store.set("q/y", b"6")
            await store.delete("q")  # deleting the key leaves the keys below it
            assert await _keys(store) == ["q/y", "xa", "z"]

    @_anyio
    async def test_set_many_writes_every_key_it_does_not_report(self, anyio_backend: str) -> None:
        # README: a set_many's failed keys are named by BatchWriteError and every
        # other key is fully written -- whatever the order of the batch -- and what
        # the store then answers is what another store over the same data reads.
        async with await self._open() as store:
            await store.set("old", b"0")
            batch = {"x/y": b"2", "x": b"1", "z": b"3", "old/n": b"4"}
            failed: dict[str, BaseException] = {}
            try:
                await store.set_many(batch)
            except BatchWriteError as exc:
                failed = exc.failed
            keys = [*batch, "old"]
            stored = await store.get_many(keys)
            assert stored.get("old") == b"0"
            for key, value in batch.items():
                if key in failed:
                    assert key not in stored, f"{key!r} failed but is stored"
                else:
                    got = stored.get(key)
                    assert got == value, f"{key!r}: no error reported, yet it holds {got!r}"
            for key in keys:
                assert await store.contains(key) is (key in stored), key
            if self.supports_read_only:
                async with await self._read_only_view(store) as view:
                    afresh = await view.get_many(keys)
                    assert afresh == stored, f"the store answers {stored}, its data read afresh is {afresh}"

    @_anyio
    async def test_cancelled_set_many_leaves_keys_old_or_new(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            size = 4096
            old = {f"c/{i:03d}": b"o" * size for i in range(0, 120, 2)}
            await store.set_many(old)
            for delay in (0, 0.0005, 0.002):
                new = {f"c/{i:03d}": bytes([i]) * size for i in range(120)}
                with anyio.move_on_after(delay):
                    await store.set_many(new)
                stored = await store.get_many(new)
                for key, value in stored.items():
                    assert value in (old.get(key), new[key]), f"{key!r} is torn after a cancelled set_many"
                assert set(old) <= set(stored)  # an old key is never lost
                if self.supports_listing:
                    assert set(await _keys(store)) <= set(new)  # no stray (temporary) keys
                old |= stored
            await store.set("after", b"1")  # the store still works
            assert await store.get("after") == b"1"

    # -- the sync twin (no event loop) ---------------------------------------------------------------
    def test_sync_mutable_mapping(self) -> None:
        self._need("supports_listing")
        store = self._open_sync()
        assert len(store) == 0 and list(store) == [] and "a" not in store
        store["a"] = b"0"
        store["a"] = b"1"  # overwritten: still one key
        store["b/c"] = bytearray(b"22")
        store["n"] = np.array([1, 2], dtype="u1")
        assert store["a"] == b"1" and store["b/c"] == b"22" and store["n"] == b"\x01\x02"
        assert type(store["a"]) is bytes
        assert "a" in store and "/b/c" in store and "b" not in store and "zzz" not in store
        assert (
            len(store) == 3
            and sorted(store) == ["a", "b/c", "n"]
            and sorted(store.keys()) == ["a", "b/c", "n"]
        )
        assert sorted(store.values()) == [b"\x01\x02", b"1", b"22"]
        assert sorted(store.items()) == [("a", b"1"), ("b/c", b"22"), ("n", b"\x01\x02")]
        assert store.get("zzz") is None and store.get("zzz", b"d") == b"d"
        assert store.setdefault("a", b"other") == b"1"
        store.update({"d": b"4"}, e=b"5")
        assert dict(store) == {"a": b"1", "b/c": b"22", "n": b"\x01\x02", "d": b"4", "e": b"5"}
        with pytest.raises(KeyError):
            store["missing"]
        with pytest.raises(TypeError):
            store["x"] = [1, 2, 3]  # type: ignore[assignment]  # the point of the test
        with pytest.raises(TypeError):
            store["x"] = "text"  # type: ignore[assignment]
        with pytest.raises(ValueError, match="invalid key"):
            store["../x"] = b"x"
        with pytest.raises(ValueError, match="invalid key"):
            store["a\x00"]
        assert "x" not in store and len(store) == 5
        if self.supports_deletes:
            assert store.pop("d") == b"4" and store.pop("d", None) is None
            with pytest.raises(KeyError):
                store.pop("d")
            del store["e"]
            with pytest.raises(KeyError):
                del store["e"]
            key, value = store.popitem()
            assert dict(store).get(key) is None and value in (b"1", b"22", b"\x01\x02")
            assert len(store) == 2
        else:
            with pytest.raises(NotImplementedError):
                del store["e"]
            assert store["e"] == b"5"
        store.clear()
        assert len(store) == 0 and list(store) == []
        store.close()

    def test_sync_batch_and_hierarchy_methods(self) -> None:
        store = self._open_sync()
        store.setitems({"a/0": b"x", "a/1": np.array([1, 2], dtype="u1"), "b": b"yy"})
        assert store.getitems(["a/0", "a/1", "missing"], contexts={}) == {"a/0": b"x", "a/1": b"\x01\x02"}
        assert store.getitems(["b"]) == {"b": b"yy"}
        assert store.getitems([]) == {}
        assert store.getitems(["/b", "b"]) == {"/b": b"yy", "b": b"yy"}  # keyed as asked
        assert store.getsize("a/1") == 2
        assert store.is_readable() and store.is_writeable()
        assert store.is_erasable() is self.supports_deletes
        assert store.is_listable() is self.supports_listing
        if self.supports_listing:
            assert store.listdir() == ["a", "b"] and store.listdir(None) == ["a", "b"]
            assert store.listdir("a") == ["0", "1"] and store.listdir("b") == []
            assert store.getsize() == 2 and store.getsize(None) == 2 and store.getsize("a") == 3
            assert store.getsize("missing") == 0
        if self.supports_deletes and self.supports_listing:
            store.rename("a", "c")
            assert sorted(store) == ["b", "c/0", "c/1"]
            with pytest.raises(KeyError):
                store.rename("a", "d")
            with pytest.raises(FileExistsError):
                store.rename("c", "b")
            store.delitems(["c/0", "missing"])
            assert sorted(store) == ["b", "c/1"]
            store.rmdir("c")
            assert list(store) == ["b"]
            store.rmdir()
            assert list(store) == []
        elif not self.supports_deletes:
            with pytest.raises(NotImplementedError):
                store.delitems(["a/0"])
            with pytest.raises(NotImplementedError):
                store.rename("a", "c")
            store.delitems(["missing"])
            assert store.getitems(["a/0", "b"]) == {"a/0": b"x", "b": b"yy"}
        store.close()

    def test_sync_close_and_context_manager(self) -> None:
        with self._open_sync() as store:
            store["a"] = b"1"
            store.flush()
            assert store["a"] == b"1"
        assert store.async_store.closed
        with pytest.raises(ClosedStoreError):
            store["a"]
        with pytest.raises(ValueError, match="is closed"):
            store["b"] = b"2"
        with pytest.raises(ClosedStoreError):
            store.getitems(["a"])
        store.close()  # closing twice is fine, as zarr's suites expect

    def test_sync_read_only(self) -> None:
        self._need("supports_read_only")
        store = self._open_sync()
        store.setitems({"a": b"1", "b/c": b"2"})
        store.flush()
        view = self._open_sync(read_only=True)
        assert view.read_only and not view.is_writeable() and not view.is_erasable()
        with pytest.raises(ReadOnlyError):
            view["a"] = b"2"
        with pytest.raises(PermissionError):
            view.setitems({"n": b"2"})
        with pytest.raises(PermissionError):
            del view["a"]
        with pytest.raises(PermissionError):
            view.delitems(["a"])
        assert view.getitems(["a", "b/c", "n"]) == {"a": b"1", "b/c": b"2"}
        assert view["b/c"] == b"2"
        view.close()
        store.close()

    def test_sync_pickle(self) -> None:
        self._need("supports_pickle")
        store = self._open_sync()
        store.setitems({"a": b"1", "b/c": b"2"})
        clone = pickle.loads(pickle.dumps(store))
        self._opened.append(clone.async_store)
        assert isinstance(clone, SyncStore) and clone.async_store is not store.async_store
        assert type(clone.async_store) is type(store.async_store)
        assert clone.getitems(["a", "b/c", "x"]) == {"a": b"1", "b/c": b"2"}
        assert clone.read_only == store.read_only
        assert clone.async_store.dimension_separator == store.async_store.dimension_separator
        clone.close()
        assert store["a"] == b"1"  # the original is unaffected by the copy's close
        inner = pickle.loads(pickle.dumps(store.async_store))  # the async store pickles as well
        self._opened.append(inner)
        assert isinstance(inner, Store) and not inner.closed
        assert anyio.run(inner.get_many, ["a", "b/c"]) == {"a": b"1", "b/c": b"2"}
        SyncStore(inner).close()
        store.close()

    def test_sync_threads(self) -> None:
        store = self._open_sync()
        values = {f"t/{i}": _value(i) for i in range(64)}
        store.setitems(values)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for _ in range(5):
                    keys = [f"t/{i}" for i in range(n, 64, 4)]
                    assert store.getitems(keys) == {k: values[k] for k in keys}
                    assert store[f"t/{n}"] == values[f"t/{n}"]
                    store[f"mine/{n}"] = bytes([n]) * 100
            except BaseException as exc:  # reported below, with the thread's traceback
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        if errors:
            raise errors[0]
        assert store.getitems([f"mine/{n}" for n in range(4)]) == {
            f"mine/{n}": bytes([n]) * 100 for n in range(4)
        }
        store.close()
