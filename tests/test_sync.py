"""The sync side: SyncStore as a MutableMapping, blocking backends' ``*_sync``
methods run in the caller's thread with no event loop, the background portal for
natively async stores, pickling."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
import sniffio

import aiostore
import aiostore.sync
from aiostore import ClosedStoreError, ReadOnlyError
from aiostore._protocol import store as _store_module
from aiostore._runtime import forks
from aiostore._runtime import portal as _portal
from aiostore._runtime.forks import renew_after_fork
from aiostore.abc import BlockingStore, Buffer, ByteRange, Request, Store, slice_byte_range
from aiostore.stores import directory as _directory
from aiostore.sync import SyncStore, as_sync_store


class NativeAsyncStore(Store):
    """A natively async store: every primitive really suspends, as network I/O would."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, bytes] = {}
        self.threads: set[threading.Thread] = set()
        self.sync_view: SyncStore | None = None

    async def _io(self) -> None:
        self.threads.add(threading.current_thread())
        await anyio.lowlevel.checkpoint()

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        await self._io()
        if key == "reenter" and self.sync_view is not None:
            return self.sync_view["other"]  # sync API called on the portal's own thread
        return slice_byte_range(self.data[key], byte_range)

    async def _set(self, key: str, value: Buffer) -> None:
        await self._io()
        self.data[key] = bytes(value)

    async def _delete(self, key: str) -> None:
        await self._io()
        del self.data[key]

    async def _contains(self, key: str) -> bool:
        await self._io()
        return key in self.data

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        await self._io()
        for key in list(self.data):
            if key.startswith(prefix):
                yield key


class WatchedDict(dict[str, bytes]):
    """A mapping that records, for every access, the thread and whether an event loop ran."""

    def __init__(self) -> None:
        super().__init__()
        self.accesses: list[tuple[int, bool]] = []

    def _watch(self) -> None:
        try:
            sniffio.current_async_library()
            in_loop = True
        except sniffio.AsyncLibraryNotFoundError:
            in_loop = False
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            pass
        self.accesses.append((threading.get_ident(), in_loop))

    def __getitem__(self, key: str) -> bytes:
        self._watch()
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._watch()
        super().__setitem__(key, value)


# -- MutableMapping behaviour ---------------------------------------------------------


@pytest.fixture(params=["memory", "mapping", "native"])
def sync_store(request: pytest.FixtureRequest) -> SyncStore:
    if request.param == "memory":
        return aiostore.sync.MemoryStore()
    if request.param == "mapping":
        return aiostore.sync.MappingStore({})
    return SyncStore(NativeAsyncStore())


def test_mutable_mapping(sync_store: SyncStore) -> None:
    store = sync_store
    assert len(store) == 0 and list(store) == [] and "a" not in store
    store["a"] = b"1"
    store["b/c"] = bytearray(b"22")
    assert store["a"] == b"1" and store["b/c"] == b"22"
    assert "a" in store and "b" not in store
    assert len(store) == 2 and sorted(store) == ["a", "b/c"] and sorted(store.keys()) == ["a", "b/c"]
    assert sorted(store.values()) == [b"1", b"22"]
    assert sorted(store.items()) == [("a", b"1"), ("b/c", b"22")]
    assert store.get("zzz") is None and store.get("zzz", b"d") == b"d"
    assert store.setdefault("a", b"other") == b"1"
    store.update({"d": b"4"}, e=b"5")
    assert dict(store) == {"a": b"1", "b/c": b"22", "d": b"4", "e": b"5"}
    assert store.pop("d") == b"4" and store.pop("d", None) is None
    with pytest.raises(KeyError):
        store.pop("d")
    del store["e"]
    with pytest.raises(KeyError):
        del store["e"]
    with pytest.raises(KeyError):
        store["e"]
    key, value = store.popitem()
    assert (key, value) in {("a", b"1"), ("b/c", b"22")} and len(store) == 1
    store.clear()
    assert len(store) == 0
    with pytest.raises(TypeError):
        store["x"] = [1, 2, 3]
    with pytest.raises(ValueError, match="invalid key"):
        store["../x"] = b"x"
    assert len(store) == 0


