"""The async Store protocol (DESIGN.md), on MemoryStore and MappingStore, under asyncio and trio."""

from __future__ import annotations

import array
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

import aiostore
from aiostore import BatchWriteError, ClosedStoreError, MappingStore, MemoryStore, ReadOnlyError, Store

pytestmark = pytest.mark.anyio

FACTORIES: dict[str, Callable[..., Store]] = {
    "memory": MemoryStore,
    "mapping": lambda **kw: MappingStore({}, **kw),
}


@pytest.fixture(params=sorted(FACTORIES))
def make_store(request: pytest.FixtureRequest) -> Callable[..., Store]:
    return FACTORIES[request.param]


@pytest.fixture
async def store(make_store: Callable[..., Store]) -> AsyncIterator[Store]:
    async with make_store() as s:
        yield s


async def collect(agen: AsyncIterator[str]) -> list[str]:
    return [k async for k in agen]


# -- get / byte ranges -----------------------------------------------------------


async def test_get_set_roundtrip_and_missing(store: Store) -> None:
    await store.set("a/b", b"hello")
    assert await store.get("a/b") == b"hello"
    assert type(await store.get("a/b")) is bytes
    with pytest.raises(KeyError):
        await store.get("a/c")
    with pytest.raises(KeyError):
        await store.get("a")  # a "directory" is not a value


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        (None, b"0123456789"),
        ((0, None), b"0123456789"),
        ((2, 5), b"234"),
        ((7, None), b"789"),
        ((-3, None), b"789"),
        ((-20, None), b"0123456789"),  # a suffix longer than the value is the whole value
        ((4, 4), b""),
        ((8, 50), b"89"),
        ((20, None), b""),
        ([1, 3], b"12"),  # any pair is accepted
    ],
)
async def test_byte_ranges(store: Store, byte_range: Any, expected: bytes) -> None:
    await store.set("k", b"0123456789")
    assert await store.get("k", byte_range=byte_range) == expected


@pytest.mark.parametrize(
    ("byte_range", "error"),
    [
        ((-3, 5), ValueError),  # a suffix has no stop
        ((5, 2), ValueError),
        ((1.5, None), TypeError),
        ((True, None), TypeError),
        ((0, "3"), TypeError),
        ((1, 2, 3), TypeError),
        (5, TypeError),
    ],
)
async def test_invalid_byte_ranges(store: Store, byte_range: Any, error: type[Exception]) -> None:
    await store.set("k", b"0123456789")
    with pytest.raises(error, match="byte_range"):
        await store.get("k", byte_range=byte_range)


