"""The hostile-key engine shared by the sandboxed bodies (core stores and zarr 3).

What it does for one call ``op(store, key)``:

1. resets the store to ``{"seed": SEED}`` -- plus, for a key that could be
   legitimate, the payload at that key, so that reads, deletes and renames of it
   have something to act on;
2. holds a snapshot (type, inode, size, times) of everything in the playground
   around the store but the store's own directory: canary files beside the root
   and at every place a ``../`` walk from it reaches;
3. runs the call, with an inotify watch on each playground directory and on every
   directory above it up to the sandbox's work directory: any open, read, write,
   creation, removal or rename there, of anything but the store's own directory,
   is an *escape* -- and so is a changed snapshot (canary files have an access
   time older than their change, which a read updates) or a canary's bytes in a
   result;
4. judges the outcome. A key with a NUL, a ``.``/``..`` segment (``/`` and ``\\``
   both separate) or, for the directory stores, a reserved temporary-file name
   must be *refused*: a :class:`ValueError` whose message holds the key (or its
   repr), with the store's contents unchanged. Any other key may be refused the
   same way, may fail as the API says (a missing key, an existing rename target,
   a Zip file's missing deletes), or may succeed -- and then what it wrote is
   readable under the key's normalized name, and every key the store lists is a
   plain one (no empty, ``.`` or ``..`` segment, no NUL).

The playground::

    base/                 canaries: x, secret, seed, passwd, C:, etc/passwd
    base/p1/              canaries
    base/p1/p2/           canaries
    base/p1/p2/p3/        canaries; the store's root is base/p1/p2/p3/root
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import shutil
import stat
import struct
from collections.abc import Callable, Iterator
from typing import Any

import obstore.store
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sandbox_probe import probe

import aiostore

PAYLOAD = b"HOSTILE-PAYLOAD"
SEED = b"seed-value"
CANARY = b"CANARY-"
CANARY_NAMES = ("x", "secret", "seed", "passwd", "C:", "..x")
DST = "moved/here"
TEMP_PREFIX = ".aiostore-tmp-"


# -- may the bodies run here? ----------------------------------------------------------------


def sandbox_problem() -> str | None:
    """None if hostile keys may be fed to file stores here, else why not.

    Two conditions: the runner (tests/sandboxed/sandbox_runner.py) started this
    process on purpose (``AIOSTORE_SANDBOX=1``), and :mod:`sandbox_probe` finds
    everything outside the work directory read-only -- probed, never assumed, so
    a read-only container counts as a sandbox and a writable root never does.
    """
    if os.environ.get("AIOSTORE_SANDBOX") != "1":
        return "AIOSTORE_SANDBOX is not 1: not started by the sandbox runner"
    verdict = probe()
    return None if verdict.sandboxed else str(verdict)


def sandbox_marks() -> list[pytest.MarkDecorator]:
    problem = sandbox_problem()
    return [
        pytest.mark.sandboxed,
        pytest.mark.skipif(
            problem is not None,
            reason=f"feeds hostile keys to file-system stores, so runs only where everything "
            f"outside one work directory is read-only ({problem}); "
            "tests/sandboxed/sandbox_runner.py runs it there",
        ),
    ]


def examples(quick: int, full: int) -> int:
    """Hypothesis examples for this run's scale (``AIOSTORE_STRESS=full``: the stress session)."""
    return full if os.environ.get("AIOSTORE_STRESS", "").lower() == "full" else quick


