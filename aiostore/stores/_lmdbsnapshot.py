"""Zero-copy LMDB reads: read snapshots kept open exactly as long as buffers into them live.

py-lmdb's ``buffers=True`` values are memoryviews straight into LMDB's map that
own nothing: they outlive their transaction, and once it ends LMDB may reuse
their pages for later writes, changing the bytes under their holder. Here a
read runs in a :class:`Snapshot` -- one read transaction -- and each value is
handed out as a read-only memoryview exported by an *owner*, a numpy array over
py-lmdb's view::

    owner = np.frombuffer(txn.get(key), "u1")   # read-only, no copy
    value = memoryview(owner)          # what the caller gets: value.obj is owner

Every view derived from ``value`` -- its slices, a ``memoryview`` of it,
``np.frombuffer(value)`` and that array's slices (numpy does not collapse a
view's base past a non-array) -- keeps ``owner`` alive; ``value.release()``
lets it go. Why numpy: the owner must export its own buffer (``memoryview(raw)``
shares ``raw``'s managed buffer, which holds nothing; ``pickle.PickleBuffer``
forwards the request to ``raw``, so it is not kept), and must not be tracked by
the garbage collector: a memoryview exporting to another memoryview's managed
buffer (``PickleBuffer(raw).raw()``) crashes CPython 3.11 and 3.12 when both are
collected in one cycle (``tp_clear`` of the exporter fails, then it is freed
with its managed buffer gone). Numpy arrays are not tracked.

The snapshot holds a weak reference to each owner (compared and hashed by
identity: an array has no hash) in a set, and the weak reference's callback
is that set's ``discard`` method -- one bound-method object
per snapshot, its *token*, referenced by every pending weak reference. Nothing
runs in Python when a buffer dies. When the last one has died, the token dies,
and its own weak reference's callback ends the transaction (``abort``), giving
LMDB its reader slot back -- in whatever thread that happens, as py-lmdb opens
environments with ``MDB_NOTLS``. Until then LMDB keeps every page the snapshot
can see: a write never changes a value under its holder, but it cannot reuse
those pages either (the file grows instead).

Per value this leaves five small objects the garbage collector tracks (numpy's
view of py-lmdb's and the managed buffer they share, the memoryview handed out
and its managed buffer, the weak reference), in C loops (``map``) with the collector paused
(:mod:`aiostore._runtime.gcpause`), and the collector scans them once after the
batch: 2-3 µs a value in all, whatever its size. Copying 4 KiB costs about as
much (so for small values ``buffers=False`` is as fast, or faster once malloc
reuses memory well); copying 64 KiB costs 10-37 µs. Reads with no commit in
between (checked against ``env.info()["last_txnid"]``, so other processes'
commits count too) share one snapshot, so a caller holding many single ``get``
results holds one reader slot, not one each; a snapshot is used by one batch at
a time (another thread's batch begins its own). A fork never ends the parent's
snapshots in the child: the child drops them unended, and its buffers read before
the fork are unmapped when it opens its own environment (see
:mod:`aiostore.stores._lmdbenv`).

>>> import lmdb, os, tempfile
>>> from aiostore.stores._lmdbenv import acquire_env, release_env
>>> tmp = tempfile.TemporaryDirectory()
>>> shared = acquire_env(os.path.join(tmp.name, "db"), {"map_size": 2**20}, readonly=False)
>>> with shared.env.begin(write=True) as txn:
...     txn.put(b"k", b"value")
True
>>> [view] = read_buffers(shared, [b"k"], None, fast=True)
>>> bytes(view[1:3]), view.readonly, shared.live_snapshots
(b'al', True, 1)
>>> release_env(shared); shared.closed  # deferred: a buffer is alive
False
>>> del view; shared.live_snapshots, shared.closed
(0, True)
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import lmdb
import numpy as np

from aiostore._runtime.gcpause import gc_paused
from aiostore.abc import ByteRange, Request
from aiostore.errors import BackendError

if TYPE_CHECKING:
    from aiostore.stores._lmdbenv import SharedEnv

__all__ = ["Snapshot", "SnapshotCache", "encode_requests", "read_buffers", "read_copies", "readers_full"]

#: Every snapshot not ended yet: they must outlive their owners' stores, and
#: nothing else holds them (their buffers refer to them only through weak references).
_LIVE: set[Snapshot] = set()


#: A snapshot's token: its set's ``discard``, the callback of every weak reference.
_Token = Callable[[Any], None]
_BYTES = np.dtype("u1")


class _Ref(weakref.ref):  # type: ignore[type-arg]
    """A weak reference compared and hashed by identity (a referent's own hash may fail)."""

    __slots__ = ()
    __eq__ = object.__eq__
    __hash__ = object.__hash__


class Snapshot:
    """One read transaction, open while buffers read in it are alive.

    Made by :meth:`SnapshotCache.checkout`, with the token that keeps it open;
    :meth:`read` hands out buffers that keep that token alive.
    """

    def __init__(self, shared: SharedEnv, txn: lmdb.Transaction[Any]) -> None:
        self.shared = shared
        self.txn: lmdb.Transaction[Any] | None = txn
        self.txnid: int = txn.id()
        self.pid = os.getpid()
        #: In use by a batch (a transaction is used by one thread at a time).
        self.busy = True
        self._refs: set[_Ref] = set()
        #: Held by the batch that begins it (see :meth:`SnapshotCache.checkout`).
        self.first_token: _Token | None = self._refs.discard
        self._token: weakref.ref[_Token] | None = weakref.ref(self.first_token, self._end)
        _LIVE.add(self)
        shared.snapshot_started(self)

    def token(self) -> _Token | None:
        """The token (which keeps it open while held), or None once it has ended."""
        ref = self._token
        return None if ref is None else ref()

    def alive(self) -> bool:
        """Whether it is open, or in a forked child, whether buffers inherited from it live."""
        return self.txn is not None and self.token() is not None

    def detach(self) -> None:
        """In a forked child: drop the parent's transaction, never ending it (py-lmdb's
        cleanup does nothing in a child; ending it would free the parent's reader slot)."""
        if self.pid != os.getpid():
            self.txn = None

    def read(
        self,
        token: _Token,
        keys: Sequence[bytes | None],
        ranges: Sequence[ByteRange | None] | None,
        fast: bool,
    ) -> list[memoryview | None]:
        """Buffers of ``keys`` (None: missing, or a key too long to be stored), sliced to
        ``ranges``; ``fast``: no ranges and no None key."""
        txn = self.txn
        assert txn is not None, "a snapshot is read only while its token is held"
        refs = self._refs
        if fast:
            try:
                owners: list[Any] = list(map(np.frombuffer, map(txn.get, keys), repeat(_BYTES)))  # type: ignore[arg-type]
            except (TypeError, ValueError):  # a missing key (None has no buffer); an old numpy's empty one
                pass
            else:
                refs.update(map(_Ref, owners, repeat(token)))
                views: list[Any] = list(map(memoryview, owners))  # type: ignore[arg-type]
                return views
        out: list[memoryview | None] = []
        for key, byte_range in zip(keys, ranges or [None] * len(keys), strict=True):
            raw = None if key is None else txn.get(key)
            if raw is None:
                out.append(None)
                continue
            owner: Any = np.asarray(raw)
            refs.add(_Ref(owner, token))
            view = memoryview(owner)
            out.append(view if byte_range is None else view[byte_range[0] : byte_range[1]])
        return out

    def _end(self, _ref: object, getpid: Callable[[], int] = os.getpid, live: set[Snapshot] = _LIVE) -> None:
        """The token died (the last buffer did): end the transaction, in any thread."""
        shared = self.shared
        with shared.end_lock:  # a fork waits for this, so it never copies it half done
            txn, self.txn = self.txn, None
            self._token = None
            live.discard(self)
            if txn is not None and getpid() == self.pid:
                try:
                    txn.abort()
                except Exception:  # its environment is gone already (interpreter exit): so is it
                    pass
            # In a forked child the transaction is the parent's: dropped, never ended
            # (py-lmdb's cleanup does nothing in a child; ending it would free the
            # parent's reader slot under the parent's buffers).
            del txn
        shared.snapshot_ended(self)


class SnapshotCache:
    """The snapshots reads share while nothing is committed: one cache per environment.

    The snapshots of the last commit that no batch is using wait here (weakly: one
    stays open only while buffers into it live). A batch takes one, or begins one
    when all are in use, so one commit has at most as many snapshots as batches
    ever ran at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[weakref.ref[Snapshot]] = []

    def checkout(self, shared: SharedEnv, env: lmdb.Environment) -> tuple[Snapshot, _Token]:
        """A snapshot of the last commit for one batch, and its token (call inside a
        transaction section of ``shared``; :meth:`checkin` after)."""
        last = env.info()["last_txnid"]
        pid = os.getpid()
        with self._lock:
            while self._idle:
                snapshot = self._idle.pop()()
                if snapshot is None or snapshot.txnid != last or snapshot.pid != pid:
                    continue  # ended, or older than the last commit: not shared any more
                token = snapshot.token()
                if token is not None:
                    snapshot.busy = True
                    return snapshot, token
        try:
            txn = env.begin(buffers=True)
        except lmdb.ReadersFullError as exc:
            raise readers_full(shared, exc) from exc
        snapshot = Snapshot(shared, txn)
        token, snapshot.first_token = snapshot.first_token, None
        assert token is not None
        return snapshot, token

    def checkin(self, snapshot: Snapshot) -> None:
        """The batch is done with ``snapshot``: it waits for the next, unless a newer one does."""
        with self._lock:
            snapshot.busy = False
            idle = [
                ref for ref in self._idle if (other := ref()) is not None and other.txnid >= snapshot.txnid
            ]
            if not any(ref().txnid > snapshot.txnid for ref in idle):  # type: ignore[union-attr]
                idle.append(weakref.ref(snapshot))
            self._idle = idle

    def renew_in_child(self) -> None:
        """After ``fork``: a new lock, and no snapshot to share (the parent's are not ours)."""
        self._lock = threading.Lock()
        self._idle = []


def readers_full(shared: SharedEnv, exc: lmdb.Error) -> BackendError:
    """The error for LMDB's ``MDB_READERS_FULL``, saying what holds the slots."""
    limit = shared.kwargs.get("max_readers", 126)
    return BackendError(
        shared.path,
        f"LMDB has no free reader slot (max_readers={limit}): buffers returned by reads hold "
        f"{shared.live_snapshots} read snapshots open in this process, each holding a slot until "
        f"its last buffer is released (other processes hold the rest). Release those buffers "
        f"(del them, or call .release()), read with buffers=False, or open with a larger "
        f"max_readers ({exc})",
    )


def encode_requests(
    requests: Sequence[Request], max_key: int
) -> tuple[list[bytes | None], list[ByteRange | None] | None, bool]:
    """The keys encoded (None: too long to be stored), the byte ranges (None: none
    asked), and whether both are plain (C loops can read them)."""
    # Normalized keys hold no NUL: encode them all in one call.
    joined = "\x00".join(map(itemgetter(0), requests))
    encoded: list[bytes | None] = joined.encode("utf-8", "surrogateescape").split(b"\x00")  # type: ignore[assignment]
    ranges = list(map(itemgetter(1), requests)) if any(map(itemgetter(1), requests)) else None
    fast = ranges is None
    if max(map(len, encoded)) > max_key:  # type: ignore[arg-type]
        encoded = [None if len(key) > max_key else key for key in encoded]  # type: ignore[arg-type]
        fast = False
    return encoded, ranges, fast


def read_copies(
    txn: lmdb.Transaction[Any], keys: Sequence[bytes | None], ranges: Sequence[ByteRange | None] | None
) -> list[bytes | None]:
    """Values (or ranges of them) copied out inside ``txn`` (a ``buffers=True`` one: only
    the range is copied)."""
    out: list[bytes | None] = []
    for key, byte_range in zip(keys, ranges or [None] * len(keys), strict=True):
        value = None if key is None else txn.get(key)
        if value is not None and byte_range is not None:
            value = value[byte_range[0] : byte_range[1]]
        # bytes(): a buffer must be copied out while the transaction pins its page.
        out.append(None if value is None else bytes(value))
    return out


def read_buffers(
    shared: SharedEnv,
    keys: Sequence[bytes | None],
    ranges: Sequence[ByteRange | None] | None,
    fast: bool,
) -> list[memoryview | None]:
    """Read-only buffers of ``keys`` that keep their snapshot open (see the module's docs)."""
    cache = shared.snapshots
    while True:
        env = shared.acquire()
        try:
            snapshot, token = cache.checkout(shared, env)
            try:
                with gc_paused():
                    return snapshot.read(token, keys, ranges, fast)
            finally:
                cache.checkin(snapshot)
        except lmdb.MapResizedError:
            pass
        except lmdb.Error as exc:
            raise BackendError(shared.path, f"LMDB read failed: {exc}") from exc
        finally:
            shared.release()
        shared.adopt_new_size()


def _renew_in_child() -> None:
    """After ``fork``, in the child: a snapshot whose end was waiting for the fork to
    finish (its buffers had died) is dropped, unended -- it is the parent's."""
    for snapshot in list(_LIVE):
        if not snapshot.alive():
            snapshot.txn = None
            _LIVE.discard(snapshot)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)
