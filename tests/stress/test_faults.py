"""Faults: ENOSPC, EIO and friends injected into writes; the old value survives.

The directory stores write a value to a temp file ``.aiostore-tmp-*`` beside
its key (``os.open``, ``os.write``, ``os.close``) and move it into place with
``os.replace`` (:mod:`aiostore.stores._fsops`). Here those ``os`` calls, as
``_fsops`` sees them, are wrapped: for a random subset of the keys of every
round one call fails -- the temp file's ``open`` (ENOSPC, EDQUOT, EIO), a
``write`` after a random number of bytes went out (a short write, then ENOSPC,
EIO, EDQUOT or EFBIG), ``close`` (EIO, ENOSPC: NFS reports a full disk there),
``os.replace`` (EIO, EXDEV, EACCES, ENOSPC, EROFS) or the ``makedirs`` of a new
directory (ENOSPC, EDQUOT). The other keys see short writes (``os.write``
returning fewer bytes than asked, as it may) but no error. Then:

* a single-key write raises an :class:`OSError` of the injected type and errno
  whose message names the key, not the temp file;
* a batch raises :class:`~aiostore.errors.BatchWriteError` whose ``failed``
  holds exactly the failed keys, each with such an error, and every other key
  is fully written;
* every failed key keeps its old value in full (or stays absent);
* no temp file is left anywhere under the root.

Real faults too, in subprocesses: a file-size limit (``RLIMIT_FSIZE``, so
``write`` really returns short and then EFBIG) under the directory stores and
LMDB, and a 64 KiB tmpfs in a private mount namespace that the writes fill (when
``unshare --mount`` works here). LMDB's map-full path: when the map cannot grow,
the write fails with an aiostore error naming the database, nothing of it is
written, and the store stays usable.

The seed is in every failure message; ``AIOSTORE_STRESS_SEED=<n>`` replays it.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest
from stress_tally import TALLY, rounds

import aiostore
from aiostore.errors import BatchWriteError, StoreError
from aiostore.stores import _fsops, _lmdbenv
from aiostore.stores import directory as directory_module

BASE_SEED = int(os.environ.get("AIOSTORE_STRESS_SEED", random.SystemRandom().randrange(2**32)))
ROUNDS = rounds(quick=40, full=500)
TEMP = _fsops.TEMP_PREFIX
_real_os = os

# The keys the rounds write: shared directories at several depths (a batch of
# more than 16 keys is split over the disk threads, so several threads write
# into one directory at once).
POOL = (
    [f"a/{i}.{j}" for i in range(4) for j in range(4)]
    + [f"b/c/{i}" for i in range(8)]
    + [f"d/e/f/{i}" for i in range(4)]
    + ["top", ".zattrs"]
)

STORES: dict[str, Callable[[Path], aiostore.DirectoryStore]] = {
    "directory": lambda tmp: aiostore.DirectoryStore(tmp / "dir"),
    "nested": lambda tmp: aiostore.NestedDirectoryStore(tmp / "nested"),
}

# (os call, errnos it fails with)
FAULTS: list[tuple[str, tuple[int, ...]]] = [
    ("open", (errno.ENOSPC, errno.EDQUOT, errno.EIO)),
    ("write", (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG)),
    ("close", (errno.EIO, errno.ENOSPC)),
    ("replace", (errno.EIO, errno.EXDEV, errno.EACCES, errno.ENOSPC, errno.EROFS)),
]


@dataclasses.dataclass
class Fault:
    call: str  # "open", "write", "close", "replace" or "makedirs"
    errno: int
    at_byte: int = 0  # for "write": bytes that go out before the error
    fired: bool = False

    def error(self, *filenames: str) -> OSError:
        """The error the real call would raise (``OSError(errno, ...)`` picks the subclass)."""
        return OSError(self.errno, os.strerror(self.errno), *filenames)


class FaultyOs:
    """Stands in for the ``os`` module inside :mod:`aiostore.stores._fsops`.

    ``plan`` maps a key to the one :class:`Fault` its write meets; which key a
    call belongs to comes from the key of the ``write_atomically`` call running
    in this thread. Thread-safe: a batch runs in several worker threads.
    """

    def __init__(self, rng: random.Random, short_writes: float = 0.3) -> None:
        self._lock = threading.Lock()
        self._rng = rng
        self._short = short_writes
        self._local = threading.local()
        self.plan: dict[str, Fault] = {}
        self._fds: dict[int, tuple[str | None, list[int]]] = {}
        self.unattributed = 0  # temp-file calls made outside write_atomically
        self.short_writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(_real_os, name)

    # -- which key a call belongs to ------------------------------------------------
    def wrap_writer(self, write_atomically: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(write_atomically)

        def traced(*args: Any, **kwargs: Any) -> Any:
            self._local.key = signature.bind(*args, **kwargs).arguments["key"]
            try:
                return write_atomically(*args, **kwargs)
            finally:
                self._local.key = None

        return traced

    def _key(self) -> str | None:
        key = getattr(self._local, "key", None)
        if key is None:
            with self._lock:
                self.unattributed += 1
        return key

    def _fire(self, key: str | None, call: str) -> Fault | None:
        with self._lock:
            fault = self.plan.get(key) if key is not None else None
            if fault is None or fault.fired or fault.call != call:
                return None
            if call != "write":
                fault.fired = True
            return fault

    # -- the wrapped calls ----------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        is_temp = os.path.basename(path).startswith(TEMP)
        key = self._key() if is_temp else None
        if is_temp and (fault := self._fire(key, "open")) is not None:
            raise fault.error(path)
        fd = _real_os.open(path, flags, mode, *args, **kwargs)
        if is_temp:
            with self._lock:
                self._fds[fd] = (key, [0])
        return fd

    def write(self, fd: int, data: Any) -> int:
        with self._lock:
            key, written = self._fds.get(fd, (None, [0]))
            fault = self.plan.get(key) if key is not None else None
            if fault is not None and (fault.call != "write" or fault.fired):
                fault = None
            view = memoryview(data).cast("B")
            if fault is not None:
                room = fault.at_byte - written[0]
                if room <= 0:
                    fault.fired = True
                    raise fault.error()
                view = view[:room]  # a short write up to the fault
            elif len(view) > 1 and self._rng.random() < self._short:
                view = view[: self._rng.randrange(1, len(view))]  # short, no error
                self.short_writes += 1
        n = _real_os.write(fd, view)
        with self._lock:
            written[0] += n
        return n

    def close(self, fd: int) -> None:
        with self._lock:
            key, _ = self._fds.pop(fd, (None, None))
        _real_os.close(fd)
        if (fault := self._fire(key, "close")) is not None:
            raise fault.error()  # the descriptor is closed all the same, as on Linux

    def replace(self, src: str, dst: str, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(src).startswith(TEMP):
            key = self._key()
            if (fault := self._fire(key, "replace")) is not None:
                raise fault.error(src, dst)
        _real_os.replace(src, dst, *args, **kwargs)

    def makedirs(self, name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        key = getattr(self._local, "key", None)
        if (fault := self._fire(key, "makedirs")) is not None:
            raise fault.error(name)
        _real_os.makedirs(name, mode, exist_ok)


@pytest.fixture
def faulty_os(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> FaultyOs:
    seed = BASE_SEED + sum(map(ord, request.node.name))
    fos = FaultyOs(random.Random(seed))
    monkeypatch.setattr(_fsops, "os", fos)
    monkeypatch.setattr(directory_module, "write_atomically", fos.wrap_writer(_fsops.write_atomically))
    return fos


# -- checks ------------------------------------------------------------------------------
def temp_files(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found.extend(os.path.join(dirpath, n) for n in dirnames + filenames if n.startswith(TEMP))
    return found


def read_disk(root: str, key: str) -> bytes | None:
    try:
        with open(os.path.join(root, *key.split("/")), "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def check_error(err: BaseException, key: str, fault: Fault, where: str) -> list[str]:
    """What is wrong with the error ``key``'s failed write raised (empty: nothing)."""
    problems = []
    expected = type(fault.error())
    if not isinstance(err, OSError) or isinstance(err, BatchWriteError):
        problems.append(f"{where}: {key!r} raised {err!r}, not an OSError ({fault.call} failed)")
        return problems
    if type(err) is not expected and not isinstance(err, expected):
        problems.append(f"{where}: {key!r} raised {type(err).__name__}, not {expected.__name__}: {err}")
    if err.errno != fault.errno:
        problems.append(f"{where}: {key!r} raised errno {err.errno}, not {fault.errno}: {err}")
    if repr(key) not in str(err) and key not in str(err):
        problems.append(f"{where}: the error of {key!r} does not name the key: {err}")
    if TEMP in str(err):
        problems.append(f"{where}: the error of {key!r} names the temp file: {err}")
    return problems


