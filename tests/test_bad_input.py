"""Bad input: each a clear error, and nothing written.

Wrong value types, keys that are not ``str``, closed stores, read-only stores,
wrong constructor arguments, a path that is a file (or a directory), a file that
is not what the store expects, a key stored below another key's value, and a
second open of an LMDB database with other settings.

Every backend runs the same scenarios, from the async API (under asyncio and
trio) and from its ``*_sync`` twin. A scenario is plain code calling
``call(op, *args)``: the sync tests run it in the test's thread, calling
``store.<op>_sync``; the async ones run it in a worker thread, each ``call``
awaiting ``store.<op>`` in the event loop. After every refused call the store
holds what it held before, and the files under the test's directory are
byte-identical (no temp file, no new directory, nothing appended).

Backend libraries' errors (``lmdb.Error``, ``dbm.error``, ``BadZipFile``) reach
the caller as :class:`aiostore.errors.BackendError` naming the path, with the
library's error as ``__cause__``; every aiostore error is a
:class:`aiostore.errors.StoreError`.
"""

from __future__ import annotations

import dbm
import dbm.dumb
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import lmdb
import numpy as np
import pytest

import aiostore
import aiostore.sync
from aiostore.errors import (
    BackendError,
    BatchWriteError,
    ClosedStoreError,
    KeyConflictError,
    ReadOnlyError,
    SettingsConflictError,
    StoreError,
)

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

SEED = {"a/b": b"1", "c": b"22", "d/e/f": b"333"}
KINDS = ["memory", "mapping", "directory", "nested", "temp", "zip", "dbm", "lmdb", "lru", "objectstore"]
HIERARCHICAL = ["memory", "directory", "nested", "temp", "lru"]
Call = Callable[..., Any]


class Kind:
    """Opens the stores of one backend; every store it opens sees the same data."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        self.root: dict[str, Any] = {}
        self.client: Any = None
        self.temp_path: str | None = None

    def open(self, read_only: bool = False) -> aiostore.Store:
        n, tmp = self.name, self.tmp
        if n == "memory":
            return aiostore.MemoryStore(self.root, read_only=read_only)
        if n == "mapping":
            return aiostore.MappingStore(self.root, read_only=read_only)
        if n == "directory":
            return aiostore.DirectoryStore(tmp / "data", read_only=read_only)
        if n == "nested":
            return aiostore.NestedDirectoryStore(tmp / "data", read_only=read_only)
        if n == "temp":
            if self.temp_path is None:
                store = aiostore.TempStore(dir=tmp)
                self.temp_path = store.path
                return store
            return aiostore.DirectoryStore(self.temp_path, read_only=read_only)
        if n == "zip":
            return aiostore.ZipStore(tmp / "data.zip", mode="r" if read_only else "a")
        if n == "dbm":
            return aiostore.DBMStore(tmp / "data.db", flag="r" if read_only else "c", open=dbm.dumb.open)
        if n == "lmdb":
            return aiostore.LMDBStore(tmp / "data.mdb", read_only=read_only)
        if n == "lru":
            return aiostore.LRUStoreCache(
                aiostore.MemoryStore(self.root, read_only=read_only), max_size=2**20
            )
        if n == "objectstore":
            obstore = pytest.importorskip("obstore")
            if self.client is None:
                self.client = obstore.store.MemoryStore()
            return aiostore.ObjectStore(self.client, read_only=read_only)
        raise AssertionError(n)

    def seeded(self) -> aiostore.Store:
        """A writable store holding :data:`SEED`, flushed to its files."""
        store = self.open()
        store.set_many_sync(SEED)
        store.flush_sync()
        return store


def files(tmp: Path) -> dict[str, bytes]:
    """Every file under ``tmp`` (LMDB's lock file aside: readers register there)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), tmp) + "/"] = b""
        for name in filenames:
            if name != "lock.mdb":
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, tmp)] = f.read()
    return out


def contents(store: aiostore.Store) -> dict[str, bytes]:
    keys = sorted(store.list_sync())
    return store.get_many_sync(keys)