def hypothesis_settings(quick: int, full: int) -> settings:
    return settings(
        max_examples=examples(quick, full),
        deadline=None,
        database=None,  # the repository is read-only here, and the work directory is thrown away
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the store is reset before every call
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- the stores -------------------------------------------------------------------------------

#: kind -> the async store over a root directory (made, empty, before each build).
STORES: dict[str, Callable[[str], Any]] = {
    "memory": lambda root: aiostore.MemoryStore(),
    "mapping": lambda root: aiostore.MappingStore({}),
    "directory": lambda root: aiostore.DirectoryStore(root),
    "nested": lambda root: aiostore.NestedDirectoryStore(root),
    "zip": lambda root: aiostore.ZipStore(os.path.join(root, "store.zip"), mode="a"),
    "dbm": lambda root: aiostore.DBMStore(os.path.join(root, "store.db")),
    "lmdb": lambda root: aiostore.LMDBStore(os.path.join(root, "store.lmdb")),
    "cache": lambda root: aiostore.LRUStoreCache(aiostore.DirectoryStore(root), max_size=1 << 16),
    "objectstore": lambda root: aiostore.ObjectStore(obstore.store.LocalStore(prefix=root)),
}
#: ... and TempStore, which makes its own root (built once: closing it removes it).
KINDS = [*STORES, "temp"]
#: The stores whose keys are files: they refuse their temporary files' names too.
DIRECTORY_KINDS = {"directory", "nested", "temp", "cache"}


# -- the counts the runner reads ------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    keys: int = 0  # generated (or listed) keys, each fed to every operation of a store
    calls: int = 0  # operations run with a hostile key
    refusals: int = 0  # ... that raised ValueError naming the key
    escapes: int = 0  # ... that touched, read or returned something outside the store

    def line(self) -> str:
        return f"HOSTILE keys={self.keys} calls={self.calls} refusals={self.refusals} escapes={self.escapes}"


TALLY = Tally()


# -- keys --------------------------------------------------------------------------------------

# fmt: off
SEGMENTS = [
    # traversal, and spellings of it that must stay plain names
    "..", ".", "", "...", "....", "..x", "x..", ". .", "%2e%2e", "%2E%2E%2F", "..%2f", "%00",
    "\uff0e\uff0e", "\uff0e", "\u2024\u2024", "..\u200b", "\u200b..", "\u0338..",
    # separators that are not "/" or "\\"
    "\uff0f", "\u2215", "\u2044", "\uff3c", "a\\..\\b",
    # names next to the root (canaries) and absolute targets
    "x", "secret", "seed", "passwd", "etc", "root", "p3", "~", "~root", "$HOME", "proc", "self",
    # drive letters and Windows names
    "C:", "c:", "Z:", "C:\\x", "c:/x", "C:..", "\\\\?\\C:", "\\\\srv\\share", "CON", "nul", "aux.txt",
    "a:b", "file:", "s3:",
    # NUL and control characters
    "\x00", "a\x00b", "..\x00", "\x00..", "\t", "\n", "\r", "\x7f", "\x01", " ", "a ", " a",
    # unicode: RTL override, combining marks, emoji, compatibility forms, lone surrogate
    "\u202e", "\u202egnp.exe", "e\u0301", "\u0301", "\U0001f600",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\ufb00", "\u00c5", "\u212b", "\u0130", "\u00a0",
    "\ufeff", "\udc80",
    # reserved temporary-file names of the directory stores
    ".aiostore-tmp-x", ".aiostore-tmp-", ".aiostore-tmp-0-0",
    # what else a store might treat specially
    "#1", "a#1", "?", "*", "<>", "|", '"', "'", ".zarray", ".zgroup", "zarr.json", "c", "0", "0.0",
]
PREFIXES = [
    "", "", "", "/", "//", "\\", "\\\\", "C:", "C:\\", "c:/", "\\\\?\\C:\\", "//?/", "~/", "./", "../",
    "/../../", "file://", "s3://", "\x00",
]
SUFFIXES = ["", "", "", "/", "//", "\\", "/.", "/..", "\x00"]
SEPARATORS = ["/", "/", "/", "\\", "//", "/\\", "\\/"]
# fmt: on


def _text(max_size: int) -> st.SearchStrategy[str]:
    """Any text, from code points: ``st.text()`` builds a table of every code point
    first, several seconds in a sandbox whose fresh home holds no cache of it."""
    point = st.one_of(st.integers(0, 0x7F), st.integers(0x80, 0xD7FF), st.integers(0xE000, 0x10FFFF))
    return st.lists(point.map(chr), max_size=max_size).map("".join)


def _long_segment() -> st.SearchStrategy[str]:
    # More than 255 bytes (NAME_MAX) in UTF-8 for most draws: "é" is 2 bytes, "😀" 4.
    return st.builds(
        lambda ch, n: ch * n, st.sampled_from(["a", "\u00e9", "\U0001f600", "."]), st.integers(64, 300)
    )


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SEGMENTS),
        _text(12),
        st.lists(st.sampled_from(".\\/:x\x00~ "), max_size=8).map("".join),
        _long_segment(),
    )