def test_batch_and_hierarchy_methods(sync_store: SyncStore) -> None:
    store = sync_store
    store.setitems({"a/0": b"x", "a/1": np.array([1, 2], dtype="u1"), "b": b"yy"})
    assert store.getitems(["a/0", "a/1", "missing"], contexts={}) == {"a/0": b"x", "a/1": b"\x01\x02"}
    assert store.getitems(["b"]) == {"b": b"yy"}
    assert store.listdir() == ["a", "b"] and store.listdir("a") == ["0", "1"]
    assert store.getsize() == 2 and store.getsize("a") == 3 and store.getsize("a/1") == 2
    store.rename("a", "c")
    assert sorted(store) == ["b", "c/0", "c/1"]
    store.delitems(["c/0", "missing"])
    assert sorted(store) == ["b", "c/1"]
    store.rmdir("c")
    assert list(store) == ["b"]
    store.rmdir()
    assert list(store) == []
    assert store.is_readable() and store.is_writeable() and store.is_listable() and store.is_erasable()


def test_close_and_context_manager(sync_store: SyncStore) -> None:
    with sync_store as store:
        store["a"] = b"1"
        store.flush()
    with pytest.raises(ClosedStoreError):
        store["a"]
    store.close()  # closing twice is fine, as zarr's suites expect


def test_read_only() -> None:
    store = aiostore.sync.MemoryStore({"a": b"1"}, read_only=True)
    assert store.read_only and not store.is_writeable() and not store.is_erasable()
    with pytest.raises(ReadOnlyError):
        store["a"] = b"2"
    with pytest.raises(PermissionError):
        store.setitems({"b": b"2"})
    with pytest.raises(PermissionError):
        del store["a"]
    assert dict(store) == {"a": b"1"}


def test_public_attributes_of_the_wrapped_store_are_visible() -> None:
    memory = aiostore.sync.MemoryStore()
    memory["x/y"] = b"1"
    assert memory.root == {"x": {"y": b"1"}} and memory.cls is dict
    mapping = {"k": b"v"}
    assert aiostore.sync.MappingStore(mapping).mapping is mapping
    with pytest.raises(AttributeError):
        memory._lock  # noqa: B018 - private attributes are not forwarded
    assert not hasattr(memory, "no_such_attribute")


def test_sync_twins_take_the_same_parameters() -> None:
    names = [
        "MemoryStore",
        "MappingStore",
        "DirectoryStore",
        "NestedDirectoryStore",
        "TempStore",
        "ZipStore",
        "DBMStore",
        "LMDBStore",
        "LRUStoreCache",
    ]
    for name in names:
        sync_params = inspect.signature(getattr(aiostore.sync, name)).parameters
        async_params = inspect.signature(getattr(aiostore, name)).parameters
        assert list(sync_params) == list(async_params), name
        assert [p.kind for p in sync_params.values()] == [p.kind for p in async_params.values()], name
    assert aiostore.sync.DictStore is aiostore.sync.MemoryStore
    assert aiostore.DictStore is aiostore.MemoryStore
    store = aiostore.sync.MemoryStore(cls=dict, dimension_separator="/")
    assert store._dimension_separator == "/"
    assert isinstance(store.async_store, aiostore.MemoryStore)


def test_as_sync_store_and_type_checks() -> None:
    data = {"a": b"1"}
    wrapped = as_sync_store(data)
    assert isinstance(wrapped.async_store, aiostore.MappingStore) and wrapped["a"] == b"1"
    assert as_sync_store(wrapped) is wrapped
    inner = aiostore.MemoryStore()
    assert as_sync_store(inner).async_store is inner
    with pytest.raises(TypeError):
        SyncStore({})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        as_sync_store(42)


# -- pickling -----------------------------------------------------------------------------


def test_pickle_round_trip() -> None:
    for store in (
        aiostore.sync.MemoryStore(dimension_separator="/"),
        aiostore.sync.MappingStore({}),
        SyncStore(aiostore.MemoryStore()),
    ):
        store.setitems({"a": b"1", "b/c": b"2"})
        clone = pickle.loads(pickle.dumps(store))
        assert type(clone) is type(store) and clone == store
        assert dict(clone) == {"a": b"1", "b/c": b"2"}
        assert clone._dimension_separator == store._dimension_separator
        clone["d"] = b"3"  # a working, independent copy
        assert "d" not in store
    read_only = pickle.loads(pickle.dumps(aiostore.sync.MemoryStore(read_only=True)))
    assert read_only.read_only


# -- blocking backends: the caller's thread, no event loop, no portal ---------------------------


def test_blocking_backend_runs_in_the_callers_thread_without_an_event_loop() -> None:
    data = WatchedDict()
    store = aiostore.sync.MappingStore(data)
    threads_before = threading.active_count()
    store["a"] = b"1"
    store.setitems({f"k{i}": b"x" for i in range(100)})
    assert store["a"] == b"1"
    assert len(store.getitems([f"k{i}" for i in range(100)])) == 100
    me = threading.get_ident()
    assert data.accesses and all(access == (me, False) for access in data.accesses)
    assert threading.active_count() == threads_before  # no worker thread, no portal


