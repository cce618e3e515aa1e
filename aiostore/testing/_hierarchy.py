"""The conformance tests of the hierarchy: listing, ``listdir``, ``rmdir``, ``rename``, ``getsize``,
``clear``, and keys below a value."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import cast

import anyio
import pytest

from aiostore.errors import BatchWriteError, KeyConflictError
from aiostore.testing._base import StoreTestsBase
from aiostore.testing._cases import ODD_KEYS, sorted_keys, value_for

_anyio = pytest.mark.anyio


class HierarchyTests(StoreTestsBase):
    """The store as a tree: paths, listings, moves, sizes, and a key that is also a path."""

    # -- bad paths ---------------------------------------------------------------------
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
                await sorted_keys(store, "a\x00")
            with pytest.raises(TypeError):
                await sorted_keys(store, 3)  # type: ignore[arg-type]
            assert await sorted_keys(store) == ["a/b"]

    # -- listing ------------------------------------------------------------------------
    @_anyio
    async def test_list_with_prefix(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            assert await sorted_keys(store) == []
            keys = ["ab", "abc", "a/b", "a/c/d", "b/a", ".zgroup", *ODD_KEYS]
            await store.set_many({k: b"v" for k in keys})
            assert await sorted_keys(store) == sorted(set(keys))
            assert await sorted_keys(store, "a") == [
                "a-b_c/0.0.0",
                "a.b/.zarray",
                "a/b",
                "a/c/d",
                "ab",
                "abc",
            ]
            assert await sorted_keys(store, "ab") == ["ab", "abc"]
            assert await sorted_keys(store, "a/") == ["a/b", "a/c/d"]
            assert await sorted_keys(store, "a/c") == ["a/c/d"]
            assert await sorted_keys(store, "grüße/") == ["grüße/数据"]
            assert await sorted_keys(store, "zzz") == []
            assert await sorted_keys(store, "a/c/d/e") == []
            listed = [key async for key in store.list()]
            assert len(listed) == len(set(listed))  # no key twice

    @_anyio
    async def test_list_stops_early_and_tolerates_writes(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            keys = {f"k/{i:04d}": value_for(i) for i in range(1200)}
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
            assert await sorted_keys(store, "k/") == sorted(keys)
            assert await store.get("other") == b"1"
            with anyio.fail_after(30):  # an abandoned listing holds nothing
                await store.set("k/new", b"2")
                assert len(await sorted_keys(store, "k/")) == len(keys) + 1

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
            assert await sorted_keys(store) == ["a", "c/d", "ce"]
            for harmless in ["x", "a", "a/x", "c/d", "c/d/x"]:  # missing paths and plain keys: no-op
                await store.rmdir(harmless)
            assert await sorted_keys(store) == ["a", "c/d", "ce"]
            await store.rmdir("/c/")
            assert await sorted_keys(store) == ["a", "ce"]  # "ce" only shares a prefix
            assert await store.listdir("c") == []
            await store.rmdir()
            assert await sorted_keys(store) == []
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
            assert await sorted_keys(store) == ["a", "cx", "n/m/d", "n/m/e/f"]
            assert await store.get_many(["n/m/d", "n/m/e/f", "c/d"]) == {"n/m/d": b"2", "n/m/e/f": b"3"}
            await store.rename("a", "b")  # a single key moves too
            assert await store.get_many(["a", "b"]) == {"b": b"1"}
            await store.rename("n/m", "n/m")  # to itself: nothing happens
            assert await store.get("n/m/d") == b"2"
            await store.rename("n/m/e", "e")  # up the tree
            await store.rename("/n/", "p")  # paths are normalized
            assert await sorted_keys(store) == ["b", "cx", "e/f", "p/m/d"]
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
            assert await sorted_keys(store) == sorted(data)

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

    # -- clear ----------------------------------------------------------------------------
    @_anyio
    async def test_clear(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        async with await self._open() as store:
            await store.set_many({"a": b"1", "b/c": b"2", "d/e/f": b"3"})
            await store.clear()
            assert await store.get_many(["a", "b/c", "d/e/f"]) == {}
            assert not await store.contains("a")
            assert await sorted_keys(store) == []
            assert await store.listdir() == []
            await store.clear()  # clearing an empty store is fine
            await store.set("a", b"again")  # still usable
            assert await store.get("a") == b"again"

    # -- keys below a value -----------------------------------------------------------------
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
            with pytest.raises(KeyConflictError, match=r"'x/y'.*'x'"):
                await store.set("x/y", b"2")  # a single write below a value
            assert await store.get("x") == b"1" and not await store.contains("x/y")
            if self.supports_deletes and self.supports_listing:
                await store.set_many({"c/d": b"1", "c/e/f": b"2"})
                with pytest.raises(KeyError):
                    await store.rename("c", "x/m")  # a move below a value moves nothing
                assert await store.get_many(["c/d", "c/e/f", "x/m/d"]) == {"c/d": b"1", "c/e/f": b"2"}
                await store.rmdir("c")
            # A value written where keys are below replaces them (zarr 2's rule).
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
                assert await sorted_keys(store) == ["a", "b", "d", "h", "j", "x", "z"]

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
            assert await sorted_keys(store, "x/") == ["x/y", "x/z/w"]
            if not self.supports_deletes:
                return
            await store.rename("x", "q")  # the key and everything below it move
            assert await sorted_keys(store) == ["q", "q/y", "q/z/w", "xa", "z"]
            await store.rmdir("q")  # only what is below it goes
            assert await sorted_keys(store) == ["q", "xa", "z"]
            await store.set("q/y", b"6")
            await store.delete("q")  # deleting the key leaves the keys below it
            assert await sorted_keys(store) == ["q/y", "xa", "z"]