class Round:
    """One round's plan: the batch, its new values, and the faults."""

    def __init__(self, rng: random.Random, n: int, single: bool) -> None:
        size = 1 if single else rng.randint(1, len(POOL))
        keys = rng.sample(POOL, size)
        # A key in a directory of its own that does not exist yet: its makedirs can fail.
        fresh = f"new{n}/x/{rng.randrange(100)}"
        if single and rng.random() < 0.2:
            keys = [fresh]
        elif not single and rng.random() < 0.5:
            keys.append(fresh)
        self.items = {k: rng.randbytes(rng.choice([0, 1, 7, 100, 4096, 70_000])) for k in keys}
        self.faults: dict[str, Fault] = {}
        p = 0.8 if single else rng.choice([0.0, 0.1, 0.3, 1.0])
        for key, value in self.items.items():
            if rng.random() >= p:
                continue
            if key == fresh and rng.random() < 0.5:
                call, errnos = "makedirs", (errno.ENOSPC, errno.EDQUOT)
            else:
                call, errnos = rng.choice(FAULTS)
            at = rng.randrange(len(value)) if call == "write" and value else 0
            self.faults[key] = Fault(call, rng.choice(errnos), at)


async def run_round_async(store: aiostore.DirectoryStore, rnd: Round, single: bool) -> BaseException | None:
    try:
        if single:
            [(key, value)] = rnd.items.items()
            await store.set(key, value)
        else:
            await store.set_many(rnd.items)
    except Exception as exc:
        return exc
    return None