def caller(store: aiostore.Store, sync: bool) -> Call:
    """``call(op, *args)``: ``store.<op>_sync(*args)``, or ``await store.<op>(*args)``
    in the event loop (from a worker thread)."""

    async def collect(prefix: str = "") -> list[str]:
        return [key async for key in store.list(prefix)]

    def call(op: str, *args: Any, **kwargs: Any) -> Any:
        if sync:
            if op == "list":
                return list(store.list_sync(*args))
            return getattr(store, f"{op}_sync")(*args, **kwargs)
        if op == "list":
            return anyio.from_thread.run(collect, *args)
        name = "aclose" if op == "close" else op

        async def run() -> Any:
            return await getattr(store, name)(*args, **kwargs)

        return anyio.from_thread.run(run)

    return call


def run_sync(
    scenario: Callable[[Kind, Call, aiostore.Store], None], kind: Kind, store: aiostore.Store
) -> None:
    scenario(kind, caller(store, sync=True), store)


async def run_async(
    scenario: Callable[[Kind, Call, aiostore.Store], None], kind: Kind, store: aiostore.Store
) -> None:
    await anyio.to_thread.run_sync(scenario, kind, caller(store, sync=False), store)


def refused(
    call: Call, expected: type[BaseException] | tuple[type[BaseException], ...], op: str, *args: Any
) -> BaseException:
    with pytest.raises(expected) as info:
        call(op, *args)
    return info.value


# -- wrong value types ------------------------------------------------------------------
BAD_VALUES = [1, "text", None, [1, 2], 1.5, {"a": 1}, np.array([1, None], dtype=object)]


def scenario_bad_values(kind: Kind, call: Call, store: aiostore.Store) -> None:
    before, disk = contents(store), files(kind.tmp)
    for value in BAD_VALUES:
        name = type(value).__name__
        for op, args in [
            ("set", ("new", value)),
            ("set", ("c", value)),
            ("set_many", ({"ok": b"1", "new": value},)),
            ("set_many", ({"new": value, "ok": b"1"},)),
            ("set_many", ([("ok", b"1"), ("c", value)],)),
        ]:
            err = refused(call, TypeError, op, *args)
            if not isinstance(value, np.ndarray):
                assert name in str(err), f"{op} of a {name} value: the error does not name the type: {err}"
            assert contents(store) == before, f"{op} of a {name} value wrote something"
    assert files(kind.tmp) == disk


@pytest.mark.parametrize("name", KINDS)
def test_values_that_are_not_bytes_sync(tmp_path: Path, name: str) -> None:
    kind = Kind(name, tmp_path)
    run_sync(scenario_bad_values, kind, kind.seeded())


@pytest.mark.anyio
@pytest.mark.parametrize("name", KINDS)
async def test_values_that_are_not_bytes_async(tmp_path: Path, name: str, anyio_backend: str) -> None:
    kind = Kind(name, tmp_path)
    await run_async(scenario_bad_values, kind, kind.seeded())


# -- keys that are not str ------------------------------------------------------------------
BAD_KEYS = [1, b"a/b", None, 1.5, ("a", "b")]


def scenario_bad_keys(kind: Kind, call: Call, store: aiostore.Store) -> None:
    before, disk = contents(store), files(kind.tmp)
    for key in BAD_KEYS:
        for op, args in [
            ("set", (key, b"1")),
            ("get", (key,)),
            ("contains", (key,)),
            ("delete", (key,)),
            ("set_many", ({"ok": b"1", key: b"1"},)),
            ("set_many", ([(key, b"1"), ("ok", b"1")],)),
            ("get_many", (["a/b", key],)),
            ("delete_many", (["c", key],)),
        ]:
            err = refused(call, TypeError, op, *args)
            assert type(key).__name__ in str(err), f"{op} with a {type(key).__name__} key: {err}"
            assert contents(store) == before, f"{op} with a {type(key).__name__} key changed the store"
    # a str (or bytes) where a collection of keys belongs: not a batch of one-letter keys
    for op, arg in [("get_many", "c"), ("delete_many", "c"), ("delete_many", b"c"), ("set_many", "c")]:
        refused(call, TypeError, op, arg)
        assert contents(store) == before, f"{op}({arg!r}) changed the store"
    assert files(kind.tmp) == disk