async def test_byte_range_of_missing_key(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.get("nope", byte_range=(0, 1))


# -- batches ----------------------------------------------------------------------


async def test_get_many_omits_missing_and_normalizes(store: Store) -> None:
    await store.set_many({"a": b"1", "b/c": b"2"})
    assert await store.get_many(["a", "missing", "b/c", "b"]) == {"a": b"1", "b/c": b"2"}
    assert await store.get_many(["/b//c/", "a", "a"]) == {"b/c": b"2", "a": b"1"}
    assert await store.get_many([]) == {}
    assert await store.get_many(iter(["a"])) == {"a": b"1"}


def _spread(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A view of ``a``'s values that is neither C- nor Fortran-contiguous."""
    big = np.zeros((4, 4), dtype=a.dtype)
    big[::2, ::2] = a
    return big[::2, ::2]


VALUES: dict[str, Callable[[], object]] = {
    "bytes": lambda: b"\x01\x02\x03\x04",
    "bytearray": lambda: bytearray(b"\x01\x02\x03\x04"),
    "memoryview": lambda: memoryview(b"\x00\x01\x02\x03\x04\x05")[1:5],
    "array.array": lambda: array.array("B", [1, 2, 3, 4]),
    "numpy-u1": lambda: np.array([1, 2, 3, 4], dtype="u1"),
    "numpy-u2": lambda: np.array([0x0201, 0x0403], dtype="<u2"),
    "numpy-2d": lambda: np.array([[1, 2], [3, 4]], dtype="u1"),
    "numpy-strided": lambda: np.array([1, 9, 2, 9, 3, 9, 4, 9], dtype="u1")[::2],
    "numpy-fortran": lambda: np.asfortranarray(np.array([[1, 3], [2, 4]], dtype="u1")),
    "numpy-transposed": lambda: np.array([[1, 2], [3, 4]], dtype="u1").T,
    "numpy-2d-strided": lambda: _spread(np.array([[1, 2], [3, 4]], dtype="u1")),
    "memoryview-strided": lambda: memoryview(bytes([1, 0, 2, 0, 3, 0, 4, 0]))[::2],
}


@pytest.mark.parametrize("kind", sorted(VALUES))
async def test_every_bytes_like_value_is_stored_as_its_bytes(store: Store, kind: str) -> None:
    # Stored bytes are memory order: C order, or F order for a Fortran-contiguous array
    # (as zarr 2's ensure_bytes does), so every value here stores 1, 2, 3, 4.
    value = VALUES[kind]()
    await store.set("one", value)
    await store.set_many({"many": VALUES[kind]()})
    assert await store.get("one") == b"\x01\x02\x03\x04"
    assert await store.get("many") == b"\x01\x02\x03\x04"


async def test_stored_values_do_not_alias_the_callers_buffer(store: Store) -> None:
    buf = bytearray(b"abc")
    arr = np.array([1, 2], dtype="u1")
    await store.set_many({"buf": buf, "arr": arr})
    buf[0] = ord("X")
    arr[0] = 99
    assert await store.get_many(["buf", "arr"]) == {"buf": b"abc", "arr": b"\x01\x02"}


async def test_special_numpy_values(store: Store) -> None:
    await store.set("empty", np.zeros((0, 3)))
    assert await store.get("empty") == b""
    days = np.array(["1970-01-02", "1970-01-04"], dtype="M8[D]")
    await store.set("days", days)
    assert await store.get("days") == np.array([1, 3], dtype="<i8").tobytes()


@pytest.mark.parametrize("bad", [[1, 2], "text", 3, None, {"a": 1}, np.array([object()])])
async def test_wrong_value_type_is_type_error_and_writes_nothing(store: Store, bad: object) -> None:
    with pytest.raises(TypeError, match="'k'"):
        await store.set("k", bad)
    with pytest.raises(TypeError, match="'bad'"):
        await store.set_many({"good1": b"x", "bad": bad, "good2": b"y"})
    assert await collect(store.list()) == []


async def test_invalid_key_in_a_batch_writes_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="invalid key"):
        await store.set_many({"good": b"x", "../evil": b"y"})
    with pytest.raises(TypeError):
        await store.set_many({"good": b"x", 3: b"y"})  # type: ignore[dict-item]
    assert await collect(store.list()) == []


async def test_set_many_accepts_pairs_and_last_duplicate_wins(store: Store) -> None:
    await store.set_many([("a", b"1"), ("b", b"2"), ("/a", b"3")])
    assert await store.get_many(["a", "b"]) == {"a": b"3", "b": b"2"}


async def test_delete_and_delete_many(store: Store) -> None:
    await store.set_many({"a": b"1", "b": b"2", "c/d": b"3"})
    await store.delete("a")
    assert not await store.contains("a")
    with pytest.raises(KeyError):
        await store.delete("a")
    await store.delete_many(["b", "missing", "c/d", "b"])
    assert await collect(store.list()) == []
    await store.delete_many([])


async def test_contains(store: Store) -> None:
    await store.set("a/b", b"1")
    assert await store.contains("a/b")
    assert await store.contains("/a//b")
    assert not await store.contains("a")
    assert not await store.contains("a/b/c")
    assert not await store.contains("x")


# -- listing ----------------------------------------------------------------------


async def test_list_with_prefix(store: Store) -> None:
    keys = ["ab", "abc", "a/b", "a/c/d", "b/a", ".zgroup"]
    await store.set_many({k: b"v" for k in keys})
    assert sorted(await collect(store.list())) == sorted(keys)
    assert sorted(await collect(store.list("a"))) == ["a/b", "a/c/d", "ab", "abc"]
    assert sorted(await collect(store.list("ab"))) == ["ab", "abc"]
    assert sorted(await collect(store.list("a/"))) == ["a/b", "a/c/d"]
    assert sorted(await collect(store.list("a/c"))) == ["a/c/d"]
    assert await collect(store.list("zzz")) == []
    assert await collect(store.list("a/c/d/e")) == []


async def test_list_is_streamed(store: Store) -> None:
    await store.set_many({f"k/{i:04d}": b"v" for i in range(2500)})
    seen = []
    agen = store.list("k/")
    async for key in agen:
        seen.append(key)
        if len(seen) == 3:
            break
    await agen.aclose()  # type: ignore[attr-defined]
    assert len(seen) == 3
    assert len(await collect(store.list("k/"))) == 2500


async def test_list_argument_checks(store: Store) -> None:
    with pytest.raises(TypeError):
        await collect(store.list(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await collect(store.list("a\x00"))


async def test_listdir(store: Store) -> None:
    await store.set_many({"a": b"1", "c/d": b"2", "c/e/f": b"3", "c/e/g": b"4", ".zattrs": b"{}"})
    assert await store.listdir() == [".zattrs", "a", "c"]
    assert await store.listdir("") == [".zattrs", "a", "c"]
    assert await store.listdir(None) == [".zattrs", "a", "c"]
    assert await store.listdir("c") == ["d", "e"]
    assert await store.listdir("/c/") == ["d", "e"]
    assert await store.listdir("c/e") == ["f", "g"]
    for nothing in ["x", "a", "a/x", "c/d", "c/x/y", "c/e/f"]:
        assert await store.listdir(nothing) == []


async def test_rmdir(store: Store) -> None:
    await store.set_many({"a": b"1", "c/d": b"2", "c/e/f": b"3", "ce": b"4"})
    await store.rmdir("c/e")
    assert sorted(await collect(store.list())) == ["a", "c/d", "ce"]
    for harmless in ["x", "a", "a/x", "c/d", "c/d/x"]:  # missing paths and plain keys: no-op
        await store.rmdir(harmless)
    assert sorted(await collect(store.list())) == ["a", "c/d", "ce"]
    await store.rmdir("c")
    assert sorted(await collect(store.list())) == ["a", "ce"]  # "ce" only shares a prefix
    await store.rmdir()
    assert await collect(store.list()) == []


async def test_rename(store: Store) -> None:
    await store.set_many({"a": b"1", "c/d": b"2", "c/e/f": b"3", "cx": b"4"})
    await store.rename("c", "n/m")
    assert sorted(await collect(store.list())) == ["a", "cx", "n/m/d", "n/m/e/f"]
    assert await store.get("n/m/e/f") == b"3"
    await store.rename("a", "b")  # a single key moves too
    assert await store.get_many(["a", "b"]) == {"b": b"1"}
    await store.rename("n/m", "n/m")  # to itself: nothing happens
    assert await store.get("n/m/d") == b"2"


async def test_rename_never_merges_or_replaces(store: Store) -> None:
    data = {"a/b/x": b"1", "a/b/b/x": b"2", "a/y": b"3", "k": b"4"}
    await store.set_many(data)
    for dst in ["a", "a/y", "k"]:  # an ancestor, a sibling key, another key
        with pytest.raises(FileExistsError):
            await store.rename("a/b", dst)
    with pytest.raises(KeyError):
        await store.rename("missing", "elsewhere")
    assert await store.get_many(list(data)) == data
    assert sorted(await collect(store.list())) == sorted(data)


@pytest.mark.parametrize(("src", "dst"), [("", "x"), ("x", ""), ("a", "a/b")])
async def test_rename_refuses_root_and_into_itself(store: Store, src: str, dst: str) -> None:
    await store.set("a/k", b"1")
    with pytest.raises(ValueError):
        await store.rename(src, dst)
    assert await collect(store.list()) == ["a/k"]


async def test_getsize_zarr2_semantics(store: Store) -> None:
    assert await store.getsize() == 0
    await store.set_many({"a": b"aaa", "b": b"bb", "c/d": b"dddd", "c/e/f": b"ffffff"})
    assert await store.getsize() == 5  # immediate child keys only
    assert await store.getsize("") == 5
    assert await store.getsize("a") == 3  # a key: its own size
    assert await store.getsize("c") == 4  # not recursive
    assert await store.getsize("c/e") == 6
    assert await store.getsize("c/e/f") == 6
    for nothing in ["x", "a/x", "c/x/y", "c/d/y"]:
        assert await store.getsize(nothing) == 0


async def test_clear(store: Store) -> None:
    await store.set_many({"a": b"1", "b/c": b"2"})
    await store.clear()
    assert await collect(store.list()) == []
    await store.set("a", b"again")  # still usable
    assert await store.get("a") == b"again"


# -- lifecycle ---------------------------------------------------------------------


async def test_async_with_closes_and_aclose_is_idempotent(make_store: Callable[..., Store]) -> None:
    store = make_store()
    async with store as entered:
        assert entered is store
        await store.set("a", b"1")
        await store.flush()
    assert store.closed
    await store.aclose()  # a second close is a no-op
    with pytest.raises(ClosedStoreError):
        async with store:
            pass


CLOSED_CALLS: dict[str, Callable[[Store], Any]] = {
    "get": lambda s: s.get("a"),
    "get_many": lambda s: s.get_many(["a"]),
    "set": lambda s: s.set("a", b"1"),
    "set_many": lambda s: s.set_many({"a": b"1"}),
    "delete": lambda s: s.delete("a"),
    "delete_many": lambda s: s.delete_many(["a"]),
    "contains": lambda s: s.contains("a"),
    "list": lambda s: collect(s.list()),
    "listdir": lambda s: s.listdir(),
    "rmdir": lambda s: s.rmdir("x"),
    "rename": lambda s: s.rename("a", "b"),
    "getsize": lambda s: s.getsize(),
    "clear": lambda s: s.clear(),
    "flush": lambda s: s.flush(),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
async def test_closed_store_raises_value_error(make_store: Callable[..., Store], call: str) -> None:
    store = make_store()
    await store.set("a", b"1")
    await store.aclose()
    with pytest.raises(ValueError, match="is closed"):
        await CLOSED_CALLS[call](store)


WRITE_CALLS: dict[str, Callable[[Store], Any]] = {
    "set": lambda s: s.set("a", b"new"),
    "set_many": lambda s: s.set_many({"a": b"new"}),
    "delete": lambda s: s.delete("a"),
    "delete_many": lambda s: s.delete_many(["a"]),
    "rmdir": lambda s: s.rmdir(""),
    "rename": lambda s: s.rename("a", "b"),
    "clear": lambda s: s.clear(),
}


@pytest.mark.parametrize("call", sorted(WRITE_CALLS))
async def test_read_only_store_refuses_writes(call: str) -> None:
    data = {"a": b"old"}
    for store in (MappingStore(data, read_only=True), MemoryStore({"a": b"old"}, read_only=True)):
        assert store.read_only
        with pytest.raises(ReadOnlyError):
            await WRITE_CALLS[call](store)
        assert isinstance(ReadOnlyError(), PermissionError)
        assert await store.get_many(["a", "b"]) == {"a": b"old"}
        await store.aclose()  # closing a read-only store does not flush (and works)


# -- partial failures ----------------------------------------------------------------


class FlakyMapping(dict[str, bytes]):
    """A mapping whose writes fail for keys containing "bad", like a full disk would."""

    def __setitem__(self, key: str, value: bytes) -> None:
        if "bad" in key:
            raise OSError(28, "No space left on device", key)
        super().__setitem__(key, value)


async def test_batch_write_error_names_failed_keys_others_fully_written() -> None:
    data = FlakyMapping({"bad1": b"old"})
    store = MappingStore(data)
    items = {f"ok{i}": bytes([i]) * 10 for i in range(40)} | {"bad1": b"new", "sub/bad2": b"new"}
    with pytest.raises(BatchWriteError) as info:
        await store.set_many(items)
    assert sorted(info.value.failed) == ["bad1", "sub/bad2"]
    assert all(isinstance(e, OSError) for e in info.value.failed.values())
    assert "bad1" in str(info.value) and "sub/bad2" in str(info.value)
    assert isinstance(info.value, OSError)
    for i in range(40):
        assert data[f"ok{i}"] == bytes([i]) * 10
    assert data["bad1"] == b"old"  # unchanged, not torn
    assert "sub/bad2" not in data


async def test_memory_store_batch_write_error_for_a_key_below_a_value() -> None:
    store = MemoryStore()
    await store.set("a", b"value")
    with pytest.raises(BatchWriteError) as info:
        await store.set_many({"x": b"1", "a/b": b"2", "y": b"3"})
    assert list(info.value.failed) == ["a/b"]
    assert await store.get_many(["x", "y", "a", "a/b"]) == {"x": b"1", "y": b"3", "a": b"value"}


def test_store_needs_the_primitives() -> None:
    with pytest.raises(TypeError):
        Store()  # type: ignore[abstract]
    assert aiostore.MemoryStore.supports_deletes and aiostore.MemoryStore.supports_listing


def test_dimension_separator_is_checked() -> None:
    assert MemoryStore(dimension_separator="/").dimension_separator == "/"
    assert MemoryStore().dimension_separator is None
    with pytest.raises(ValueError, match="dimension_separator"):
        MemoryStore(dimension_separator=":")


@pytest.mark.parametrize("collection", ["ab", b"ab"])
async def test_a_string_is_not_a_collection_of_keys(store: Store, collection: Any) -> None:
    await store.set_many({"a": b"1", "b": b"2"})
    with pytest.raises(TypeError, match="collection of str keys"):
        await store.get_many(collection)
    with pytest.raises(TypeError, match="collection of str keys"):
        await store.delete_many(collection)
    with pytest.raises(TypeError, match="collection of str keys"):
        store.delete_many_sync(collection)
    assert await store.get_many(["a", "b"]) == {"a": b"1", "b": b"2"}  # nothing deleted


@pytest.mark.parametrize(("key", "shown"), [(5, "int: 5"), (b"a", "bytes: b'a'"), (None, "NoneType: None")])
async def test_every_non_str_key_gets_one_message(store: Store, key: Any, shown: str) -> None:
    for call in (store.get(key), store.set(key, b"1"), store.contains(key), store.get_many([key])):
        with pytest.raises(TypeError, match=f"^key must be str, not {shown}$"):
            await call
    with pytest.raises(TypeError, match=f"^key must be str, not {shown}$"):
        store.get_sync(key)
