"""Crash atomicity: writers killed with SIGKILL at random moments lose nothing.

A writer process (``crashchild.py``, forked by a fork server so that a kill
costs milliseconds, not an interpreter start) opens a store and writes
generation after generation with ``set_many`` (sync and async, alternately),
each value carrying its key, generation and a digest. The test kills it with
SIGKILL after a random delay -- from before its store is open to deep into its
writes -- many times over the same store, and after every kill reopens the
store and checks every key:

* it holds a whole value of its key (never torn, partial or another key's);
* of the last generation that wrote it and *completed* (``set_many`` had
  returned), or of the one in flight -- old or new, nothing else; absent only
  if no completed generation wrote it; never older than a previous check saw
  (a lost write);
* the store opens, lists no temporary file and no stray key, and ``listdir``
  names exactly the children its keys imply.

Directory stores may keep a killed writer's temporary files on disk; they are
never keys, and :meth:`DirectoryStore.remove_temp_files` on a later open
removes them. A :class:`ZipStore` killed before ``close()`` has no central
directory: reopening it raises :class:`aiostore.errors.BackendError` naming
the path and leaves the file as it was.

``AIOSTORE_STRESS=full`` kills hundreds of writers per store;
``AIOSTORE_STRESS_SEED`` replays a failing run (every failure prints its seed).
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from crashchild import Torn, decode, open_store, plan, universe
from stress_tally import TALLY, rounds

from aiostore.errors import BackendError
from aiostore.stores._fsops import TEMP_FILE_GRACE
from aiostore.stores.directory import TEMP_PREFIX

pytestmark = pytest.mark.skipif(
    os.name != "posix" or not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"),
    reason="SIGKILL and a fork server need POSIX",
)

CHILD = Path(__file__).with_name("crashchild.py")


def _dbm_kind(name: str) -> object:
    try:
        importlib.import_module(name)
    except ImportError:
        return pytest.param(name, marks=pytest.mark.skip(reason=f"{name} is not in this Python"))
    return name


#: dbm.dumb is left out: it cannot give old-or-new after SIGKILL, by its design
#: (DBMStore's docs say so; tests/test_dbm.py keeps a deterministic strict xfail).
KILLABLE = ["directory", "nested", "lmdb", _dbm_kind("dbm.gnu"), _dbm_kind("dbm.ndbm")]
DIRECTORY_KINDS = ["directory", "nested"]


def new_seed() -> int:
    """This test's seed (``AIOSTORE_STRESS_SEED`` to replay one), printed: pytest shows it on failure."""
    env = os.environ.get("AIOSTORE_STRESS_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(2**32)
    print(f"seed {seed} (replay with AIOSTORE_STRESS_SEED={seed})")
    return seed


# -- the fork server -------------------------------------------------------------
class ForkServer:
    """``crashchild.py serve`` in a subprocess: forks writers, reaps them."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            bufsize=1,
            cwd=str(CHILD.parent),
        )
        ready = self._answer()
        assert "ready" in ready, ready

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died: {self.log.read_text()}")
        return json.loads(line)

    def request(self, **req: object) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def spawn(self, **req: object) -> int:
        return int(self.request(cmd="run", **req)["pid"])

    def reap(self, pid: int) -> dict:
        return self.request(cmd="reap", pid=pid)

    def close(self) -> None:
        try:
            self.request_quit()
        finally:
            self._log_file.close()

    def request_quit(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def forkserver(tmp_path_factory: pytest.TempPathFactory):
    server = ForkServer(tmp_path_factory.mktemp("forkserver") / "stderr.log")
    yield server
    server.close()


_PROGRESS_FILES = itertools.count()  # each writer's own progress file, whichever Writer starts it


class Writer:
    """Kill rounds against one store: the writers' requests and what they did."""

    def __init__(self, server: ForkServer, kind: str, path: Path, work: Path, seed: int, **req: object):
        self.server, self.kind, self.path, self.work, self.seed = server, kind, path, work, seed
        self.req = req
        self.next_gen = 0
        self.rounds = 0

    def run(
        self, delay: float, api: str, wait_for_gens: int = 0, until: Callable[[], bool] | None = None
    ) -> tuple[bool, int, int]:
        """One writer, killed ``delay`` seconds after its fork, or after it has
        completed ``wait_for_gens`` generations, or as soon as ``until()`` is true.
        Returns (store opened, first generation, last completed generation)."""
        progress = self.work / f"progress-{next(_PROGRESS_FILES)}"
        self.rounds += 1
        first = self.next_gen
        pid = self.server.spawn(
            kind=self.kind,
            path=str(self.path),
            progress=str(progress),
            seed=self.seed,
            first_gen=first,
            api=api,
            **self.req,
        )
        try:
            if wait_for_gens:
                deadline = time.monotonic() + 20
                while _completed(progress, first) - first + 1 < wait_for_gens:
                    assert time.monotonic() < deadline, f"writer made no progress (seed {self.seed})"
                    time.sleep(0.001)
            if until is not None:
                deadline = time.monotonic() + 5
                while not until() and time.monotonic() < deadline:
                    pass
            time.sleep(delay)
        finally:
            os.kill(pid, signal.SIGKILL)
            status = self.server.reap(pid)
        err = Path(f"{progress}.err")
        if status["signal"] != signal.SIGKILL:
            detail = err.read_text() if err.exists() else "(no traceback)"
            pytest.fail(
                f"writer of {self.kind} ended with {status}, not SIGKILL (seed {self.seed}):\n{detail}"
            )
        lines = progress.read_text().split() if progress.exists() else []
        opened = "open" in lines
        completed = _completed(progress, first)
        # The next writer starts past the generation that may have been in flight.
        self.next_gen = completed + 2
        return opened, first, completed


def _completed(progress: Path, first: int) -> int:
    try:
        gens = [int(x) for x in progress.read_text().split() if x != "open"]
    except FileNotFoundError:
        gens = []
    return gens[-1] if gens else first - 1


# -- what the store must hold ----------------------------------------------------
class Model:
    """Which generation each key may hold after a kill, and what checks saw before."""

    def __init__(self, seed: int, keys: list[str]) -> None:
        self.seed, self.keys = seed, keys
        self.seen: dict[str, int | None] = dict.fromkeys(keys)
        self.torn: dict[str, bytes] = {}  # each torn value is reported once, not at every check after
        self._plans: dict[int, frozenset[str]] = {}

    def writes(self, gen: int) -> frozenset[str]:
        if gen not in self._plans:
            self._plans[gen] = frozenset(plan(self.seed, gen, self.keys))
        return self._plans[gen]

    def check(self, values: dict[str, bytes], first: int, completed: int) -> tuple[list[str], list[str]]:
        """Compare what the store holds with what it may hold; returns (torn, lost) descriptions."""
        torn: list[str] = []
        lost: list[str] = []
        in_flight = self.writes(completed + 1)
        for key in self.keys:
            old = self.seen[key]
            for gen in range(first, completed + 1):
                if key in self.writes(gen):
                    old = gen
            new = completed + 1 if key in in_flight else None
            raw = values.get(key)
            if raw is None:
                if old is not None:
                    lost.append(f"{key!r} missing, generation {old} had completed")
                self.seen[key] = None
                continue
            try:
                got_key, gen = decode(raw)
            except Torn as exc:
                if self.torn.get(key) != raw:
                    torn.append(f"{key!r}: {exc}")
                self.torn[key] = raw
                continue
            if got_key != key:
                torn.append(f"{key!r} holds the value of {got_key!r} (generation {gen})")
            elif gen == old or gen == new:
                pass
            elif old is not None and gen < old:
                lost.append(f"{key!r} holds generation {gen}, generation {old} had completed")
            else:
                torn.append(f"{key!r} holds generation {gen}; may hold {old} or {new}")
            self.seen[key] = gen
        return torn, lost


def temp_files_on_disk(root: Path) -> list[str]:
    return sorted(
        os.path.join(d, name)
        for d, _, files in os.walk(root)
        for name in files
        if name.startswith(TEMP_PREFIX)
    )


def in_subdirectory(root: Path) -> bool:
    """Whether a temp file is being written below ``root``'s top level."""
    return any(os.path.dirname(t) != str(root) for t in temp_files_on_disk(root))


def dir_prefixes(keys: list[str]) -> list[str]:
    out = {""}
    for key in keys:
        parts = key.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(out)


#: What :func:`check_store` finds: torn or misplaced values, lost writes, a store
#: that does not open, temp files or strays listed as keys, and ``listdir``
#: naming a child no key implies.
PROBLEMS = ("torn", "lost", "open", "listing", "phantom")


def check_store(kind: str, path: Path, model: Model, first: int, completed: int) -> dict[str, list[str]]:
    """Reopen the store after a kill and check it; returns the problems by kind."""
    problems: dict[str, list[str]] = {name: [] for name in PROBLEMS}
    try:
        store = open_store(kind, str(path))
    except Exception as exc:
        problems["open"].append(f"reopening failed: {exc!r}")
        return problems
    try:
        listed = sorted(store.list_sync())
        temps = [k for k in listed if any(s.startswith(TEMP_PREFIX) for s in k.split("/"))]
        if temps:
            problems["listing"].append(f"temporary files listed as keys: {temps}")
        strays = sorted(set(listed) - set(model.keys) - set(temps))
        if strays:
            problems["torn"].append(f"keys nobody wrote are listed: {strays}")
        values = store.get_many_sync(model.keys)
        if set(values) != set(listed) - set(temps) - set(strays):
            problems["listing"].append(f"list() {listed} disagrees with the readable keys {sorted(values)}")
        for prefix in dir_prefixes(model.keys):
            below = f"{prefix}/" if prefix else ""
            implied = sorted({k[len(below) :].split("/")[0] for k in listed if k.startswith(below)})
            actual = store.listdir_sync(prefix)
            if actual != implied:
                problems["phantom"].append(f"listdir({prefix!r}) is {actual}, its keys imply {implied}")
        torn, lost = model.check(values, first, completed)
        problems["torn"] += torn
        problems["lost"] += lost
    finally:
        store.close_sync()
    return problems


def kill_delay(rng: random.Random, longest: float) -> float:
    """A quarter of the kills land around the store's open, the rest anywhere."""
    return rng.uniform(0, 0.003) if rng.random() < 0.25 else rng.uniform(0, longest)


def report(kind: str, seed: int, failures: list[str]) -> str:
    shown = "\n  ".join(failures[:20])
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    return f"{kind}: {len(failures)} problem(s) (replay with AIOSTORE_STRESS_SEED={seed}):\n  {shown}{more}"


# -- the tests ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KILLABLE)
def test_killed_writer_leaves_every_key_old_or_new(kind: str, forkserver: ForkServer, tmp_path: Path) -> None:
    seed = new_seed()
    rng = random.Random(seed)
    nkeys = 24
    path = tmp_path / ("store.db" if kind.startswith("dbm.") else "store")
    work = tmp_path / "work"
    work.mkdir()
    # The writer also flushes after every 5th generation, as a program does now and then.
    writer = Writer(forkserver, kind, path, work, seed, nkeys=nkeys, max_size=16384, flush_every=5)
    model = Model(seed, universe(nkeys))
    n = rounds(quick=40, full=300)
    found: dict[str, list[str]] = {name: [] for name in PROBLEMS}
    kills_before_open = 0
    for r in range(n):
        api = "sync" if r % 2 == 0 else "async"
        opened, first, completed = writer.run(kill_delay(rng, 0.05), api)
        kills_before_open += not opened
        problems = check_store(kind, path, model, first, completed)
        for name, items in problems.items():
            found[name] += [
                f"round {r} ({api}, generations {first}..{completed} completed): {p}" for p in items
            ]
    TALLY.add(kills=n, processes=n, keys_checked=n * nkeys, torn=len(found["torn"]), lost=len(found["lost"]))
    print(
        f"{kind}: {n} kills ({kills_before_open} before the store was open), "
        f"{writer.next_gen} generations; found "
        + ", ".join(f"{len(items)} {name}" for name, items in found.items())
    )
    assert not found["torn"], report(kind, seed, found["torn"])
    assert not found["lost"], report(kind, seed, found["lost"])
    assert not found["open"], report(kind, seed, found["open"])
    assert not found["listing"], report(kind, seed, found["listing"])
    assert not found["phantom"], report(kind, seed, found["phantom"])


@pytest.mark.parametrize("kind", DIRECTORY_KINDS)
def test_temp_files_of_killed_writers_are_not_keys_and_are_removed(
    kind: str, forkserver: ForkServer, tmp_path: Path
) -> None:
    # Values of up to 4 MiB, and the writer is killed the moment a temp file
    # appears (or at random): most kills land inside a write, leaving its temp file.
    seed = new_seed()
    rng = random.Random(seed)
    nkeys = 6
    path = tmp_path / "store"
    work = tmp_path / "work"
    work.mkdir()
    writer = Writer(forkserver, kind, path, work, seed, nkeys=nkeys, max_size=4 << 20)
    model = Model(seed, universe(nkeys))
    found: list[str] = []
    n = 0
    for n in range(1, rounds(quick=20, full=100) + 1):
        api = "sync" if n % 2 else "async"
        if rng.random() < 0.75:
            _, first, completed = writer.run(0, api, until=lambda: bool(temp_files_on_disk(path)))
        else:
            _, first, completed = writer.run(rng.uniform(0, 0.06), api)
        problems = check_store(kind, path, model, first, completed)
        found += [f"round {n}: {p}" for name, ps in problems.items() for p in ps if name != "phantom"]
        if temp_files_on_disk(path) and n >= rounds(quick=1, full=100):
            break
    TALLY.add(kills=n, processes=n, keys_checked=n * nkeys)
    assert not found, report(kind, seed, found)
    left = temp_files_on_disk(path)
    assert left, f"{n} kills left no temporary file to clean up (seed {seed})"

    # Files older than the open by more than the documented grace (coarse file times) are stale.
    time.sleep(TEMP_FILE_GRACE + 0.05)
    store = open_store(kind, str(path))
    assert not [k for k in store.list_sync() if TEMP_PREFIX in k]
    if kind == "directory":
        removed = store.remove_temp_files_sync()
    else:
        removed = anyio.run(store.remove_temp_files)
    assert removed == len(left), (removed, left)
    assert temp_files_on_disk(path) == []
    store.close_sync()
    problems = check_store(kind, path, model, writer.next_gen, writer.next_gen - 1)
    assert not [p for name, ps in problems.items() for p in ps if name != "phantom"], problems


@pytest.mark.parametrize("kind", DIRECTORY_KINDS)
def test_killed_first_write_leaves_no_name_listed(kind: str, forkserver: ForkServer, tmp_path: Path) -> None:
    # A writer killed inside the first write into a new directory leaves that
    # directory holding only its temp file (or nothing): no key is below it, so
    # listdir must not name it -- neither then nor after remove_temp_files.
    seed = new_seed()
    found: list[str] = []
    n = rounds(quick=3, full=20)
    for r in range(n):
        path = tmp_path / f"store{r}"
        work = tmp_path / f"work{r}"
        work.mkdir()
        writer = Writer(forkserver, kind, path, work, seed + r, nkeys=6, max_size=4 << 20)
        model = Model(seed + r, universe(6))
        _, first, completed = writer.run(0, "sync", until=lambda p=path: in_subdirectory(p))
        problems = check_store(kind, path, model, first, completed)
        found += [f"round {r}, after the kill: {p}" for ps in problems.values() for p in ps]
        time.sleep(TEMP_FILE_GRACE + 0.05)  # stale once older than the open by the grace
        store = open_store(kind, str(path))
        store.remove_temp_files_sync()
        store.close_sync()
        problems = check_store(kind, path, model, writer.next_gen, writer.next_gen - 1)
        found += [f"round {r}, after remove_temp_files: {p}" for ps in problems.values() for p in ps]
    TALLY.add(kills=n, processes=n, keys_checked=n * 6)
    assert not found, report(kind, seed, found)


def test_remove_temp_files_keeps_a_temp_file_made_after_the_open(tmp_path: Path) -> None:
    # Another process's write that begins after this store's open is in flight,
    # not left by a crash: removing its temp file would fail that write.
    # File-system timestamps are coarse (a tick of a few ms): a file made just
    # after the open can carry an mtime a little before it.
    root = tmp_path / "store"
    root.mkdir()
    kept = 0
    for i in range(20):
        store = open_store("directory", str(root))
        temp = root / f"{TEMP_PREFIX}in-flight-{i}"
        # As a writer does: the temp file is made empty, written later.
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        store.remove_temp_files_sync()
        kept += temp.exists()
        temp.unlink(missing_ok=True)
        store.close_sync()
    assert kept == 20, f"remove_temp_files removed {20 - kept} of 20 temp files made after the store's open"


def test_zip_killed_before_close_fails_to_reopen(forkserver: ForkServer, tmp_path: Path) -> None:
    # A writer killed before close() leaves entries but no central directory.
    # Reopening must fail naming the file, not read an empty store (mode "r") or
    # append a new archive after the lost entries (mode "a"), and leave it as it was.
    seed = new_seed()
    rng = random.Random(seed)
    work = tmp_path / "work"
    work.mkdir()
    n = rounds(quick=4, full=40)
    checked = 0
    for r in range(n):
        path = tmp_path / f"z{r}" / "data.zip"
        path.parent.mkdir()
        writer = Writer(
            forkserver, "zip", path, work, seed + r, nkeys=12, max_size=65536, open_kwargs={"mode": "w"}
        )
        early = r % 4 == 3  # now and then a kill around the open, before any entry is whole
        api = "sync" if r % 2 else "async"
        if early:
            writer.run(rng.uniform(0, 0.003), api)
        else:
            writer.run(rng.uniform(0, 0.02), api, wait_for_gens=1)
        if not path.exists():
            assert early, f"round {r}: the killed writer left no file"
            continue
        before = path.read_bytes()
        # An empty file (killed before the first entry) lost nothing: appending to it may work.
        modes = ("r", "a") if before else ("r",)
        for mode in modes:
            with pytest.raises(BackendError) as info:
                open_store("zip", str(path), mode=mode)
            assert str(path) in str(info.value), f"round {r}, mode {mode!r}: {info.value}"
            assert isinstance(info.value.__cause__, zipfile.BadZipFile), (
                f"mode {mode!r}: {info.value.__cause__!r}"
            )
            assert path.read_bytes() == before, f"round {r}: opening in mode {mode!r} changed the file"
        assert os.listdir(path.parent) == ["data.zip"]
        checked += 1
    assert checked, "no killed writer left a file"
    TALLY.add(kills=n, processes=n)
