"""The conformance tests of writing: ``set``, ``set_many``, bad keys, deletes and partial failures."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest

from aiostore.abc import BufferLike
from aiostore.errors import BatchWriteError
from aiostore.testing._base import StoreTestsBase
from aiostore.testing._cases import BAD_KEYS, BYTES_LIKE, NOT_BYTES_LIKE, sorted_keys, value_for

_anyio = pytest.mark.anyio


class WriteTests(StoreTestsBase):
    """Writes: every bytes-like value, key checks, deletes, concurrent and cancelled writes."""

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
                assert await sorted_keys(store) == ["a", "b", "c/d"]

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
                assert await sorted_keys(store) == ["a/b"]

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
                assert await sorted_keys(store) == []
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

    # -- concurrency ---------------------------------------------------------------------------
    @_anyio
    async def test_concurrent_writes(self, anyio_backend: str) -> None:
        async with await self._open() as store:
            values = {f"w/{i}": value_for(i) for i in range(100)}

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
                        value = self._value_bytes(await store.get("same"))
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
            same = self._value_bytes(await store.get("same"))  # one whole value of one writer, never torn
            assert len(same) == size and same == same[:1] * size and same[0] < 12

    # -- partial failures ------------------------------------------------------------------------
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
                    assert set(await sorted_keys(store)) <= set(new)  # no stray (temporary) keys
                old |= stored
            await store.set("after", b"1")  # the store still works
            assert await store.get("after") == b"1"