@pytest.mark.parametrize("name", KINDS)
def test_keys_that_are_not_str_sync(tmp_path: Path, name: str) -> None:
    kind = Kind(name, tmp_path)
    run_sync(scenario_bad_keys, kind, kind.seeded())


@pytest.mark.anyio
@pytest.mark.parametrize("name", KINDS)
async def test_keys_that_are_not_str_async(tmp_path: Path, name: str, anyio_backend: str) -> None:
    kind = Kind(name, tmp_path)
    await run_async(scenario_bad_keys, kind, kind.seeded())


# -- closed stores -----------------------------------------------------------------------------
CLOSED_OPS: list[tuple[str, tuple[Any, ...]]] = [
    ("get", ("a/b",)),
    ("get", ("missing",)),
    ("get_many", (["a/b", "c"],)),
    ("contains", ("a/b",)),
    ("list", ("",)),
    ("listdir", ("",)),
    ("getsize", ("",)),
    ("set", ("new", b"1")),
    ("set", ("c", b"changed")),
    ("set_many", ({"new": b"1", "c": b"changed"},)),
    ("delete", ("c",)),
    ("delete_many", (["c", "a/b"],)),
    ("rmdir", ("a",)),
    ("rename", ("a", "moved")),
    ("clear", ()),
]


def scenario_closed(kind: Kind, call: Call, store: aiostore.Store) -> None:
    call("close")
    call("close")  # closing twice is fine
    assert store.closed
    disk = files(kind.tmp)
    for op, args in CLOSED_OPS:
        if op in ("delete", "delete_many", "rename", "rmdir") and not store.supports_deletes:
            continue
        err = refused(call, ClosedStoreError, op, *args)
        assert isinstance(err, ValueError) and isinstance(err, StoreError)
        assert "closed" in str(err), f"{op} on a closed store: {err}"
    assert files(kind.tmp) == disk, "an operation on a closed store touched the files"
    if kind.name == "temp":
        assert kind.temp_path is not None and not os.path.exists(kind.temp_path), (
            "the closed TempStore's directory came back"
        )
        return
    reopened = kind.open()
    try:
        assert contents(reopened) == SEED
    finally:
        reopened.close_sync()


@pytest.mark.parametrize("name", KINDS)
def test_closed_store_sync(tmp_path: Path, name: str) -> None:
    kind = Kind(name, tmp_path)
    run_sync(scenario_closed, kind, kind.seeded())


@pytest.mark.anyio
@pytest.mark.parametrize("name", KINDS)
async def test_closed_store_async(tmp_path: Path, name: str, anyio_backend: str) -> None:
    kind = Kind(name, tmp_path)
    await run_async(scenario_closed, kind, kind.seeded())


@pytest.mark.parametrize("name", ["memory", "directory", "zip", "dbm", "lmdb"])
def test_closed_sync_twin(tmp_path: Path, name: str) -> None:
    """The zarr 2 side: a closed ``aiostore.sync`` twin refuses item access too."""
    kind = Kind(name, tmp_path)
    kind.seeded().close_sync()
    twin = aiostore.sync.SyncStore(kind.open())
    twin.close()
    for action in (
        lambda: twin["a/b"],
        lambda: twin.__setitem__("c", b"x"),
        lambda: twin.setitems({"c": b"x"}),
        lambda: "c" in twin,
        lambda: list(twin),
        lambda: len(twin),
    ):
        with pytest.raises(ClosedStoreError):
            action()
    reopened = kind.open()
    assert contents(reopened) == SEED
    reopened.close_sync()


