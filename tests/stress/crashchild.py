"""The child side of ``test_crash_kill.py``: a writer to be killed with SIGKILL.

What a writer writes is a pure function of ``(seed, generation)``, shared with
the test through this module: generation ``g`` writes the keys :func:`plan`
picks, each with :func:`value` ``(key, g)``, in one ``set_many``. A value
carries its key, its generation, its length and a digest, so the test tells a
whole value of a known generation from a torn, partial or misplaced one.

After each ``set_many`` returns, the writer appends the generation's number
to its progress file with one ``write`` (atomic against a kill): the test knows
which generations were *completed* and must never be lost.

Run as ``python crashchild.py serve``, this is a fork server: it imports
aiostore once, then forks one writer per request, so a test can kill hundreds
of writers a second instead of paying half a second of imports per process,
and can kill them as early as their store's open. Requests are JSON lines on
stdin; each answer is one JSON line on stdout:

* ``{"cmd": "run", "kind": ..., "path": ..., ...}`` forks a writer, answers ``{"pid": n}``;
* ``{"cmd": "reap", "pid": n}`` waits for it, answers ``{"signal": s, "exit": c}``;
* ``{"cmd": "quit"}``.

Only the server reaps its writers, so a pid the test kills is never reused
before the test has asked for it to be reaped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
import traceback

#: Longest a writer runs if nobody kills it.
MAX_SECONDS = 60.0


class Torn(ValueError):
    """A value that is not a whole value :func:`value` made."""


def universe(nkeys: int) -> list[str]:
    """The keys writers may write: nested like zarr chunks, a few at the top level.

    >>> universe(6)
    ['k0', 'a1/c/0/1', 'a2/c/0/2', 'a3/c/0/3', 'a0/c/1/4', 'k5']
    """
    keys = []
    for i in range(nkeys):
        keys.append(f"k{i}" if i % 5 == 0 else f"a{i % 4}/c/{i // 4 % 3}/{i}")
    return keys


def plan(seed: int, gen: int, keys: list[str]) -> list[str]:
    """The keys generation ``gen`` writes: about half of them, at least one."""
    rng = random.Random(f"{seed}:plan:{gen}")
    chosen = [k for k in keys if rng.random() < 0.5]
    return chosen or [keys[rng.randrange(len(keys))]]


def _pattern(key: str, gen: int) -> bytes:
    return hashlib.blake2b(f"{key}:{gen}".encode(), digest_size=32).digest()


def value(key: str, gen: int, max_size: int) -> bytes:
    """Generation ``gen``'s value of ``key``: a header naming both and the
    payload's length (0 to ``max_size``, varying between generations), the
    payload (a pattern of this key and generation, cheap to make and check even
    at megabytes) and the header's digest."""
    n = random.Random(f"{key}:{gen}").randint(0, max_size)
    header = f"{key}\x00{gen}\x00{n}\x00".encode()
    payload = (_pattern(key, gen) * (n // 32 + 1))[:n]
    return header + payload + hashlib.blake2b(header, digest_size=16).digest()


def decode(raw: bytes) -> tuple[str, int]:
    """``(key, generation)`` of a whole value; :class:`Torn` for anything else."""
    try:
        key_b, gen_b, n_b, rest = raw.split(b"\x00", 3)
        key, gen, n = key_b.decode(), int(gen_b), int(n_b)
    except (ValueError, UnicodeDecodeError):
        raise Torn(f"{len(raw)} bytes, no header (head {raw[:40]!r})") from None
    header_len = len(raw) - len(rest)
    if len(rest) != n + 16:
        raise Torn(f"{len(raw)} bytes, header of generation {gen} says {header_len + n + 16}")
    if hashlib.blake2b(raw[:header_len], digest_size=16).digest() != rest[n:]:
        raise Torn(f"{len(raw)} bytes, generation {gen}'s header digest does not match its end")
    if rest[:n] != (_pattern(key, gen) * (n // 32 + 1))[:n]:
        raise Torn(f"{len(raw)} bytes, generation {gen}'s payload holds other bytes")
    return key, gen


def open_store(kind: str, path: str, **kwargs: object) -> object:
    """The store a writer (or the checking test) opens at ``path``."""
    import aiostore

    if kind == "directory":
        return aiostore.DirectoryStore(path, **kwargs)
    if kind == "nested":
        return aiostore.NestedDirectoryStore(path, **kwargs)
    if kind == "lmdb":
        # bytes, not buffers: the checker keeps values across rounds (a live
        # buffer holds its snapshot, and the map could not grow under it).
        return aiostore.LMDBStore(path, **{"buffers": False, **kwargs})
    if kind.startswith("dbm."):  # dbm.dumb, dbm.gnu, dbm.ndbm: that module's open
        import importlib

        return aiostore.DBMStore(path, open=importlib.import_module(kind).open, **kwargs)
    if kind == "zip":
        return aiostore.ZipStore(path, **kwargs)
    raise ValueError(f"unknown store kind {kind!r}")


def write_generations(req: dict) -> None:
    """Open the store, then write generation after generation until killed
    (calling ``flush`` after every ``flush_every``-th, if given)."""
    progress = os.open(req["progress"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    store = open_store(req["kind"], req["path"], **req.get("open_kwargs", {}))
    os.write(progress, b"open\n")
    keys = universe(req["nkeys"])
    seed, max_size, deadline = req["seed"], req["max_size"], time.monotonic() + MAX_SECONDS

    def batches():
        gen = req["first_gen"]
        while time.monotonic() < deadline:
            yield gen, {k: value(k, gen, max_size) for k in plan(seed, gen, keys)}
            gen += 1

    flush_every = req.get("flush_every", 0)
    if req["api"] == "sync":
        for gen, batch in batches():
            store.set_many_sync(batch)
            os.write(progress, b"%d\n" % gen)
            if flush_every and gen % flush_every == 0:
                store.flush_sync()
    else:
        import anyio

        async def main() -> None:
            for gen, batch in batches():
                await store.set_many(batch)
                os.write(progress, b"%d\n" % gen)
                if flush_every and gen % flush_every == 0:
                    await store.flush()

        anyio.run(main)


def serve() -> None:
    # Everything a writer needs, imported once here rather than in every writer.
    import dbm.dumb  # noqa: F401
    import zipfile  # noqa: F401

    import anyio
    import anyio._backends._asyncio
    import lmdb  # noqa: F401

    import aiostore  # noqa: F401

    anyio.run(anyio.sleep, 0)  # also imports what the asyncio backend needs at run time

    def answer(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ready": os.getpid()})
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "quit":
            break
        if req["cmd"] == "reap":
            _, status = os.waitpid(req["pid"], 0)
            answer(
                {
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                    "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                }
            )
            continue
        pid = os.fork()
        if pid == 0:  # the writer
            code = 0
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                write_generations(req)
            except BaseException:
                code = 1
                with open(req["progress"] + ".err", "w") as f:
                    f.write(traceback.format_exc())
            os._exit(code)
        answer({"pid": pid})


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        sys.exit("usage: crashchild.py serve")
    serve()