@st.composite
def _joined(draw: st.DrawFn) -> str:
    segments = draw(st.lists(_segment(), min_size=1, max_size=6))
    key = draw(st.sampled_from(PREFIXES)) + segments[0]
    for segment in segments[1:]:
        key += draw(st.sampled_from(SEPARATORS)) + segment
    return key + draw(st.sampled_from(SUFFIXES))


def _very_long_path() -> st.SearchStrategy[str]:
    # Past PATH_MAX (4096 bytes) in total, each segment within NAME_MAX or not.
    return st.builds(
        lambda seg, n: "/".join([seg] * n),
        st.sampled_from(["a" * 200, "b" * 255, "\u00e9" * 100]),
        st.integers(17, 40),
    )


def hostile_keys() -> st.SearchStrategy[str]:
    return st.one_of(_joined(), _joined(), _text(40), _very_long_path())


#: Always tried, whatever hypothesis draws (``@example``).
# fmt: off
EXPLICIT_KEYS = [
    "/etc/passwd", "/proc/self/environ", "../secret", "../../secret", "/../../../secret", "/..", "..", ".",
    "./x", "x/.", "a/./b", "a/../../x", "..\\x", "\\..\\x", "a\\..\\..\\x", "x\x00y", "\x00", "/", "//", "",
    "...", "..../x", "~/x", "%2e%2e/x", "\uff0e\uff0e/x", "C:\\..\\x", "c:/x", "C:", ".aiostore-tmp-x",
    "a/.aiostore-tmp-x", "a" * 256, "x/" + "\u00e9" * 128, "/".join(["b" * 255] * 17), "\u202e/\U0001f600",
    "e\u0301/\u00c5", "\udc80", "a\x05b", "b" * 600,
]
# fmt: on


def plain(key: str) -> bool:
    """A key a store may hold: non-empty segments, none '.' or '..', no NUL, no backslash."""
    return (
        bool(key)
        and "\x00" not in key
        and "\\" not in key
        and all(s not in ("", ".", "..") for s in key.split("/"))
    )


def normalized(key: str) -> str:
    """The key's name by aiostore's documented rule (independent of its code)."""
    return "/".join(s for s in key.replace("\\", "/").split("/") if s)


def must_refuse(key: str, *, temp_names: bool) -> bool:
    """Keys every store must refuse with ValueError: NUL, '.'/'..' segments, temp names."""
    segments = key.replace("\\", "/").split("/")
    return (
        "\x00" in key
        or any(s in (".", "..") for s in segments)
        or (temp_names and any(s.startswith(TEMP_PREFIX) for s in segments))
    )


def names_key(exc: BaseException, key: str) -> bool:
    """The error's message names the key: as given or in its normalized spelling
    (backslashes as "/", empty segments dropped: ``'a/../b'`` for ``'a\\..\\b'``),
    also with its outer slashes dropped or a "/" appended (zarr's directory calls
    do both), as its repr, or plainly if it is longer than a few characters (a
    plain "a" is in any message)."""
    text = str(exc)
    spelled = "/".join(s for s in key.replace("\\", "/").split("/") if s)
    spellings = {key, key.strip("/"), key.rstrip("/"), key + "/", spelled, spelled + "/"}
    return repr(key) in text or any(k and (repr(k) in text or (len(k) > 3 and k in text)) for k in spellings)


# -- watching the file system outside the store --------------------------------------------------

