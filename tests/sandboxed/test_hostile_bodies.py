"""Hostile keys against every store, async and sync -- run ONLY in a read-only sandbox.

tests/stress/test_hostile_keys_sandboxed.py runs this module in a subprocess where
everything outside one work directory is read-only: under ``tools/sandbox.sh``, or
directly where the tests already run read-only (a read-only container), as
:mod:`sandbox_probe` finds by probing. Anywhere else every test here skips: a
key-guard bug would otherwise let these keys write ``/etc/passwd`` or remove
``/`` on the machine running the tests.

Hypothesis builds keys from ``..``, ``.``, empty segments, absolute and UNC
prefixes, NUL and control characters, backslashes, drive letters, names past
NAME_MAX and paths past PATH_MAX, and unicode (RTL overrides, combining marks,
emoji, fullwidth dots and slashes, a lone surrogate); every key goes through
every operation of every store, async and sync, each time on a freshly reset
store. :func:`hostile.judge` says what must hold: nothing outside the store is
created, read, changed or removed, and a refusal is a ValueError naming the key.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import anyio.from_thread
import hostile
import obstore.store
import pytest
from hostile import (
    DST,
    PAYLOAD,
    TALLY,
    Op,
    Playground,
    Subject,
    check_bool,
    check_bytes,
    check_keys,
    check_names,
    check_size,
    check_values,
    judge,
)
from hypothesis import example, given

import aiostore
import aiostore.sync

pytestmark = [
    *hostile.sandbox_marks(),
    # A Zip file cannot replace an entry: a second write of a key appends another (zipfile warns).
    pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning"),
]


# -- the stores ---------------------------------------------------------------------------------

TWINS: dict[str, Callable[[str], aiostore.sync.SyncStore[Any]]] = {
    "memory": lambda root: aiostore.sync.MemoryStore(),
    "mapping": lambda root: aiostore.sync.MappingStore({}),
    "directory": lambda root: aiostore.sync.DirectoryStore(root),
    "nested": lambda root: aiostore.sync.NestedDirectoryStore(root),
    "zip": lambda root: aiostore.sync.ZipStore(os.path.join(root, "store.zip"), mode="a"),
    "dbm": lambda root: aiostore.sync.DBMStore(os.path.join(root, "store.db")),
    "lmdb": lambda root: aiostore.sync.LMDBStore(os.path.join(root, "store.lmdb")),
    "cache": lambda root: aiostore.sync.LRUStoreCache(aiostore.sync.DirectoryStore(root), max_size=1 << 16),
    "objectstore": lambda root: aiostore.sync.ObjectStore(obstore.store.LocalStore(prefix=root)),
}
KINDS = hostile.KINDS
DIRECTORY_KINDS = hostile.DIRECTORY_KINDS


class AsyncSubject(Subject):
    def __init__(self, pg: Playground, kind: str, portal: anyio.from_thread.BlockingPortal) -> None:
        super().__init__(pg)
        self.kind = kind
        self.portal = portal
        self.temp_names = kind in DIRECTORY_KINDS

    def build(self) -> None:
        self.store = self.target = hostile.STORES[self.kind](self.pg.root)

    async def run(self, op: Op, key: str) -> Any:
        return await op.call(self.target, key)

    def __repr__(self) -> str:
        return f"async {self.kind}"


class SyncSubject(Subject):
    def __init__(self, pg: Playground, kind: str) -> None:
        super().__init__(pg)
        self.kind = kind
        self.temp_names = kind in DIRECTORY_KINDS

    def build(self) -> None:
        self.target = TWINS[self.kind](self.pg.root)
        self.store = self.target.async_store


class AsyncTemp(AsyncSubject):
    rebuilt = False  # closing a TempStore removes its directory

    def build(self) -> None:
        self.store = self.target = aiostore.TempStore(dir=self.pg.parent)
        self.pg.root = self.store.path


class SyncTemp(SyncSubject):
    rebuilt = False

    def build(self) -> None:
        self.target = aiostore.sync.TempStore(dir=self.pg.parent)
        self.store = self.target.async_store
        self.pg.root = self.store.path


# -- the operations -----------------------------------------------------------------------------


async def _list(s: aiostore.Store, k: str) -> list[str]:
    return [key async for key in s.list(k)]


def _async(name: str, arg: str, fn: Callable[[Any, str], Any], **kw: Any) -> Op:
    async def call(s: Any, k: str) -> Any:
        return await fn(s, k)

    return Op(name, arg, call, **kw)


_MISSING = (KeyError,)
_RENAME = (KeyError, FileExistsError)
ASYNC_OPS = [
    _async("get", "key", lambda s, k: s.get(k), errors=_MISSING, check=check_bytes),
    _async(
        "get_suffix", "key", lambda s, k: s.get(k, byte_range=(-4, None)), errors=_MISSING, check=check_bytes
    ),
    _async("get_range", "key", lambda s, k: s.get(k, byte_range=(1, 3)), errors=_MISSING, check=check_bytes),
    _async("get_many", "key", lambda s, k: s.get_many([k]), check=check_values),
    _async("get_many_mixed", "key", lambda s, k: s.get_many(["seed", k]), check=check_values),
    _async("get_ranges", "key", lambda s, k: s.get_ranges([(k, (0, 2)), ("seed", None)]), check=check_values),
    _async("contains", "key", lambda s, k: s.contains(k), check=check_bool),
    _async("set", "key", lambda s, k: s.set(k, PAYLOAD), lands=("key", PAYLOAD)),
    _async("set_many", "key", lambda s, k: s.set_many({k: PAYLOAD}), lands=("key", PAYLOAD)),
    _async(
        "set_many_mixed",
        "key",
        lambda s, k: s.set_many({"fresh": PAYLOAD, k: PAYLOAD}),
        lands=("key", PAYLOAD),
    ),
    _async("delete", "key", lambda s, k: s.delete(k), errors=_MISSING, deletes=True),
    _async("delete_many", "key", lambda s, k: s.delete_many([k]), deletes=True),
    _async("delete_many_mixed", "key", lambda s, k: s.delete_many(["seed", k]), deletes=True),
    _async("rmdir", "path", lambda s, k: s.rmdir(k), deletes=True),
    _async(
        "rename_from",
        "key",
        lambda s, k: s.rename(k, DST),
        lands=("dst", PAYLOAD),
        errors=_RENAME,
        deletes=True,
    ),
    _async(
        "rename_to",
        "key",
        lambda s, k: s.rename("seed", k),
        lands=("key", hostile.SEED),
        errors=_RENAME,
        deletes=True,
    ),
    _async("listdir", "path", lambda s, k: s.listdir(k), check=check_names),
    _async("getsize", "path", lambda s, k: s.getsize(k), check=check_size),
    Op("list", "prefix", _list, check=check_keys),
]
SYNC_OPS = [
    Op("getitem", "key", lambda t, k: t[k], errors=_MISSING, check=check_bytes),
    Op("get", "key", lambda t, k: t.get(k), check=check_bytes),
    Op("contains", "key", lambda t, k: k in t, check=check_bool),
    Op("setitem", "key", lambda t, k: t.__setitem__(k, PAYLOAD), lands=("key", PAYLOAD)),
    Op("delitem", "key", lambda t, k: t.__delitem__(k), errors=_MISSING, deletes=True),
    Op("pop", "key", lambda t, k: t.pop(k, None), check=check_bytes, deletes=True),
    Op("getitems", "key", lambda t, k: t.getitems([k, "seed"], contexts={}), check=check_values),
    Op("setitems", "key", lambda t, k: t.setitems({"fresh": PAYLOAD, k: PAYLOAD}), lands=("key", PAYLOAD)),
    Op("delitems", "key", lambda t, k: t.delitems(["seed", k]), deletes=True),
    Op("rmdir", "path", lambda t, k: t.rmdir(k), deletes=True),
    Op(
        "rename_from",
        "key",
        lambda t, k: t.rename(k, DST),
        lands=("dst", PAYLOAD),
        errors=_RENAME,
        deletes=True,
    ),
    Op(
        "rename_to",
        "key",
        lambda t, k: t.rename("seed", k),
        lands=("key", hostile.SEED),
        errors=_RENAME,
        deletes=True,
    ),
    Op("listdir", "path", lambda t, k: t.listdir(k), check=check_names),
    Op("getsize", "path", lambda t, k: t.getsize(k), check=check_size),
    # the *_sync methods the twin does not reach
    Op(
        "get_sync_suffix",
        "key",
        lambda t, k: t.async_store.get_sync(k, (-4, None)),
        errors=_MISSING,
        check=check_bytes,
    ),
    Op(
        "get_ranges_sync",
        "key",
        lambda t, k: t.async_store.get_ranges_sync([(k, (1, 3))]),
        check=check_values,
    ),
    Op("list_sync", "prefix", lambda t, k: list(t.async_store.list_sync(k)), check=check_keys),
]


# -- the tests ------------------------------------------------------------------------------------


@pytest.fixture
def playground(tmp_path: pathlib.Path) -> Iterator[Playground]:
    with hostile.playground_at(str(tmp_path)) as pg:
        yield pg


@pytest.fixture(params=KINDS)
def async_subject(request: pytest.FixtureRequest, playground: Playground) -> Iterator[AsyncSubject]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        cls = AsyncTemp if request.param == "temp" else AsyncSubject
        subject = cls(playground, request.param, portal)
        yield subject
        subject.close()


@pytest.fixture(params=KINDS)
def sync_subject(request: pytest.FixtureRequest, playground: Playground) -> Iterator[SyncSubject]:
    cls = SyncTemp if request.param == "temp" else SyncSubject
    subject = cls(playground, request.param)
    yield subject
    subject.close()


def _with_explicit_keys(test: Callable[..., None]) -> Callable[..., None]:
    for key in hostile.EXPLICIT_KEYS:
        test = example(key=key)(test)
    return test


SETTINGS = hostile.hypothesis_settings(quick=20, full=300)


@SETTINGS
@given(key=hostile.hostile_keys())
@_with_explicit_keys
def test_async_hostile_keys(async_subject: AsyncSubject, key: str) -> None:
    TALLY.keys += 1
    async_subject.portal.call(hostile.judge_all, async_subject, ASYNC_OPS, key)


@SETTINGS
@given(key=hostile.hostile_keys())
@_with_explicit_keys
def test_sync_hostile_keys(sync_subject: SyncSubject, key: str) -> None:
    TALLY.keys += 1
    for op in SYNC_OPS:
        judge(sync_subject, op, key)


@pytest.mark.parametrize("key", [b"../secret", b"/etc/passwd", b"a"])
def test_bytes_keys_are_refused_before_any_file_is_named(sync_subject: SyncSubject, key: bytes) -> None:
    # Keys are str only: bytes are a TypeError, whatever they spell.
    sync_subject.reset(None)
    before = sync_subject.pg.snapshot()
    sync_subject.pg.foreign_events()
    for call in (
        lambda t: t[key],
        lambda t: t.__setitem__(key, PAYLOAD),
        lambda t: t.__delitem__(key),
        lambda t: t.listdir(key),
        lambda t: t.rmdir(key),
    ):
        with pytest.raises(TypeError):
            call(sync_subject.target)
    assert not sync_subject.pg.foreign_events()
    assert hostile.diff(before, sync_subject.pg.snapshot()) == []
    assert sync_subject.contents() == {"seed": hostile.SEED}


@pytest.mark.parametrize("kind", sorted(DIRECTORY_KINDS - {"temp"}))
def test_etc_passwd_lands_inside_the_root(playground: Playground, kind: str) -> None:
    store = TWINS[kind](playground.root)
    store["/etc/passwd"] = PAYLOAD
    assert pathlib.Path(playground.root, "etc", "passwd").read_bytes() == PAYLOAD
    assert store.listdir("/etc") == ["passwd"]
    assert store.getsize("/etc/passwd") == len(PAYLOAD)
    store.rmdir("/etc")
    assert not pathlib.Path(playground.root, "etc").exists()
    store["a"] = PAYLOAD
    store.rmdir("/")  # the root itself: emptied, kept, nothing above it touched
    assert list(store) == []
    assert os.path.isdir(playground.root)
    assert pathlib.Path(playground.parent, "secret").read_bytes().startswith(hostile.CANARY)
    store.close()


def test_the_sandbox_is_read_only() -> None:
    # If this fails the other tests here prove nothing: an escape would not be noticed.
    for place in ("/", "/etc", "/usr"):
        with pytest.raises(OSError):
            pathlib.Path(place, ".aiostore-sandbox-write-test").write_bytes(b"x")


def test_the_canaries_notice_a_read(playground: Playground) -> None:
    # The detectors work: a read of a canary is an event and moves its access time.
    before = playground.snapshot()
    playground.foreign_events()
    pathlib.Path(playground.parent, "secret").read_bytes()
    events = playground.foreign_events()
    assert any("secret" in e and "open" in e for e in events), events
    assert any("secret" in change for change in hostile.diff(before, playground.snapshot()))


class _LeakyDirectoryStore(aiostore.DirectoryStore):
    """A directory store with no key gate: what the judge must catch."""

    def check_key(self, key: object) -> str:
        return str(key).lstrip("/")

    def check_keys(self, keys: Any) -> list[str]:
        return [self.check_key(k) for k in keys]

    def check_path(self, path: object) -> str:
        return str(path or "").lstrip("/")


class _LeakySubject(SyncSubject):
    def build(self) -> None:
        self.store = _LeakyDirectoryStore(self.pg.root)
        self.target = aiostore.sync.SyncStore(self.store)


@pytest.mark.parametrize(("op", "key"), [("getitem", "../secret"), ("setitem", "../x"), ("listdir", "..")])
def test_the_judge_catches_a_store_that_escapes(playground: Playground, op: str, key: str) -> None:
    # The detectors, end to end: reads, writes and listings outside the root are escapes.
    subject = _LeakySubject(playground, "directory")
    counts = (TALLY.calls, TALLY.escapes)
    try:
        with pytest.raises(AssertionError, match="ESCAPE"):
            judge(subject, next(o for o in SYNC_OPS if o.name == op), key)
    finally:
        TALLY.calls, TALLY.escapes = counts  # a planted escape, not one of a real store's
        subject.close()