# -- read-only stores ---------------------------------------------------------------------------
WRITE_OPS: list[tuple[str, tuple[Any, ...]]] = [
    ("set", ("new", b"1")),
    ("set", ("c", b"changed")),
    ("set_many", ({"new": b"1", "c": b"changed"},)),
    ("delete", ("c",)),
    ("delete", ("missing",)),
    ("delete_many", (["c", "a/b"],)),
    ("rmdir", ("a",)),
    ("rmdir", ("",)),
    ("rename", ("a", "moved")),
    ("clear", ()),
]


def scenario_read_only(kind: Kind, call: Call, store: aiostore.Store) -> None:
    assert store.read_only
    disk = files(kind.tmp)
    for op, args in WRITE_OPS:
        err = refused(call, ReadOnlyError, op, *args)
        assert isinstance(err, PermissionError) and isinstance(err, StoreError)
        assert "read-only" in str(err) or "read only" in str(err), f"{op}: {err}"
        assert contents(store) == SEED, f"{op} on a read-only store changed it"
    assert call("get", "a/b") == b"1"
    assert call("get_many", list(SEED)) == SEED
    assert files(kind.tmp) == disk, "a refused write touched the files"


READ_ONLY_KINDS = [k for k in KINDS if k != "temp"]  # TempStore takes no read_only


def _read_only_store(kind: Kind) -> aiostore.Store:
    kind.seeded().close_sync()
    return kind.open(read_only=True)


@pytest.mark.parametrize("name", READ_ONLY_KINDS)
def test_read_only_store_sync(tmp_path: Path, name: str) -> None:
    kind = Kind(name, tmp_path)
    run_sync(scenario_read_only, kind, _read_only_store(kind))


@pytest.mark.anyio
@pytest.mark.parametrize("name", READ_ONLY_KINDS)
async def test_read_only_store_async(tmp_path: Path, name: str, anyio_backend: str) -> None:
    kind = Kind(name, tmp_path)
    await run_async(scenario_read_only, kind, _read_only_store(kind))


@pytest.mark.parametrize("name", ["memory", "directory", "zip", "dbm", "lmdb"])
def test_read_only_sync_twin(tmp_path: Path, name: str) -> None:
    kind = Kind(name, tmp_path)
    twin = aiostore.sync.SyncStore(_read_only_store(kind))
    for action in (
        lambda: twin.__setitem__("c", b"x"),
        lambda: twin.__delitem__("c"),
        lambda: twin.setitems({"c": b"x"}),
        lambda: twin.delitems(["c"]),
        lambda: twin.clear(),
    ):
        with pytest.raises(ReadOnlyError):
            action()
    assert dict(twin.items()) == SEED
    twin.close()


# -- a key below another key's value -------------------------------------------------------------
# (The reverse, a value where keys are below, replaces them: zarr 2's rule, which its own
# store suite checks, so it is not a conflict here.)
def scenario_key_conflicts(kind: Kind, call: Call, store: aiostore.Store) -> None:
    call("set_many", {"0": b"zero", "1/1": b"one-one", "2/2/2": b"two"})
    before, disk = contents(store), files(kind.tmp)
    for key, existing in [("0/0", "0"), ("0/0/0", "0"), ("1/1/1", "1/1"), ("2/2/2/2", "2/2/2")]:
        for op, args in [("set", (key, b"x")), ("set_many", ({key: b"x"},))]:
            try:
                call(op, *args)
            except (KeyConflictError, BatchWriteError) as exc:
                err = exc
            else:
                pytest.fail(f"{op}({key!r}) over {existing!r} was not refused")
            if isinstance(err, BatchWriteError):
                assert set(err.failed) == {key}, f"{op}({key!r}): {err}"
                err = err.failed[key]
            assert isinstance(err, KeyConflictError), f"{op}({key!r}) raised {err!r}"
            assert isinstance(err, KeyError) and isinstance(err, StoreError)
            assert repr(key) in str(err) and repr(existing) in str(err), f"{op}({key!r}): {err}"
            assert contents(store) == before, f"{op}({key!r}) over {existing!r} changed the store"
            assert files(kind.tmp) == disk, f"{op}({key!r}) over {existing!r} touched the files"
    # In a batch, the conflicting key fails alone; the others are written.
    with pytest.raises(BatchWriteError) as info:
        call("set_many", {"fine": b"f", "0/0": b"x", "other/k": b"o"})
    assert set(info.value.failed) == {"0/0"}
    assert isinstance(info.value.failed["0/0"], KeyConflictError)
    assert contents(store) == {**before, "fine": b"f", "other/k": b"o"}