_IN_ACCESS, _IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE, _IN_OPEN = 0x1, 0x2, 0x4, 0x8, 0x20
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW, _IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
_WATCH_MASK = (
    _IN_ACCESS
    | _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_OPEN
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")


class Watcher:
    """inotify on a set of directories: every event on them, or on their entries."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = fd
        self.dirs: dict[int, str] = {}

    def watch(self, path: str) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), _WATCH_MASK)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {path}")
        self.dirs[wd] = path

    def events(self) -> list[tuple[str, str, int]]:
        """(directory, entry name or "", mask) of every event since the last call."""
        out: list[tuple[str, str, int]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\x00")
                offset += length
                if mask & _IN_IGNORED:
                    continue
                out.append((self.dirs.get(wd, "?"), os.fsdecode(name), mask))

    def close(self) -> None:
        os.close(self.fd)


def _describe(mask: int) -> str:
    names = {
        _IN_ACCESS: "read",
        _IN_MODIFY: "write",
        _IN_ATTRIB: "attrib",
        _IN_CLOSE_WRITE: "close-write",
        _IN_OPEN: "open",
        _IN_MOVED_FROM: "moved-from",
        _IN_MOVED_TO: "moved-to",
        _IN_CREATE: "create",
        _IN_DELETE: "delete",
        _IN_DELETE_SELF: "delete-self",
        _IN_MOVE_SELF: "move-self",
        _IN_Q_OVERFLOW: "queue-overflow",
    }
    return "|".join(v for k, v in names.items() if mask & k) or hex(mask)


class Playground:
    """Canary directories around a store root, and the means to see them touched."""

    def __init__(self, base: str) -> None:
        self.base = os.path.realpath(base)
        self.work = probe().work or self.base
        if not (self.base + "/").startswith(self.work.rstrip("/") + "/"):
            pytest.fail(f"the playground {self.base} is not in the sandbox's work directory {self.work}")
        self.levels = [self.base]
        for name in ("p1", "p2", "p3"):
            self.levels.append(os.path.join(self.levels[-1], name))
        self.parent = self.levels[-1]  # the root's parent
        for level in self.levels:
            os.makedirs(level, exist_ok=True)
            for name in CANARY_NAMES:
                self._canary(os.path.join(level, name))
            os.makedirs(os.path.join(level, "etc"), exist_ok=True)
            self._canary(os.path.join(level, "etc", "passwd"))
        self.root = os.path.join(self.parent, "root")  # a store may move it (TempStore)
        self.ancestors = []
        above = os.path.dirname(self.base)
        while (above + "/").startswith(self.work.rstrip("/") + "/"):
            self.ancestors.append(above)
            if above == self.work:
                break
            above = os.path.dirname(above)
        self._baseline: dict[str, tuple[int, ...]] | None = None
        self.watcher = Watcher()
        for directory in self.levels + [os.path.join(level, "etc") for level in self.levels] + self.ancestors:
            self.watcher.watch(directory)

    @staticmethod
    def _canary(path: str) -> None:
        with open(path, "wb") as f:
            f.write(CANARY + path.encode())
        # An access time before the modification time: any read updates it (relatime).
        st_ = os.stat(path)
        os.utime(path, ns=(0, st_.st_mtime_ns))

    def close(self) -> None:
        self.watcher.close()

    def wipe_root(self) -> None:
        """Empty the root (made if missing): the store starts from nothing."""
        os.makedirs(self.root, exist_ok=True)
        with os.scandir(self.root) as entries:
            for entry in list(entries):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)

    def snapshot(self) -> dict[str, tuple[int, ...]]:
        """Everything below base but the root. (Above base, up to the work directory,
        the inotify watches see any entry made, changed or removed.)"""
        seen: dict[str, tuple[int, ...]] = {}
        stack = [self.base]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.path == self.root:
                        continue
                    s = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(s.st_mode):
                        stack.append(entry.path)
                        atime = 0  # moves when this snapshot lists the directory
                    else:
                        atime = s.st_atime_ns  # never read here: moves only if a store reads it
                    seen[entry.path] = (
                        s.st_mode,
                        s.st_ino,
                        s.st_nlink,
                        s.st_size,
                        s.st_mtime_ns,
                        s.st_ctime_ns,
                        atime,
                    )
        return seen

    def baseline(self) -> dict[str, tuple[int, ...]]:
        """The snapshot every call must leave as it is: taken once, after the first reset
        (which may make the root). A call that changes it fails, so it stays true."""
        if self._baseline is None:
            self._baseline = self.snapshot()
        return self._baseline

    def drain(self) -> None:
        """Forget the events so far (of a reset, or of a snapshot's own listing)."""
        while True:
            try:
                os.read(self.watcher.fd, 1 << 16)
            except BlockingIOError:
                return

    def foreign_events(self) -> list[str]:
        """Events since the last call that are not about the root's own entry."""
        root_name = os.path.basename(self.root)
        out = []
        for directory, name, mask in self.watcher.events():
            if directory == self.parent and name == root_name and not mask & _IN_Q_OVERFLOW:
                continue
            out.append(f"{_describe(mask)} {os.path.join(directory, name) if name else directory}")
        return out


def diff(before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]]) -> list[str]:
    changes = [f"created {p}" for p in after.keys() - before.keys()]
    changes += [f"removed {p}" for p in before.keys() - after.keys()]
    changes += [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(changes)


# -- one call, judged ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Op:
    """An operation that takes a hostile string.

    ``arg``: "key" (names a value: must normalize to something), "path" (a
    directory; empty is the root) or "prefix" (a plain listing prefix).
    ``lands``: on success, the key that must then hold what: ("key", PAYLOAD)
    for a write, ("key", SEED) for a rename onto the key, ("dst", PAYLOAD) for a
    rename of it. ``errors``: the API's own errors for an acceptable key.
    ``check``: judges a successful result (raises AssertionError). ``deletes``:
    the operation removes or moves keys, which a store without
    ``supports_deletes`` (a Zip file) refuses with NotImplementedError.
    """

    name: str
    arg: str
    call: Callable[[Any, str], Any]
    lands: tuple[str, bytes] | None = None
    errors: tuple[type[BaseException], ...] = ()
    check: Callable[[Any, str], None] | None = None
    deletes: bool = False  # deletes or moves: NotImplementedError where the store cannot


def write_conflict(exc: BaseException) -> bool:
    """A write refused because a key and a key below it cannot coexist (documented)."""
    return isinstance(exc, KeyError) and (
        type(exc).__name__ == "KeyConflictError" or "cannot store" in str(exc)
    )


class Subject:
    """One store (one kind, async or sync side) in a playground. Subclasses build it."""

    #: Directory stores refuse their temporary files' names.
    temp_names = False
    #: Built again for every call (else built once, and its root emptied).
    rebuilt = True

    def __init__(self, playground: Playground) -> None:
        self.pg = playground
        self.store: Any = None  # the async store, whatever side is tested
        self.target: Any = None  # what the operations are called on
        self.expected: dict[str, bytes] = {}

    # -- to write per kind ---
    def build(self) -> None:
        """Set :attr:`store` and :attr:`target` (a store over :attr:`Playground.root`)."""
        raise NotImplementedError

    def close(self) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close_sync()
            self.store = None

    async def run(self, op: Op, key: str) -> Any:
        """Call ``op`` (an async store's operations are coroutine functions: awaited)."""
        return op.call(self.target, key)

    # -- shared ---
    def reset(self, preload: str | None) -> None:
        if self.rebuilt or self.store is None:
            self.close()
            self.pg.wipe_root()
            self.build()
        else:
            self.pg.wipe_root()
        self.store.set_sync("seed", SEED)
        #: What the store holds now (what a refused call must leave).
        self.expected = {"seed": SEED}
        if preload is not None:
            try:
                self.store.set_sync(preload, PAYLOAD)
            except Exception:  # a store may refuse it; the call then finds nothing
                pass
            else:
                self.expected[preload] = PAYLOAD

    def contents(self) -> dict[str, bytes]:
        """Every key the store lists, with its value."""
        keys = list(self.store.list_sync())
        values = self.store.get_many_sync(keys)
        return {k: bytes(values[k]) for k in keys if k in values} | {
            k: b"<missing>" for k in keys if k not in values
        }

    def holds(self, key: str) -> bytes | None:
        try:
            return bytes(self.store.get_sync(key))
        except KeyError:
            return None


@dataclasses.dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: BaseException | None = None

    def __repr__(self) -> str:
        return f"ok {self.value!r:.300}" if self.ok else f"error {self.error!r:.300}"


def judge(subject: Subject, op: Op, key: str) -> None:
    """Run ``op`` with ``key`` on a freshly reset store and check everything above."""
    _drive(judge_async(subject, op, key))


async def judge_all(subject: Subject, ops: list[Op], key: str) -> None:
    """:func:`judge_async` of every operation: on an event loop for an async store (one
    thread hop per key, not per call: hops are slow on a busy machine)."""
    for op in ops:
        await judge_async(subject, op, key)


def _drive(coro: Any) -> Any:
    """Run a coroutine that awaits nothing asynchronous (a sync store's calls)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a sync store's call awaited something")


async def judge_async(subject: Subject, op: Op, key: str) -> None:
    """:func:`judge`, for a call that may be awaited."""
    nk = normalized(key)
    refuse = must_refuse(key, temp_names=subject.temp_names) or (op.arg == "key" and not nk)
    if op.arg == "prefix":
        refuse = "\x00" in key  # "../" is a prefix no key has: listing it is fine
    # The key is preloaded (a call must not read or change it wrongly), unless it is the
    # seed itself, whose value the rename checks expect to find.
    subject.reset(None if refuse or not nk or not plain(nk) or nk == "seed" else nk)
    before_store = subject.expected
    before = subject.pg.baseline()
    subject.pg.drain()  # the events of the reset and of the snapshot
    try:
        outcome = Outcome(True, value=await subject.run(op, key))
    except Exception as exc:
        outcome = Outcome(False, error=exc)
    events = subject.pg.foreign_events()
    changes = diff(before, subject.pg.snapshot())
    where = f"{type(subject).__name__}.{op.name}({key!r}) -> {outcome!r}"
    TALLY.calls += 1

    # 1. Nothing outside the store: touched, read, or returned.
    leaked = outcome.ok and CANARY in repr(outcome.value).encode()
    if events or changes or leaked:
        TALLY.escapes += 1
        raise AssertionError(
            f"ESCAPE: {where}\n  file-system events outside the store: {events}\n"
            f"  changes outside the store: {changes}\n  returned a canary's bytes: {leaked}"
        )
    after_store = subject.contents()
    bad = [k for k in after_store if not plain(k)]
    assert not bad, f"{where}: the store now holds keys that are not plain: {bad!r}"

    # 2. A refusal is a ValueError naming the key, and changes nothing.
    if not outcome.ok and isinstance(outcome.error, ValueError) and names_key(outcome.error, key):
        TALLY.refusals += 1
        assert after_store == before_store, f"{where}: refused, but the store changed: {after_store!r}"
        return
    if refuse:
        if op.arg == "prefix" and outcome.ok:
            return
        raise AssertionError(f"{where}: must be refused with a ValueError naming the key")

    # 3. An acceptable key: the API's own errors, or a confined success.
    if not outcome.ok:
        exc = outcome.error
        assert exc is not None
        if isinstance(exc, op.errors) or (op.lands is not None and write_conflict(exc)):
            return
        if op.deletes and isinstance(exc, NotImplementedError) and not subject.store.supports_deletes:
            return
        raise AssertionError(f"{where}: neither a success nor a ValueError naming the key") from exc
    if op.lands is not None:
        at, expected = op.lands
        landed_at = DST if at == "dst" else nk
        assert subject.holds(landed_at) == expected, (
            f"{where}: {landed_at!r} does not hold {expected!r}; the store holds {after_store!r}"
        )
    if op.check is not None:
        op.check(outcome.value, where)


def check_bytes(value: Any, where: str) -> None:
    assert value is None or bytes(value) in (PAYLOAD, SEED) or bytes(value) in _SLICES, where


_SLICES = {PAYLOAD[-4:], PAYLOAD[1:3], PAYLOAD[:2], SEED[-4:], SEED[1:3], SEED[:2]}


def check_values(value: Any, where: str) -> None:
    values = value.values() if isinstance(value, dict) else value
    for v in values:
        check_bytes(v, where)


def check_bool(value: Any, where: str) -> None:
    assert isinstance(value, bool), where


def check_names(value: Any, where: str) -> None:
    names = list(value)
    assert all(isinstance(n, str) and n and "\x00" not in n and n not in (".", "..") for n in names), where
    assert all(plain(n) for n in names), where


def check_size(value: Any, where: str) -> None:
    assert isinstance(value, int) and 0 <= value <= len(PAYLOAD) + len(SEED), where


def check_keys(value: Any, where: str) -> None:
    assert all(isinstance(k, str) and plain(k) for k in value), where


@contextlib.contextmanager
def playground_at(base: str) -> Iterator[Playground]:
    pg = Playground(base)
    try:
        yield pg
    finally:
        pg.close()