def run_round_sync(store: aiostore.DirectoryStore, rnd: Round, single: bool) -> BaseException | None:
    try:
        if single:
            [(key, value)] = rnd.items.items()
            store.set_sync(key, value)
        else:
            store.set_many_sync(rnd.items)
    except Exception as exc:
        return exc
    return None


def judge(
    store: aiostore.DirectoryStore,
    fos: FaultyOs,
    rnd: Round,
    raised: BaseException | None,
    model: dict[str, bytes],
    single: bool,
    where: str,
) -> list[str]:
    """Check one round against the model (updated to the round's outcome); count it."""
    problems: list[str] = []
    unfired = [k for k, f in rnd.faults.items() if not f.fired]
    problems += [f"{where}: the {rnd.faults[k].call} fault planned for {k!r} was never met" for k in unfired]
    planned = {k: f for k, f in rnd.faults.items() if f.fired}
    if not planned:
        if raised is not None:
            problems.append(f"{where}: no fault, but the write raised {raised!r}")
    elif single:
        [(key, fault)] = planned.items()
        if raised is None:
            problems.append(
                f"{where}: {fault.call} failed ({errno.errorcode[fault.errno]}) but set() returned"
            )
        else:
            problems += check_error(raised, key, fault, where)
    elif not isinstance(raised, BatchWriteError):
        problems.append(f"{where}: {len(planned)} key(s) failed but set_many raised {raised!r}")
    else:
        if set(raised.failed) != set(planned):
            problems.append(
                f"{where}: BatchWriteError.failed has {sorted(raised.failed)}, "
                f"the failed keys are {sorted(planned)}"
            )
        for key, err in raised.failed.items():
            if key in planned:
                problems += check_error(err, key, planned[key], where)
    # The outcome: the failed keys keep their old value, the others hold the new one.
    torn = lost = 0
    for key, value in rnd.items.items():
        old = model.get(key)
        want = old if key in planned else value
        got = read_disk(store.path, key)
        if got != want:
            if got not in (old, value):
                torn += 1
                problems.append(f"{where}: {key!r} is torn: {len(got or b'')} bytes, neither old nor new")
            else:
                lost += 1
                what = "the new value" if key not in planned else "its old value"
                problems.append(f"{where}: {key!r} lost {what} ({'failed' if key in planned else 'written'})")
        if key not in planned:
            model[key] = value
    leftovers = temp_files(store.path)
    problems += [f"{where}: temp file left behind: {p}" for p in leftovers]
    TALLY.add(faults=len(planned), keys_checked=len(rnd.items), torn=torn, lost=lost)
    return problems


