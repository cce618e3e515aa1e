"""The conformance tests of reading: ``get``, byte ranges, ``get_many``, ``contains``."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

from aiostore.testing._base import StoreTestsBase
from aiostore.testing._cases import BAD_BYTE_RANGES, BYTE_RANGES, ODD_KEYS, sorted_keys, value_for

_anyio = pytest.mark.anyio


class ReadTests(StoreTestsBase):
    """Reads: values, normalized keys, byte ranges, batches and concurrent gets."""

    # -- get ------------------------------------------------------------------------
    @_anyio
    async def test_get_and_set(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set("a/b", b"hello")
            value = await store.get("a/b")
            assert value == b"hello"
            self._value_bytes(value, b"hello")
            del value  # a buffer may hold a read snapshot: release it
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
                assert await sorted_keys(store) == ["a/b", "c/d"]

    @_anyio
    async def test_byte_ranges(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many({"k": b"0123456789", "empty": b""})
            for byte_range, expected in BYTE_RANGES:
                got = await store.get("k", byte_range=byte_range)
                assert got == expected, f"byte_range={byte_range!r}: {got!r} != {expected!r}"
                self._value_bytes(got, expected)
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
            many = {f"m/{i}": value_for(i) for i in range(300)}
            await store.set_many(many)
            assert await store.get_many([*many, "m/missing"]) == many
            for key, value in (await store.get_many(["a", "b/c"])).items():
                self._value_bytes(value, {"a": b"1", "b/c": b"2"}[key])

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

    @_anyio
    async def test_contains_many(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            await store.set_many({"a/b": b"1", "e": b"", **{f"m/{i}": b"v" for i in range(0, 300, 2)}})
            keys = ["a/b", "a", "x", "/e", "a/b", *(f"m/{i}" for i in range(300))]
            expected = [True, False, False, True, *(i % 2 == 0 for i in range(300))]
            assert await store.contains_many(keys) == expected
            assert await store.contains_many([]) == []
            assert store.contains_many_sync(["e", "a/bb"]) == [True, False]

    # -- concurrency ---------------------------------------------------------------------------
    @_anyio
    async def test_concurrent_gets(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            values = {f"c/{i}": value_for(i, 5 + i % 40) for i in range(150)}
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