@pytest.fixture
def no_portal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every use of the background loop fail the test."""

    def refuse(*args: Any) -> None:
        for arg in args:
            if inspect.iscoroutine(arg):
                arg.close()
        raise AssertionError("the portal was used")

    monkeypatch.setattr(_store_module, "run_on_portal", refuse)
    monkeypatch.setattr(_portal, "_get_portal", refuse)


def test_blocking_stores_never_touch_the_portal(no_portal: None, tmp_path: Path) -> None:
    stores = (
        aiostore.sync.MemoryStore(),
        aiostore.sync.MappingStore({}),
        aiostore.sync.DirectoryStore(tmp_path / "d"),
    )
    for store in stores:
        store["a/b"] = b"1"
        assert store.listdir("a") == ["b"] and list(store) == ["a/b"] and store["a/b"] == b"1"
        inner = store.async_store
        assert inner.supports_sync_io
        assert inner.get_sync("a/b", (0, 1)) == b"1" and inner.get_many_sync(["a/b", "x"]) == {"a/b": b"1"}
        assert inner.get_ranges_sync([("a/b", None), ("x", None)]) == [b"1", None]
        assert list(inner.list_sync("a/")) == ["a/b"] and inner.getsize_sync("a") == 1
        inner.delete_many_sync(["a/b"])
        assert not inner.contains_sync("a/b")
        store.close()
    # The patch does catch a store that uses the portal.
    with pytest.raises(AssertionError, match="the portal was used"):
        SyncStore(NativeAsyncStore())["a"] = b"1"


@pytest.mark.anyio
async def test_sync_api_works_inside_async_code() -> None:
    # zarr 2 called from a coroutine: blocking stores just run, blocking this task briefly.
    data = WatchedDict()
    store = aiostore.sync.MappingStore(data)
    store["a"] = b"1"
    assert store.getitems(["a"]) == {"a": b"1"}
    assert all(ident == threading.get_ident() for ident, _ in data.accesses)


@pytest.mark.anyio
async def test_a_suspending_native_store_runs_on_the_portal_even_from_async_code() -> None:
    # What the inline mode refused (a coroutine that really suspends, called from sync
    # code) is now a natively async store's *_sync method: it runs on the portal, also
    # when called from inside a running event loop (asyncio or trio) of this thread.
    native = NativeAsyncStore()
    assert not native.supports_sync_io
    native.set_sync("a", b"xyz")
    assert native.get_sync("a", (1, None)) == b"yz" and list(native.list_sync()) == ["a"]
    assert native.threads == {_portal.portal_thread()}
    assert threading.current_thread() not in native.threads


@pytest.mark.anyio
async def test_sync_and_async_reads_reach_the_same_blocking_hook(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[Request]] = []
    original = aiostore.DirectoryStore._get_blocking

    def spy(self: BlockingStore, requests: Sequence[Request]) -> list[bytes | None]:
        calls.append(list(requests))
        return original(self, requests)  # type: ignore[arg-type]

    monkeypatch.setattr(aiostore.DirectoryStore, "_get_blocking", spy)
    sync_store = aiostore.sync.DirectoryStore(tmp_path / "d")
    sync_store["a/b"] = b"value"
    store = aiostore.DirectoryStore(tmp_path / "d")
    assert calls == []

    assert sync_store["a/b"] == b"value"
    assert calls == [[("a/b", None)]]
    calls.clear()
    assert await store.get("a/b") == b"value"
    assert calls == [[("a/b", None)]]
    calls.clear()
    assert await store.get_many(["a/b", "missing"]) == {"a/b": b"value"}
    assert calls == [[("a/b", None), ("missing", None)]]


def test_a_sync_read_reaches_the_syscall_through_at_most_three_modules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = Path(aiostore.__file__).resolve().parent
    stacks: list[list[str]] = []
    recording = threading.local()

    def recorded(real: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            if not getattr(recording, "busy", False):
                recording.busy = True
                try:
                    stacks.append([frame.filename for frame in inspect.stack(0)])
                finally:
                    recording.busy = False
            return real(*args)

        return wrapper

    store = aiostore.sync.DirectoryStore(tmp_path / "d")
    store["a/b"] = b"value" * 100
    monkeypatch.setattr(_directory.os, "read", recorded(os.read))
    if hasattr(os, "pread"):
        monkeypatch.setattr(_directory.os, "pread", recorded(os.pread))
    assert store["a/b"] == b"value" * 100
    monkeypatch.undo()
    assert stacks, "os.read/os.pread was never called"
    for stack in stacks:
        ours = sorted(
            {
                str(Path(f).resolve().relative_to(package.parent))
                for f in stack
                if Path(f).resolve().is_relative_to(package)
            }
        )
        assert len(ours) <= 3, f"{len(ours)} aiostore modules between store[key] and the read: {ours}"
        assert "aiostore/stores/directory.py" in ours, ours


# -- the portal: natively async stores ---------------------------------------------------------


def test_native_store_runs_on_the_portal_thread() -> None:
    native = NativeAsyncStore()
    store = SyncStore(native)
    store["a"] = b"1"
    assert store["a"] == b"1" and store.getitems(["a", "b"]) == {"a": b"1"}
    portal = _portal.portal_thread()
    assert portal is not None and portal is not threading.current_thread()
    assert native.threads == {portal}
    # The store's own *_sync methods are what SyncStore calls: the same portal.
    assert native.get_sync("a") == b"1" and native.get_many_sync(["a", "b"]) == {"a": b"1"}
    assert list(native.list_sync()) == ["a"] and native.getsize_sync() == 1
    assert native.threads == {portal}


def test_calling_the_sync_api_from_the_portal_thread_raises() -> None:
    native = NativeAsyncStore()
    store = SyncStore(native)
    native.sync_view = store
    store["other"] = b"x"
    with pytest.raises(RuntimeError, match="background event loop"):
        store["reenter"]
    assert store["other"] == b"x"  # the portal still works afterwards


def test_a_dead_portal_is_replaced() -> None:
    store = SyncStore(NativeAsyncStore())
    store["a"] = b"1"
    old = _portal.portal_thread()
    assert old is not None
    _portal.portal_loop().call_soon_threadsafe(_portal.portal_loop().stop)
    old.join(10)
    assert not old.is_alive()
    assert store["a"] == b"1"  # checked alive before use: a new loop took over
    new = _portal.portal_thread()
    assert new is not None and new is not old and new.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_portal_works_in_a_forked_child() -> None:
    store = SyncStore(NativeAsyncStore())
    store["a"] = b"parent"  # the parent's portal thread is running now
    assert _portal.portal_thread() is not None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's portal thread does not exist here
        code = 1
        try:
            os.close(read_fd)
            store["b"] = b"child"
            ok = store["a"] == b"parent" and store["b"] == b"child"
            ok = ok and _portal.portal_thread() is not None and _portal.portal_thread().is_alive()  # type: ignore[union-attr]
            os.write(write_fd, b"ok" if ok else b"wrong values")
            code = 0
        except BaseException as exc:
            os.write(write_fd, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert report == b"ok" and os.waitstatus_to_exitcode(status) == 0
    assert store["a"] == b"parent" and "b" not in store  # the parent is unaffected


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_state_registered_with_renew_after_fork_is_renewed_in_the_child() -> None:
    # A lock another thread holds at the fork stays held in the child, by no one.
    class Guarded:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            renew_after_fork(self, Guarded.renew)

        def renew(self) -> None:
            self.lock = threading.Lock()

    renewed, plain = Guarded(), threading.Lock()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with renewed.lock, plain:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            report = f"{renewed.lock.acquire(timeout=5)} {plain.acquire(timeout=0.1)}"
            os.write(write_fd, report.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    release.set()
    holder.join()
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"True False"  # renewed; the unregistered lock is stuck
    assert forks.registered(renewed)
    gone = Guarded()
    key = id(gone)
    del gone
    gc.collect()
    assert key not in forks._RENEW  # the registry does not keep an owner alive


def test_portal_does_not_block_interpreter_exit() -> None:
    script = "import asyncio, aiostore._runtime.portal as p; p.run_on_portal(asyncio.sleep(0)); print('done')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr


def test_getitems_and_delitems_refuse_a_string_for_a_collection_of_keys() -> None:
    store = aiostore.sync.MemoryStore()
    store.setitems({"a": b"1", "b": b"2"})
    for collection in ("ab", b"ab"):
        with pytest.raises(TypeError, match="collection of str keys"):
            store.getitems(collection, contexts={})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="collection of str keys"):
            store.delitems(collection)  # type: ignore[arg-type]
    assert dict(store) == {"a": b"1", "b": b"2"}
