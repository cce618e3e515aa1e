"""Hostile keys against the directory stores -- run ONLY inside tools/sandbox.sh.

tests/test_hostile_keys.py runs this module in a subprocess under the sandbox (a
private mount namespace where everything but one work directory is read-only).
Anywhere else every test here skips: a key-guard bug would otherwise let these
keys write ``/etc/passwd`` or remove ``/`` on the machine running the tests.

Each hostile key goes through every operation of DirectoryStore,
NestedDirectoryStore and TempStore, async and sync. A key with a ``.``/``..``
segment, a NUL or a reserved temporary-file name must be refused with
``ValueError`` naming it; any other key must land strictly inside the root
(``/etc/passwd`` is ``<root>/etc/passwd``). Canary files sit at every place a
traversal from the root would reach; after every operation they, and everything
else outside the root, must be unchanged, and no operation may return their bytes
or names.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import aiostore
import aiostore.sync
from aiostore.keys import normalize_key, normalize_path


def _really_sandboxed() -> bool:
    if os.environ.get("AIOSTORE_SANDBOX") != "1":
        return False
    # Belt and braces: the root file system itself must be read-only.
    return bool(os.statvfs("/").f_flag & os.ST_RDONLY)


pytestmark = [
    pytest.mark.sandboxed,
    pytest.mark.skipif(
        not _really_sandboxed(),
        reason="feeds hostile keys to file-system stores: runs only inside tools/sandbox.sh "
        "(see tests/test_hostile_keys.py)",
    ),
]

HOSTILE_KEYS: list[Any] = [
    "/etc/passwd",
    "/etc",
    "/proc/self/environ",
    "../secret",
    "../../secret",
    "/../../../secret",
    "/..",
    "..",
    ".",
    "./x",
    "x/.",
    "a/./b",
    "a/../../x",
    "a/b/../../../x",
    "..\\x",
    "\\..\\x",
    "a\\..\\..\\x",
    "x\x00y",
    "\x00",
    "../x\x00",
    "/",
    "//",
    "",
    "...",
    "..../x",
    "~/x",
    "%2e%2e/x",
    ".aiostore-tmp-x",
    "a/.aiostore-tmp-x",
    b"../secret",
    b"/etc/passwd",
]
PAYLOAD = b"HOSTILE-PAYLOAD"
CANARY = b"CANARY-"
DST = "moved/here"


def _text(key: Any) -> str:
    return key.decode("ascii") if isinstance(key, bytes) else key


def must_be_refused(key: Any) -> bool:
    """Keys the gate must refuse: NUL, a '.' or '..' segment, a temporary-file name."""
    text = _text(key)
    segments = text.replace("\\", "/").split("/")
    return (
        "\x00" in text
        or any(s in (".", "..") for s in segments)
        or any(s.startswith(".aiostore-tmp-") for s in segments)
    )


# -- the playground: canaries around the root ---------------------------------------------


class Playground:
    """``base/a/b/root`` is the store's root; canaries sit at base, base/a, base/a/b."""

    def __init__(self, base: pathlib.Path, kind: str) -> None:
        self.base = base
        parent = base / "a" / "b"
        parent.mkdir(parents=True)
        for place in [base, base / "a", parent]:
            for name in ["secret", "x", "passwd", "environ"]:
                (place / name).write_bytes(CANARY + str(place / name).encode())
        (parent / "etc").mkdir()
        (parent / "etc" / "passwd").write_bytes(CANARY + b"etc/passwd")
        self.kind = kind
        if kind == "directory":
            self.store: aiostore.DirectoryStore = aiostore.DirectoryStore(parent / "root")
        elif kind == "nested":
            self.store = aiostore.NestedDirectoryStore(parent / "root")
        else:
            self.store = aiostore.TempStore(dir=parent)
        self.root = pathlib.Path(self.store.path)
        self.sync = aiostore.sync.SyncStore(self.store)
        self.etc_passwd = _digest(pathlib.Path("/etc/passwd"))

    def reset(self) -> None:
        if self.root.exists():
            for entry in self.root.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "seed").write_bytes(b"seed")

    def outside(self) -> dict[str, tuple[str, str]]:
        """Everything below base except the root: path -> (kind, content digest)."""
        seen: dict[str, tuple[str, str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.base):
            here = pathlib.Path(dirpath)
            dirnames[:] = [d for d in dirnames if here / d != self.root]
            for name in dirnames:
                seen[str(here / name)] = ("dir", "")
            for name in filenames:
                seen[str(here / name)] = ("file", _digest(here / name))
        return seen

    def inside(self, path: str) -> pathlib.Path:
        target = self.root.joinpath(*path.split("/")) if path else self.root
        resolved = os.path.realpath(target)
        assert os.path.commonpath([resolved, os.path.realpath(self.root)]) == os.path.realpath(self.root)
        return target


def _digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def anyio_backend() -> str:
    # Where a key lands does not depend on the event loop; one is enough here.
    return "asyncio"


@pytest.fixture(params=["directory", "nested", "temp"])
def playground(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Playground]:
    pg = Playground(tmp_path, request.param)
    yield pg
    pg.sync.close()


# -- the operations -----------------------------------------------------------------------------

Outcome = tuple[str, Any]  # ("ok", result) or ("error", exception)


async def _collect(agen: Any) -> list[str]:
    return [k async for k in agen]


ASYNC_OPS: dict[str, Callable[[aiostore.Store, Any], Any]] = {
    "get": lambda s, k: s.get(k),
    "get_range": lambda s, k: s.get(k, byte_range=(-4, None)),
    "get_many": lambda s, k: s.get_many([k]),
    "contains": lambda s, k: s.contains(k),
    "set": lambda s, k: s.set(k, PAYLOAD),
    "set_many": lambda s, k: s.set_many({k: PAYLOAD}),
    "delete": lambda s, k: s.delete(k),
    "delete_many": lambda s, k: s.delete_many([k]),
    "rmdir": lambda s, k: s.rmdir(k),
    "rename_from": lambda s, k: s.rename(k, DST),
    "rename_to": lambda s, k: s.rename("seed", k),
    "listdir": lambda s, k: s.listdir(k),
    "getsize": lambda s, k: s.getsize(k),
    "list": lambda s, k: _collect(s.list(k)),
}
SYNC_OPS: dict[str, Callable[[aiostore.sync.SyncStore, Any], Any]] = {
    "get": lambda s, k: s[k],
    "get_many": lambda s, k: s.getitems([k], contexts={}),
    "contains": lambda s, k: k in s,
    "set": lambda s, k: s.__setitem__(k, PAYLOAD),
    "set_many": lambda s, k: s.setitems({k: PAYLOAD}),
    "delete": lambda s, k: s.__delitem__(k),
    "delete_many": lambda s, k: s.delitems([k]),
    "rmdir": lambda s, k: s.rmdir(k),
    "rename_from": lambda s, k: s.rename(k, DST),
    "rename_to": lambda s, k: s.rename("seed", k),
    "listdir": lambda s, k: s.listdir(k),
    "getsize": lambda s, k: s.getsize(k),
    "pop": lambda s, k: s.pop(k, None),
}


def _prepare(pg: Playground, key: Any) -> None:
    """Fresh root with 'seed' and, for an acceptable key, a value at that key."""
    pg.reset()
    if not must_be_refused(key):
        try:
            normalized = normalize_key(key)
        except (TypeError, ValueError):
            return
        target = pg.inside(normalized)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(PAYLOAD)


def _check(pg: Playground, op: str, key: Any, outcome: Outcome, before: dict[str, tuple[str, str]]) -> None:
    where = f"{pg.kind} {op}({key!r})"
    assert pg.outside() == before, f"{where} changed something outside the root"
    assert _digest(pathlib.Path("/etc/passwd")) == pg.etc_passwd, where
    status, value = outcome
    if status == "ok":
        assert CANARY not in repr(value).encode(), f"{where} returned bytes from outside the root"
    if isinstance(key, bytes):
        # Keys, paths and prefixes are str only: bytes are refused before any file is named.
        assert status == "error" and isinstance(value, TypeError), f"{where} was not refused: {outcome!r}"
        return
    if must_be_refused(key):
        if op == "list" and status == "ok":
            # list() takes a plain string prefix: no key can start with "../", so nothing
            assert value == [], f"{where} listed {value!r}"
            return
        assert status == "error" and isinstance(value, ValueError), f"{where} was not refused: {outcome!r}"
        assert repr(key) in str(value) or repr(_text(key)) in str(value), f"{where}: {value} does not name it"
        return
    if status == "error":
        # Acceptable keys may still fail as the API says (missing, root, exists) -- never by
        # touching the file system outside (EROFS would show up here).
        assert isinstance(value, (KeyError, ValueError, FileExistsError)), f"{where} failed: {value!r}"
        if isinstance(value, ValueError):  # only a key naming the root itself
            assert normalize_path(key) == "", f"{where}: {value}"
        return
    normalized = normalize_path(key)
    if op in ("set", "set_many") and normalized:
        assert pg.inside(normalized).read_bytes() == PAYLOAD, where
    if op == "rename_to" and normalized:
        assert pg.inside(normalized).read_bytes() == b"seed", where
    if op == "rename_from" and normalized:
        assert pg.inside(DST).read_bytes() == PAYLOAD, where
    if op in ("get", "get_range") or (op == "pop" and value is not None):
        assert value in (PAYLOAD, PAYLOAD[-4:]), where
    if op == "listdir":
        for name in value:
            assert pg.inside(normalized + "/" + name if normalized else name).exists(), where
    if op == "getsize":
        target = pg.inside(normalized)
        expected = (
            target.stat().st_size
            if target.is_file()
            else sum(c.stat().st_size for c in target.iterdir() if c.is_file())
            if target.is_dir()
            else 0
        )
        assert value == expected, where
    if op == "list":
        for listed in value:
            assert pg.inside(listed).is_file(), where


@pytest.mark.anyio
@pytest.mark.parametrize("op", sorted(ASYNC_OPS))
async def test_async_hostile_keys(playground: Playground, op: str) -> None:
    for key in HOSTILE_KEYS:
        _prepare(playground, key)
        before = playground.outside()
        try:
            outcome: Outcome = ("ok", await ASYNC_OPS[op](playground.store, key))
        except Exception as exc:
            outcome = ("error", exc)
        _check(playground, op, key, outcome, before)


@pytest.mark.parametrize("op", sorted(SYNC_OPS))
def test_sync_hostile_keys(playground: Playground, op: str) -> None:
    for key in HOSTILE_KEYS:
        _prepare(playground, key)
        before = playground.outside()
        try:
            outcome: Outcome = ("ok", SYNC_OPS[op](playground.sync, key))
        except Exception as exc:
            outcome = ("error", exc)
        _check(playground, op, key, outcome, before)


def test_etc_passwd_lands_inside_the_root(playground: Playground) -> None:
    playground.reset()
    playground.sync["/etc/passwd"] = PAYLOAD
    assert (playground.root / "etc" / "passwd").read_bytes() == PAYLOAD
    assert playground.sync.listdir("/etc") == ["passwd"]
    assert playground.sync.getsize("/etc/passwd") == len(PAYLOAD)
    playground.sync.rmdir("/etc")
    assert not (playground.root / "etc").exists()
    playground.sync.rmdir("/")  # the root itself: emptied, nothing above it touched
    assert list(playground.sync) == []
    assert (playground.root.parent / "secret").read_bytes().startswith(CANARY)


def test_the_sandbox_is_read_only() -> None:
    # If this fails the other tests here prove nothing: an escape would not be noticed.
    with pytest.raises(OSError):
        pathlib.Path("/aiostore-sandbox-write-test").write_bytes(b"x")
    with pytest.raises(OSError):
        pathlib.Path("/etc/aiostore-sandbox-write-test").write_bytes(b"x")