@pytest.mark.parametrize("name", HIERARCHICAL)
def test_key_conflicts_sync(tmp_path: Path, name: str) -> None:
    kind = Kind(name, tmp_path)
    run_sync(scenario_key_conflicts, kind, kind.seeded())


@pytest.mark.anyio
@pytest.mark.parametrize("name", HIERARCHICAL)
async def test_key_conflicts_async(tmp_path: Path, name: str, anyio_backend: str) -> None:
    kind = Kind(name, tmp_path)
    await run_async(scenario_key_conflicts, kind, kind.seeded())


# -- byte ranges of the wrong type -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["memory", "directory", "zip", "lmdb"])
@pytest.mark.parametrize("byte_range", [("a", None), (1,), (0, "2"), "0:2", (1.5, None)])
def test_bad_byte_ranges_sync(tmp_path: Path, name: str, byte_range: Any) -> None:
    store = Kind(name, tmp_path).seeded()
    with pytest.raises((TypeError, ValueError)) as info:
        store.get_sync("c", byte_range=byte_range)
    assert "byte_range" in str(info.value)
    store.close_sync()


# -- wrong constructor arguments ---------------------------------------------------------------------
def _constructors(tmp: Path) -> list[tuple[str, Callable[[], Any], type[BaseException], str]]:
    """(label, constructor, error type, word the message must contain)."""
    return [
        ("ZipStore mode", lambda: aiostore.ZipStore(tmp / "x.zip", mode="q"), ValueError, "mode"),
        ("ZipStore mode type", lambda: aiostore.ZipStore(tmp / "x.zip", mode=1), ValueError, "mode"),
        (
            "ZipStore compression",
            lambda: aiostore.ZipStore(tmp / "x.zip", compression=99),
            ValueError,
            "compression",
        ),
        ("ZipStore path", lambda: aiostore.ZipStore(123), TypeError, "int"),
        ("DBMStore flag", lambda: aiostore.DBMStore(tmp / "x.db", flag="z"), ValueError, "flag"),
        ("DBMStore flag type", lambda: aiostore.DBMStore(tmp / "x.db", flag=1), ValueError, "flag"),
        ("DBMStore open", lambda: aiostore.DBMStore(tmp / "x.db", open="dbm.dumb"), TypeError, "open"),
        (
            "LMDBStore map_size",
            lambda: aiostore.LMDBStore(tmp / "x.mdb", map_size=-1),
            ValueError,
            "map_size",
        ),
        (
            "LMDBStore map_size type",
            lambda: aiostore.LMDBStore(tmp / "x.mdb", map_size="1GB"),
            TypeError,
            "map_size",
        ),
        (
            "LMDBStore unknown argument",
            lambda: aiostore.LMDBStore(tmp / "x.mdb", bogus=1),
            TypeError,
            "bogus",
        ),
        ("LMDBStore max_dbs", lambda: aiostore.LMDBStore(tmp / "x.mdb", max_dbs=-1), ValueError, "max_dbs"),
        ("DirectoryStore path", lambda: aiostore.DirectoryStore(123), TypeError, "int"),
        ("DirectoryStore path None", lambda: aiostore.DirectoryStore(None), TypeError, "NoneType"),
        (
            "DirectoryStore dimension_separator",
            lambda: aiostore.DirectoryStore(tmp / "x", dimension_separator="-"),
            ValueError,
            "dimension_separator",
        ),
        (
            "NestedDirectoryStore dimension_separator",
            lambda: aiostore.NestedDirectoryStore(tmp / "x", dimension_separator="."),
            ValueError,
            "dimension_separator",
        ),
        (
            "MemoryStore dimension_separator",
            lambda: aiostore.MemoryStore(dimension_separator=":"),
            ValueError,
            "dimension_separator",
        ),
        ("MappingStore mapping", lambda: aiostore.MappingStore(123), TypeError, "MutableMapping"),
        (
            "LRUStoreCache max_size",
            lambda: aiostore.LRUStoreCache(aiostore.MemoryStore(), max_size=-1),
            ValueError,
            "max_size",
        ),
        ("LRUStoreCache store", lambda: aiostore.LRUStoreCache(123, max_size=1), TypeError, "int"),
    ]