def check_all(store: aiostore.DirectoryStore, model: dict[str, bytes], where: str) -> list[str]:
    """Every key of the model, through the store itself; no key it does not know of."""
    got = store.get_many_sync(list(model))
    problems = [f"{where}: {k!r} reads back wrong" for k in model if got.get(k) != model[k]]
    extra = set(store.list_sync()) - set(model)
    problems += [f"{where}: unexpected key {k!r} listed" for k in sorted(extra)]
    TALLY.add(keys_checked=len(model))
    return problems


def start_store(tmp_path: Path, kind: str, seed: int) -> tuple[aiostore.DirectoryStore, dict[str, bytes]]:
    store = STORES[kind](tmp_path)
    rng = random.Random(seed)
    model = {k: rng.randbytes(rng.randrange(1, 300)) for k in rng.sample(POOL, len(POOL) // 2)}
    store.set_many_sync(model)
    return store, model


def report(problems: list[str], seed: int) -> None:
    if problems:
        shown = "\n".join(problems[:25])
        more = f"\n... and {len(problems) - 25} more" if len(problems) > 25 else ""
        pytest.fail(
            f"seed {seed} (AIOSTORE_STRESS_SEED={BASE_SEED}): {len(problems)} problem(s)\n{shown}{more}"
        )


# -- injected faults: async (asyncio and trio) and sync, single and batch ----------------------
@pytest.mark.anyio
@pytest.mark.parametrize("api", ["set", "set_many"])
@pytest.mark.parametrize("kind", list(STORES))
async def test_injected_write_faults_async(
    tmp_path: Path, faulty_os: FaultyOs, kind: str, api: str, anyio_backend: str
) -> None:
    seed = BASE_SEED + sum(map(ord, f"{kind}{api}{anyio_backend}"))
    rng = random.Random(seed)
    store, model = start_store(tmp_path, kind, seed)
    problems: list[str] = []
    single = api == "set"
    for n in range(ROUNDS):
        rnd = Round(rng, n, single)
        faulty_os.plan = rnd.faults
        raised = await run_round_async(store, rnd, single)
        faulty_os.plan = {}
        problems += judge(store, faulty_os, rnd, raised, model, single, f"round {n} ({api})")
        if len(problems) > 50:
            break
    problems += check_all(store, model, "after all rounds")
    if faulty_os.unattributed:
        problems.append(
            f"{faulty_os.unattributed} temp-file calls outside write_atomically: the harness is blind"
        )
    await store.aclose()
    report(problems, seed)


@pytest.mark.parametrize("api", ["set_sync", "set_many_sync"])
@pytest.mark.parametrize("kind", list(STORES))
def test_injected_write_faults_sync(tmp_path: Path, faulty_os: FaultyOs, kind: str, api: str) -> None:
    seed = BASE_SEED + sum(map(ord, f"{kind}{api}"))
    rng = random.Random(seed)
    store, model = start_store(tmp_path, kind, seed)
    problems: list[str] = []
    single = api == "set_sync"
    for n in range(ROUNDS):
        rnd = Round(rng, n, single)
        faulty_os.plan = rnd.faults
        raised = run_round_sync(store, rnd, single)
        faulty_os.plan = {}
        problems += judge(store, faulty_os, rnd, raised, model, single, f"round {n} ({api})")
        if len(problems) > 50:
            break
    problems += check_all(store, model, "after all rounds")
    if faulty_os.unattributed:
        problems.append(
            f"{faulty_os.unattributed} temp-file calls outside write_atomically: the harness is blind"
        )
    store.close_sync()
    report(problems, seed)


def test_short_writes_alone_write_every_value_in_full(tmp_path: Path, faulty_os: FaultyOs) -> None:
    """``os.write`` may write less than asked without an error: every byte still goes out."""
    faulty_os._short = 1.0  # every write of more than one byte is short
    store = aiostore.DirectoryStore(tmp_path / "s")
    rng = random.Random(BASE_SEED)
    values = {f"k/{i}": rng.randbytes(rng.randrange(2, 50_000)) for i in range(20)}
    store.set_many_sync(values)
    store.set_sync("one", b"0123456789")
    assert faulty_os.short_writes > 20
    assert {k: read_disk(store.path, k) for k in values} == values
    assert read_disk(store.path, "one") == b"0123456789"
    TALLY.add(keys_checked=21)


def test_a_failed_write_into_a_new_directory_leaves_no_name_listed(
    tmp_path: Path, faulty_os: FaultyOs
) -> None:
    """The directory a failed write made for its key holds no key: it is not listed
    (as ``listdir`` must name only children that some key implies)."""
    store = aiostore.DirectoryStore(tmp_path / "p")
    store.set_sync("keep", b"1")
    for call in ("open", "write", "close", "replace"):
        faulty_os.plan = {f"{call}/sub/0": Fault(call, errno.ENOSPC)}
        with pytest.raises(OSError):
            store.set_sync(f"{call}/sub/0", b"value")
        TALLY.add(faults=1, keys_checked=1)
    faulty_os.plan = {}
    assert store.listdir_sync("") == ["keep"], "a failed write left its directories listed"
    assert list(store.list_sync()) == ["keep"]
    assert temp_files(store.path) == []


# -- real faults, in subprocesses ------------------------------------------------------------
_CHILD_PRELUDE = """
import errno, json, os, resource, signal, sys
import aiostore
from aiostore.errors import BatchWriteError, StoreError
TEMP = ".aiostore-tmp-"
out = {"problems": [], "faults": 0, "keys": 0}
def problem(text):
    out["problems"].append(text)
def temps(root):
    return [os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs if n.startswith(TEMP)]
def names_key(err, key):
    return key in str(err) and TEMP not in str(err)
"""


def run_child(body: str, *, prefix: list[str] | None = None, timeout: float = 60) -> dict[str, Any]:
    code = _CHILD_PRELUDE + textwrap.dedent(body) + "\nprint('RESULT ' + json.dumps(out))\n"
    proc = subprocess.run(
        [*(prefix or []), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.path.dirname(__file__),
    )
    TALLY.add(processes=1)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    TALLY.add(faults=result["faults"], keys_checked=result["keys"])
    return result


@pytest.mark.parametrize("kind", ["DirectoryStore", "NestedDirectoryStore"])
def test_file_size_limit_fails_the_big_values_only(tmp_path: Path, kind: str) -> None:
    """RLIMIT_FSIZE: a value over the limit is written short, then ``write`` fails with EFBIG."""
    result = run_child(
        f"""
        root = {str(tmp_path / "fsize")!r}
        store = aiostore.{kind}(root)
        old = {{f"a/{{i}}": bytes([i]) * 1000 for i in range(8)}}
        store.set_many_sync(old)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
        big = {{f"a/{{i}}": b"B" * 100_000 for i in range(0, 8, 2)}}
        small = {{f"a/{{i}}": b"s" * 500 for i in range(1, 8, 2)}}
        new_big = {{"fresh/0": b"F" * 70_000}}
        try:
            store.set_many_sync({{**big, **small, **new_big}})
            problem("set_many over the size limit returned")
        except BatchWriteError as exc:
            out["faults"] += len(exc.failed)
            if set(exc.failed) != set(big) | set(new_big):
                problem(f"failed keys {{sorted(exc.failed)}}, expected {{sorted(set(big) | set(new_big))}}")
            for key, err in exc.failed.items():
                if getattr(err, "errno", None) != errno.EFBIG:
                    problem(f"{{key}}: {{err!r}} is not EFBIG")
                if not names_key(err, key):
                    problem(f"{{key}}: error does not name the key: {{err}}")
        except Exception as exc:
            problem(f"set_many raised {{exc!r}}, not BatchWriteError")
        try:
            store.set_sync("a/0", b"X" * 200_000)
            problem("set over the size limit returned")
        except BatchWriteError as exc:
            problem(f"a single set raised BatchWriteError: {{exc}}")
        except OSError as exc:
            out["faults"] += 1
            if exc.errno != errno.EFBIG:
                problem(f"set raised {{exc!r}}, not EFBIG")
            if not names_key(exc, "a/0"):
                problem(f"set's error does not name the key: {{exc}}")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        want = {{**old, **small}}
        got = store.get_many_sync(list(want) + list(new_big))
        out["keys"] += len(want) + 1
        for key, value in want.items():
            if got.get(key) != value:
                problem(f"{{key}}: holds {{len(got.get(key) or b'')}} bytes, not its value")
        if "fresh/0" in got:
            problem("fresh/0 exists after its write failed")
        for path in temps(root):
            problem(f"temp file left: {{path}}")
        store.set_many_sync(big)  # the limit lifted, the same writes succeed
        if store.get_many_sync(list(big)) != big:
            problem("the store does not work after the faults")
        """
    )
    report(result["problems"], BASE_SEED)


def test_file_size_limit_under_lmdb(tmp_path: Path) -> None:
    """RLIMIT_FSIZE under LMDB: the commit fails (EFBIG); nothing of the batch is
    written, the error is an aiostore error naming the database, the store stays usable."""
    result = run_child(
        f"""
        import lmdb
        path = {str(tmp_path / "fsize.mdb")!r}
        # bytes: a read held as a buffer keeps its snapshot, whose pages the
        # writes could not reuse, and the file would grow differently.
        store = aiostore.LMDBStore(path, buffers=False)
        old = {{f"k/{{i}}": bytes([i]) * 1000 for i in range(8)}}
        store.set_many_sync(old)
        store.flush_sync()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        limit = os.path.getsize(os.path.join(path, "data.mdb")) + 8192
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        big = {{f"k/{{i}}": b"B" * 50_000 for i in range(8)}}
        for api in ("set_many_sync", "set_sync"):
            try:
                if api == "set_sync":
                    store.set_sync("k/0", b"C" * 300_000)
                else:
                    store.set_many_sync(big)
                problem(f"{{api}} over the size limit returned")
            except Exception as exc:
                out["faults"] += 1
                if not isinstance(exc, StoreError) or not isinstance(exc, OSError):
                    what = f"{{type(exc).__module__}}.{{type(exc).__name__}}: {{exc}}"
                    problem(f"{{api}} raised {{what}}; not an aiostore StoreError and OSError")
                if path not in str(exc) and "k/0" not in str(exc):
                    problem(f"{{api}}'s error names neither the database nor a key: {{exc}}")
                chain = [exc, *getattr(exc, "failed", {{}}).values()]
                if not any(isinstance(e.__cause__, lmdb.Error) for e in chain):
                    problem(f"{{api}}'s error does not keep the lmdb error as __cause__: {{exc.__cause__!r}}")
            got = store.get_many_sync(list(old))
            out["keys"] += len(old)
            if got != old:
                changed = sum(got.get(k) != v for k, v in old.items())
                problem(f"after {{api}} failed: {{changed}} old values changed")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        store.set_many_sync(big)
        if store.get_many_sync(list(big)) != big:
            problem("the store does not work after the faults")
        store.close_sync()
        store = aiostore.LMDBStore(path, buffers=False, read_only=True)
        if store.get_many_sync(list(big)) != big:
            problem("reopened, the store does not hold the last batch")
        """
    )
    report(result["problems"], BASE_SEED)


def _private_mount_namespace() -> list[str] | None:
    """The ``unshare`` command line that gives a child a mount namespace of its own
    where it may mount a tmpfs (as root, or as root of a new user namespace), or None."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return None
    probe = 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" && rmdir "$d"'
    for prefix in (
        ["unshare", "--mount", "--propagation", "private"],
        ["unshare", "--map-root-user", "--mount"],
    ):
        try:
            proc = subprocess.run([*prefix, "sh", "-c", probe], capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0:
            return prefix
    return None


@pytest.mark.parametrize("kind", ["DirectoryStore", "NestedDirectoryStore"])
def test_a_full_tmpfs(tmp_path: Path, kind: str) -> None:
    """A 64 KiB tmpfs, mounted in a private mount namespace, filled by the writes:
    real ENOSPC from ``write`` (and from ``open`` once the inodes run out)."""
    prefix = _private_mount_namespace()
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare --mount needs root or user namespaces)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    body = f"""
        import subprocess
        root = os.path.join({str(mnt)!r}, "store")
        options = "size=64k,nr_inodes=64"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", {str(mnt)!r}], check=True)
        store = aiostore.{kind}(root)
        old = {{f"a/{{i}}": bytes([65 + i]) * 2000 for i in range(8)}}
        store.set_many_sync(old)
        model = dict(old)
        import random
        rng = random.Random(0)
        for n in range(60):
            pool = [f"a/{{i}}" for i in range(8)] + [f"b/{{n}}/{{i}}" for i in range(4)]
            keys = rng.sample(pool, rng.randint(1, 6))
            batch = {{k: bytes([rng.randrange(256)]) * rng.choice([100, 5000, 20_000, 40_000]) for k in keys}}
            failed = {{}}
            try:
                if len(batch) == 1 and n % 2:
                    [(k, v)] = batch.items()
                    try:
                        store.set_sync(k, v)
                    except BatchWriteError as exc:
                        problem(f"round {{n}}: a single set raised BatchWriteError: {{exc}}")
                        failed = exc.failed
                    except OSError as exc:
                        failed = {{k: exc}}
                else:
                    store.set_many_sync(batch)
            except BatchWriteError as exc:
                failed = exc.failed
            for key, err in failed.items():
                out["faults"] += 1
                if not isinstance(err, OSError) or err.errno not in (errno.ENOSPC,):
                    problem(f"round {{n}}: {{key}} failed with {{err!r}}, not ENOSPC")
                elif not names_key(err, key):
                    problem(f"round {{n}}: the error of {{key}} does not name the key: {{err}}")
            if set(failed) - set(batch):
                problem(f"round {{n}}: failed names keys not written: {{set(failed) - set(batch)}}")
            for key, value in batch.items():
                if key not in failed:
                    model[key] = value
            got = store.get_many_sync(list(model))
            out["keys"] += len(model)
            for key, value in model.items():
                if got.get(key) != value:
                    size = len(got.get(key) or b"")
                    problem(f"round {{n}}: {{key}} holds {{size}} bytes, expected {{len(value)}}")
            for path in temps(root):
                problem(f"round {{n}}: temp file left: {{path}}")
            # make room again now and then, so that both failures and successes happen
            if n % 7 == 6:
                extra = [k for k in model if k.startswith("b/")]
                store.delete_many_sync(extra)
                for k in extra:
                    del model[k]
        if out["faults"] == 0:
            problem("the tmpfs never filled up: no fault was met")
        """
    result = run_child(body, prefix=prefix)
    report(result["problems"], BASE_SEED)


# -- LMDB: the map is full and cannot grow -------------------------------------------------------
class _EnvProxy:
    """An ``lmdb.Environment`` whose ``set_mapsize`` fails while ``refuse`` is set
    (as ``mmap`` of a larger map fails when the address space is exhausted)."""

    refuse = False
    refused = 0

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def set_mapsize(self, size: int) -> None:
        if _EnvProxy.refuse and size:
            _EnvProxy.refused += 1
            raise lmdb.Error(f"mdb_env_set_mapsize: {os.strerror(errno.ENOMEM)}")
        self._env.set_mapsize(size)


class _LmdbModuleProxy:
    def __getattr__(self, name: str) -> Any:
        return getattr(lmdb, name)

    @staticmethod
    def open(*args: Any, **kwargs: Any) -> _EnvProxy:
        return _EnvProxy(lmdb.open(*args, **kwargs))


@pytest.fixture
def unyielding_lmdb(monkeypatch: pytest.MonkeyPatch) -> type[_EnvProxy]:
    monkeypatch.setattr(_lmdbenv, "lmdb", _LmdbModuleProxy())
    monkeypatch.setattr(_EnvProxy, "refuse", False)
    monkeypatch.setattr(_EnvProxy, "refused", 0)
    return _EnvProxy


NEVER_REFUSED = (
    "set_mapsize was never refused: the map never filled, or it is not grown via _lmdbenv.lmdb.open"
)


def _check_map_full_error(exc: BaseException, path: str, keys: list[str]) -> list[str]:
    """A batch may fail as a whole (one transaction): either the backend's error
    itself, or a BatchWriteError naming every key of the batch with that error."""
    if isinstance(exc, BatchWriteError):
        problems = []
        if set(exc.failed) != set(keys):
            problems.append(
                f"map full: BatchWriteError names {sorted(exc.failed)}, the batch is {sorted(keys)}"
            )
        for err in {id(e): e for e in exc.failed.values()}.values():
            problems += _check_map_full_error(err, path, keys)
        return problems
    problems = []
    if not (isinstance(exc, StoreError) and isinstance(exc, OSError)):
        problems.append(
            f"map full: raised {type(exc).__module__}.{type(exc).__name__}, not an aiostore "
            f"StoreError that is an OSError: {exc}"
        )
    if path not in str(exc) and not any(k in str(exc) for k in keys):
        problems.append(f"map full: the error names neither the database nor a key: {exc}")
    if not isinstance(exc.__cause__, lmdb.Error):
        problems.append(f"map full: the lmdb error is not kept as __cause__: {exc.__cause__!r}")
    return problems


def test_lmdb_map_full_sync(tmp_path: Path, unyielding_lmdb: type[_EnvProxy]) -> None:
    path = str(tmp_path / "full.mdb")
    # bytes: each round's read is still held when the map must grow, which a
    # live buffer (its snapshot) would forbid.
    store = aiostore.LMDBStore(path, buffers=False, map_size=256 * 1024)
    problems: list[str] = []
    rng = random.Random(BASE_SEED)
    model = {f"k/{i}": rng.randbytes(500) for i in range(20)}
    store.set_many_sync(model)
    # Six rounds at every scale: each growth round (n % 3 == 2) leaves the map larger,
    # and after two of them the next writes could fit without growing.
    for n in range(6):
        unyielding_lmdb.refuse = True
        big = {f"k/{i}": rng.randbytes(rng.choice([40_000, 120_000])) for i in rng.sample(range(30), 8)}
        try:
            if n % 2:
                key = next(iter(big))
                big = {key: rng.randbytes(600_000)}
                store.set_sync(key, big[key])
            else:
                store.set_many_sync(big)
            problems.append(f"round {n}: a write that cannot fit the map returned")
        except Exception as exc:
            problems += _check_map_full_error(exc, path, list(big))
        TALLY.add(faults=1)
        got = store.get_many_sync(list(model))
        TALLY.add(keys_checked=len(model))
        lost = sum(got.get(k) != v for k, v in model.items())
        torn = sum(1 for k in big if k not in model and k in got)
        TALLY.add(lost=lost, torn=torn)
        if lost or torn:
            problems.append(
                f"round {n}: {lost} old value(s) changed, {torn} new key(s) appeared after a failed write"
            )
        # usable again once the map can grow: small and big writes succeed
        unyielding_lmdb.refuse = False
        store.set_many_sync({f"small/{n}": b"x" * 10})
        model[f"small/{n}"] = b"x" * 10
        if n % 3 == 2:
            store.set_many_sync(big)
            model.update(big)
            if store.get_many_sync(list(model)) != model:
                problems.append(
                    f"round {n}: after the map grew, the store does not read back what was written"
                )
    assert unyielding_lmdb.refused > 0, NEVER_REFUSED
    store.close_sync()
    report(problems, BASE_SEED)


@pytest.mark.anyio
async def test_lmdb_map_full_async(
    tmp_path: Path, unyielding_lmdb: type[_EnvProxy], anyio_backend: str
) -> None:
    problems: list[str] = []
    path = str(tmp_path / "full.mdb")
    store = aiostore.LMDBStore(path, buffers=False, map_size=256 * 1024)  # bytes: as in the sync test
    rng = random.Random(BASE_SEED + 1)
    model = {f"k/{i}": rng.randbytes(500) for i in range(20)}
    await store.set_many(model)
    # Six rounds at every scale: each growth round (n % 3 == 2) leaves the map larger,
    # and after two of them the next writes could fit without growing.
    for n in range(6):
        unyielding_lmdb.refuse = True
        big = {f"k/{i}": rng.randbytes(rng.choice([40_000, 120_000])) for i in rng.sample(range(30), 8)}
        try:
            if n % 2:
                key = next(iter(big))
                big = {key: rng.randbytes(600_000)}
                await store.set(key, big[key])
            else:
                await store.set_many(big)
            problems.append(f"round {n}: a write that cannot fit the map returned")
        except Exception as exc:
            problems += _check_map_full_error(exc, path, list(big))
        TALLY.add(faults=1)
        got = await store.get_many(list(model))
        TALLY.add(keys_checked=len(model))
        lost = sum(got.get(k) != v for k, v in model.items())
        torn = sum(1 for k in big if k not in model and k in got)
        TALLY.add(lost=lost, torn=torn)
        if lost or torn:
            problems.append(
                f"round {n}: {lost} old value(s) changed, {torn} new key(s) appeared after a failed write"
            )
        unyielding_lmdb.refuse = False
        await store.set(f"small/{n}", b"x" * 10)
        model[f"small/{n}"] = b"x" * 10
        if n % 3 == 2:
            await store.set_many(big)
            model.update(big)
            if await store.get_many(list(model)) != model:
                problems.append(
                    f"round {n}: after the map grew, the store does not read back what was written"
                )
    assert unyielding_lmdb.refused > 0, NEVER_REFUSED
    await store.aclose()
    report(problems, BASE_SEED)