_CONSTRUCTOR_LABELS = [label for label, *_ in _constructors(Path("."))]


@pytest.mark.parametrize("label", _CONSTRUCTOR_LABELS)
def test_wrong_constructor_arguments(tmp_path: Path, label: str) -> None:
    [(make, expected, word)] = [(m, e, w) for lab, m, e, w in _constructors(tmp_path) if lab == label]
    with pytest.raises(expected) as info:
        store = make()
        store.close_sync()
    assert word in str(info.value), f"{label}: the error does not name {word!r}: {info.value!r}"
    assert os.listdir(tmp_path) == [], f"{label}: a refused store left {os.listdir(tmp_path)}"


def test_sync_twin_constructors_check_the_same(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        aiostore.sync.ZipStore(tmp_path / "x.zip", mode="q")
    with pytest.raises(ValueError, match="flag"):
        aiostore.sync.DBMStore(tmp_path / "x.db", flag="z")
    with pytest.raises(ValueError, match="map_size"):
        aiostore.sync.LMDBStore(tmp_path / "x.mdb", map_size=-1)
    assert os.listdir(tmp_path) == []


# -- a path that is a file, a file that is not what the store expects ---------------------------------
GARBAGE = b"this is not a database, nor a zip file\n" * 40


def _zip_without_central_directory(path: Path) -> None:
    """What a writer killed before ``close()`` leaves: entries, no central directory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/b", b"1" * 100)
        zf.writestr("c", b"2" * 100)
    data = buf.getvalue()
    path.write_bytes(data[: data.find(b"PK\x01\x02")])  # up to the central directory


def _check_backend_error(
    err: BaseException, path: Path, cause: type[BaseException] | tuple[type[BaseException], ...] | None
) -> None:
    assert isinstance(err, BackendError), f"raised {type(err).__module__}.{type(err).__name__}: {err}"
    assert isinstance(err, StoreError) and isinstance(err, OSError)
    assert str(path) in str(err), f"the error does not name the path {str(path)!r}: {err}"
    if cause is not None:
        assert isinstance(err.__cause__, cause), f"__cause__ is {err.__cause__!r}, not a {cause}"


@pytest.mark.parametrize("store", ["DirectoryStore", "NestedDirectoryStore"])
def test_directory_store_over_a_file(tmp_path: Path, store: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(GARBAGE)
    with pytest.raises((ValueError, OSError)) as info:
        getattr(aiostore, store)(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == GARBAGE


@pytest.mark.parametrize("store", ["DirectoryStore", "NestedDirectoryStore"])
def test_directory_store_below_a_file(tmp_path: Path, store: str) -> None:
    """The root's parent is a file: the write fails naming the root, not as a key conflict."""
    path = tmp_path / "file"
    path.write_bytes(GARBAGE)
    try:
        s = getattr(aiostore, store)(path / "sub")
    except (ValueError, OSError) as exc:  # refused at open: fine, if it names the path
        assert str(path) in str(exc)
        return
    with pytest.raises(OSError) as info:
        s.set_sync("a", b"1")
    assert not isinstance(info.value, KeyError), f"a root below a file is not a key conflict: {info.value!r}"
    assert str(path) in str(info.value), f"the error does not name the root: {info.value}"
    assert path.read_bytes() == GARBAGE


def test_lmdb_over_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(GARBAGE)
    with pytest.raises(StoreError) as info:
        aiostore.LMDBStore(path)
    _check_backend_error(info.value, path, lmdb.Error)
    assert path.read_bytes() == GARBAGE
    assert os.listdir(tmp_path) == ["file"]


@pytest.mark.parametrize("read_only", [False, True])
def test_lmdb_over_a_garbage_file(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "file.mdb"
    path.write_bytes(GARBAGE)
    with pytest.raises(StoreError) as info:
        aiostore.LMDBStore(path, subdir=False, read_only=read_only)
    _check_backend_error(info.value, path, lmdb.Error)
    assert path.read_bytes() == GARBAGE


def test_lmdb_over_a_directory_with_a_garbage_data_file(tmp_path: Path) -> None:
    path = tmp_path / "db.mdb"
    path.mkdir()
    (path / "data.mdb").write_bytes(GARBAGE)
    with pytest.raises(StoreError) as info:
        aiostore.LMDBStore(path)
    _check_backend_error(info.value, path, lmdb.Error)
    assert (path / "data.mdb").read_bytes() == GARBAGE


def test_lmdb_read_only_over_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.mdb"
    with pytest.raises(OSError) as info:
        aiostore.LMDBStore(path, read_only=True)
    assert isinstance(info.value, StoreError), f"not an aiostore error: {info.value!r}"
    assert str(path) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_dbm_over_a_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "file.db"
    path.write_bytes(GARBAGE)
    for flag in ("c", "w", "r"):
        with pytest.raises(StoreError) as info:
            aiostore.DBMStore(path, flag=flag)
        _check_backend_error(info.value, path, dbm.error)
    assert path.read_bytes() == GARBAGE
    assert os.listdir(tmp_path) == ["file.db"]


def test_dbm_dumb_over_a_garbage_index(tmp_path: Path) -> None:
    path = tmp_path / "file.db"
    (tmp_path / "file.db.dir").write_bytes(b"garbage((\n")
    (tmp_path / "file.db.dat").write_bytes(GARBAGE)
    with pytest.raises(StoreError) as info:
        aiostore.DBMStore(path, open=dbm.dumb.open)
    _check_backend_error(info.value, path, None)
    assert (tmp_path / "file.db.dat").read_bytes() == GARBAGE


def test_dbm_read_only_over_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(StoreError) as info:
        aiostore.DBMStore(path, flag="r")
    _check_backend_error(info.value, path, dbm.error)
    assert os.listdir(tmp_path) == []


def test_dbm_over_a_directory(tmp_path: Path) -> None:
    """A directory where the database file belongs: refused, naming it, nothing made
    (``dbm.dumb`` would quietly make ``<dir>.dat`` and ``<dir>.dir`` beside it)."""
    path = tmp_path / "data.zarr"
    path.mkdir()
    with pytest.raises(OSError) as info:
        aiostore.DBMStore(path)
    assert str(path) in str(info.value)
    assert os.listdir(tmp_path) == ["data.zarr"]


@pytest.mark.parametrize("mode", ["r", "a"])
def test_zip_over_a_file_that_is_not_a_zip(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "file.zip"
    path.write_bytes(GARBAGE)
    with pytest.raises(StoreError) as info:
        aiostore.ZipStore(path, mode=mode)
    _check_backend_error(info.value, path, zipfile.BadZipFile)
    assert path.read_bytes() == GARBAGE, "the file was changed"
    assert os.listdir(tmp_path) == ["file.zip"]


@pytest.mark.parametrize("mode", ["r", "a"])
def test_zip_without_its_central_directory(tmp_path: Path, mode: str) -> None:
    """A Zip file whose writer died before ``close()``: refused with a clear error, unchanged."""
    path = tmp_path / "crashed.zip"
    _zip_without_central_directory(path)
    data = path.read_bytes()
    with pytest.raises(StoreError) as info:
        aiostore.ZipStore(path, mode=mode)
    _check_backend_error(info.value, path, zipfile.BadZipFile)
    assert path.read_bytes() == data


def test_zip_append_to_an_empty_file_makes_a_zip(tmp_path: Path) -> None:
    """An empty file is no one's data: mode 'a' makes a new Zip file of it (as zipfile does)."""
    path = tmp_path / "empty.zip"
    path.write_bytes(b"")
    with aiostore.sync.ZipStore(path, mode="a") as store:
        store["a"] = b"1"
    assert zipfile.ZipFile(path).read("a") == b"1"


@pytest.mark.parametrize("mode", ["r", "a", "w", "x"])
def test_zip_over_a_directory(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "data.zip"
    path.mkdir()
    with pytest.raises(OSError) as info:
        aiostore.ZipStore(path, mode=mode)
    assert str(path) in str(info.value)
    assert os.listdir(path) == []


def test_zip_read_over_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.zip"
    with pytest.raises(OSError) as info:
        aiostore.ZipStore(path, mode="r")
    assert str(path) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_every_backend_error_is_caught_as_a_store_error(tmp_path: Path) -> None:
    """One ``except StoreError`` catches what a bad file makes every backend raise."""
    garbage = tmp_path / "garbage"
    garbage.write_bytes(GARBAGE)
    for make in (
        lambda: aiostore.ZipStore(garbage, mode="r"),
        lambda: aiostore.ZipStore(garbage, mode="a"),
        lambda: aiostore.DBMStore(garbage),
        lambda: aiostore.LMDBStore(garbage),
        lambda: aiostore.LMDBStore(garbage, subdir=False),
    ):
        try:
            make()
        except StoreError as exc:
            assert exc.__cause__ is not None
        else:
            pytest.fail("a garbage file was accepted")
    assert garbage.read_bytes() == GARBAGE


# -- LMDB: a second open with other settings ---------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "second", "setting"),
    [
        ({"map_size": 2**20}, {"map_size": 2**21}, "map_size"),
        ({"map_size": 2**21}, {"map_size": 2**20}, "map_size"),
        ({"writemap": False}, {"writemap": True}, "writemap"),
        ({"writemap": True}, {"writemap": False}, "writemap"),
        ({"map_size": 2**20, "writemap": False}, {"map_size": 2**22, "writemap": True}, "writemap"),
    ],
)
def test_lmdb_second_open_with_other_settings(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any], setting: str
) -> None:
    path = tmp_path / "db.mdb"
    store = aiostore.LMDBStore(path, **first)
    store.set_sync("k", b"v")
    with pytest.raises(SettingsConflictError) as info:
        aiostore.LMDBStore(path, **second)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, StoreError)
    for name in second:
        if first.get(name, second[name]) != second[name]:
            assert name in str(err), f"the error does not say that {name} differs: {err}"
    assert str(path) in str(err)
    # the first store is unharmed, and the same settings share it
    assert store.get_sync("k") == b"v"
    same = aiostore.LMDBStore(path, **first)
    assert same.get_sync("k") == b"v"
    same.close_sync()
    store.set_sync("k2", b"v2")
    store.close_sync()
    # once the first stores are closed, the other settings are fine
    other = aiostore.LMDBStore(path, **second)
    assert other.get_many_sync(["k", "k2"]) == {"k": b"v", "k2": b"v2"}
    other.close_sync()


def test_lmdb_same_settings_after_the_map_grew(tmp_path: Path) -> None:
    """The first store's map grew past its map_size: a second open with the same
    settings is not a conflict."""
    path = tmp_path / "db.mdb"
    store = aiostore.LMDBStore(path, map_size=64 * 1024)
    store.set_many_sync({f"k{i}": os.urandom(10_000) for i in range(30)})  # grows the map
    assert store.db.info()["map_size"] > 64 * 1024
    second = aiostore.LMDBStore(path, map_size=64 * 1024)
    assert second.contains_sync("k0")
    second.close_sync()
    store.close_sync()


def test_lmdb_read_only_then_writable(tmp_path: Path) -> None:
    path = tmp_path / "db.mdb"
    aiostore.LMDBStore(path).close_sync()
    reader = aiostore.LMDBStore(path, read_only=True)
    with pytest.raises(ValueError) as info:
        aiostore.LMDBStore(path)
    assert isinstance(info.value, StoreError), f"not an aiostore error: {info.value!r}"
    assert "read" in str(info.value)
    reader.close_sync()
