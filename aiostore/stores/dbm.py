"""DBMStore: a store in a DBM-style database file (``dbm.gnu``, ``dbm.ndbm``, ``dbm.dumb``, ...).

A dbm object is not safe to use from several threads at once, and most
implementations do their work holding the GIL, so there is nothing to gain
from splitting a batch over threads: every batch is one thread hop and one
hold of the store's lock, whether it reads, writes or deletes.

Examples
--------
>>> import anyio, dbm.dumb, tempfile, os
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "example.db")
>>> async def main():
...     async with DBMStore(path, open=dbm.dumb.open) as store:
...         await store.set_many({"a/0": b"x", "a/1": b"yz"})
...         print(await store.get_many(["a/0", "a/1", "b"]), await store.listdir("a"))
>>> anyio.run(main)
{'a/0': b'x', 'a/1': b'yz'} ['0', '1']
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from aiostore._runtime.forks import renew_after_fork
from aiostore.abc import BlockingStore, Buffer, Request, delete_each, read_each, write_each
from aiostore.errors import ClosedStoreError
from aiostore.keys import parent_prefix
from aiostore.stores._dbmshared import READ_MODE, Lease, SharedDB, acquire_db, reopen_flag
from aiostore.stores._fsops import fs_path
from aiostore.stores._writerlock import ForkedWriterError, WriterHoldsLockError

__all__ = ["DBMStore"]

#: How a dbm-style ``open`` is called: ``open(path, flag, mode, **open_kwargs)``.
DBMOpen = Callable[..., Any]


def _encode(key: str) -> bytes:
    # surrogateescape: keys another program wrote that are not UTF-8 still
    # round-trip through listing, reading and deleting.
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes | str) -> str:
    return key if isinstance(key, str) else key.decode("utf-8", "surrogateescape")


def _as_bytes(value: Any) -> bytes:
    return value if type(value) is bytes else bytes(value)


class DBMStore(BlockingStore):
    """Store backed by a DBM-style database file.

    Parameters
    ----------
    path : str or os.PathLike
        Location of the database file (made absolute).
    flag : str
        How to open it, as for :func:`dbm.open`: ``"r"`` read-only (writes
        raise :class:`~aiostore.ReadOnlyError`), ``"w"`` read-write, ``"c"``
        create if missing (default), ``"n"`` always start empty. Extra letters
        (``"cf"`` for gdbm's fast mode) are passed on.
    mode : int
        File mode of a newly created database (before the umask).
    open : callable, optional
        The dbm-style ``open(path, flag, mode, **open_kwargs)`` to use:
        :func:`dbm.gnu.open`, :func:`dbm.ndbm.open`, :func:`dbm.dumb.open` or a
        third-party one (``bsddb3.btopen``). Default :func:`dbm.open`, which
        picks whatever implementation this Python has (file formats differ).
    write_lock : bool
        Hold a lock around every batch (reads, writes and deletes), so the
        store is safe to use from many threads and tasks at once (default). With
        ``False`` batches take no lock, as in zarr 2: only for a single-threaded
        caller or a dbm implementation that locks for itself.
    dimension_separator : {".", "/"}, optional
    **open_kwargs
        Passed to ``open``.

    Notes
    -----
    Call :meth:`aclose` (or use ``async with``) when done: some
    implementations (``dbm.dumb``) write their index only on sync or close.
    Keys are stored as UTF-8 bytes. A file that is not a database of this
    ``open`` raises :class:`~aiostore.errors.BackendError` naming the path.

    **One process.** The stores of a process on one path share one open
    database (one dbm object and its lock; a dbm object keeps its index in
    memory, so two would lose each other's keys), reference-counted: the last
    one closed syncs and closes it. Read-only stores share a writable one, and
    see its writes at once. They must use the same ``open`` and
    ``open_kwargs`` (else :class:`~aiostore.errors.SettingsConflictError`, a
    ValueError); ``flag="n"`` on a database open in this process is refused
    the same way (it would empty it under the other stores). The first store's
    flag letters apply.

    **Other processes.** One process at a time writes, and none reads while it
    does: a writer's index is in its memory until it syncs, so a reader
    elsewhere would silently read stale data (values missing, read as fill
    values). Opening takes an ``flock`` on ``<path>.lock``: exclusive for a
    writable store, shared for ``flag="r"``. A writer is refused while another
    process writes or reads, a reader while another process writes, with
    :class:`~aiostore.errors.StoreLockedError` saying which
    (``WriterHoldsLockError`` or ``ReadersHoldLockError``). Only a writer
    removes the lock file, when it lets go.

    **Copies.** A pickled store unpickles without opening anything (dask
    unpickles tasks where an error kills the worker, and in the scheduler, in
    the client's process). The copy shares this process's open database at its
    first use, or opens it: read-only (shared lock) for a read, writable
    (exclusive lock) at its first write -- which is where a refusal is raised.
    A copy never flushes what it did not write; a copy of ``flag="n"`` opens
    with ``"c"``.

    **Fork.** A forked child reads through its parent's stores (with new
    locks), but a write through them raises
    :class:`~aiostore.errors.StoreLockedError` (``ForkedWriterError``): the
    database and its lock are the parent's, and the child's writes would be
    lost. The child never syncs or closes them; it may open stores of its own,
    refused while the parent holds the database.

    A write's safety against a crash is the implementation's: ``dbm.dumb``
    (what :func:`dbm.open` falls back to when Python has neither gdbm nor ndbm)
    is *not* crash-safe -- it rewrites a value in place when the new one fits
    and keeps its index in memory until sync or close, so a process killed while
    writing can leave torn values and lose writes that had returned. Where a
    crash must not cost data, use :class:`~aiostore.LMDBStore` or a directory store.

    Examples
    --------
    >>> import anyio, dbm.dumb, tempfile, os
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "data.db")
    >>> async def main():
    ...     async with DBMStore(path, flag="n", open=dbm.dumb.open) as store:
    ...         await store.set("foo/bar", b"baz")
    ...     async with DBMStore(path, flag="r", open=dbm.dumb.open) as store:
    ...         return await store.get("foo/bar"), await store.getsize("foo"), store.read_only
    >>> anyio.run(main)
    (b'baz', 3, True)
    >>> tmp.cleanup()
    """

    split_batches = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        flag: str = "c",
        mode: int = 0o666,
        open: DBMOpen | None = None,
        write_lock: bool = True,
        *,
        dimension_separator: str | None = None,
        **open_kwargs: Any,
    ) -> None:
        self._setup(path, flag, mode, open, write_lock, dimension_separator, open_kwargs)
        if flag[0] in "cn":
            # As a directory store would: "data/array.db" works without "data/".
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._take_share(flag)

    def _setup(
        self,
        path: str | os.PathLike[str],
        flag: str,
        mode: int,
        open: DBMOpen | None,
        write_lock: bool,
        dimension_separator: str | None,
        open_kwargs: dict[str, Any],
    ) -> None:
        """Everything but opening: a store unpickled opens at its first use."""
        if not isinstance(flag, str) or not flag or flag[0] not in "rwcn":
            raise ValueError(f"flag must start with 'r', 'w', 'c' or 'n', not {flag!r}")
        super().__init__(read_only=flag[0] == "r", dimension_separator=dimension_separator)
        if open is None:
            import dbm  # the standard library's, not this module (absolute import)

            open = cast(DBMOpen, dbm.open)
        if not callable(open):
            raise TypeError(f"open must be a dbm-style open function such as dbm.dumb.open, not {open!r}")
        self.path = fs_path(path, type(self).__name__)
        if os.path.isdir(self.path):
            raise IsADirectoryError(
                errno.EISDIR, "DBMStore needs a database file, not a directory", self.path
            )
        self.flag = flag
        self.mode = mode
        self.open: DBMOpen = open
        self.write_lock = bool(write_lock)
        self.open_kwargs = open_kwargs
        #: Held around every batch: the shared database's lock (none with write_lock=False).
        self._lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        #: Guards taking and giving up this store's share.
        self._share_lock = threading.Lock()
        self._lease: Lease | None = None
        self._released = False
        #: Whether this store opened the database for writing (or has written).
        self._writer = False
        renew_after_fork(self, type(self)._renew_after_fork)

    def _take_share(self, flag: str) -> None:
        lease = acquire_db(self.path, flag, self.mode, self.open, self.open_kwargs)
        self._lock = lease.shared.lock if self.write_lock else contextlib.nullcontext()
        self._writer = flag[0] != "r"
        self._lease = lease
        weakref.finalize(self, lease.release_soon)

    def _renew_after_fork(self) -> None:
        """In a forked child: new locks (a thread of the parent may have held them)."""
        self._share_lock = threading.Lock()
        lease = self._lease
        if lease is not None:
            lease.shared.renew()
            self._lock = lease.shared.lock if self.write_lock else contextlib.nullcontext()

    def _share(self, write: bool = False) -> SharedDB:
        """The process's open database, opened now if this store is a copy not used
        yet (read-only until its first write), made writable for a write."""
        lease = self._lease
        if lease is None:
            with self._share_lock:
                if self._released:
                    raise ClosedStoreError(f"{self!r} is closed")
                if self._lease is None:
                    self._take_share(reopen_flag(self.flag) if write else "r")
                lease = cast(Lease, self._lease)
        shared = lease.shared
        if write:
            if shared.inherited:
                raise ForkedWriterError(self.path, "DBMStore", READ_MODE)
            if not shared.writable:
                shared.make_writable(reopen_flag(self.flag))
            self._writer = True
        return shared

    def _open_db(self, shared: SharedDB) -> Any:
        """The dbm object; call with the lock held."""
        db = shared.db
        if db is None or self._released:
            raise ClosedStoreError(f"{self!r} is closed")
        if not shared.file_lock.held:
            raise WriterHoldsLockError(self.path, "DBMStore", READ_MODE)
        return db

    @property
    def db(self) -> Any:
        """The open dbm object, shared by the stores of this process on the path (None
        before a copy's first use and once closed)."""
        lease = self._lease
        return None if lease is None else lease.shared.db

    # -- blocking hooks: one lock hold per batch ------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        shared = self._share()
        with self._lock:
            db = self._open_db(shared)

            def read(key: str) -> bytes | None:
                try:  # not db.get: not every dbm-style object has it
                    return _as_bytes(db[_encode(key)])
                except KeyError:
                    return None

            return read_each(requests, read)

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        shared = self._share(write=True)
        with self._lock:
            db = self._open_db(shared)
            write_each(items, lambda key, value: db.__setitem__(_encode(key), bytes(value)))

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        shared = self._share(write=True)
        with self._lock:
            db = self._open_db(shared)
            return delete_each(keys, lambda key: db.__delitem__(_encode(key)))

    def _contains_blocking(self, key: str) -> bool:
        shared = self._share()
        with self._lock:
            return _encode(key) in self._open_db(shared)

    def _raw_keys(self) -> list[bytes]:
        shared = self._share()
        with self._lock:
            return list(self._open_db(shared).keys())

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        encoded = _encode(prefix)
        for raw in self._raw_keys():
            key = raw if isinstance(raw, bytes) else _encode(raw)
            if key.startswith(encoded):
                yield _decode(key)

    # -- whole-path operations: one lock hold each ---------------------------
    def _keys_below(self, db: Any, path: str) -> list[bytes]:
        prefix = _encode(parent_prefix(path))
        return [k for k in db.keys() if k.startswith(prefix)]

    def _rmdir_blocking(self, path: str) -> None:
        shared = self._share(write=True)
        with self._lock:
            db = self._open_db(shared)
            for key in self._keys_below(db, path):
                del db[key]

    def _rename_blocking(self, src: str, dst: str) -> None:
        src_b, dst_b = _encode(src), _encode(dst)
        shared = self._share(write=True)
        with self._lock:
            db = self._open_db(shared)
            moving = self._keys_below(db, src)
            if src_b in db:
                moving.append(src_b)
            # Read everything first, write the new keys, then delete the old
            # ones that were not just written (dst may be an ancestor of src):
            # a crash part-way leaves keys duplicated, never lost.
            values = {key: db[key] for key in moving}
            written = set()
            for key, value in values.items():
                new = dst_b + key[len(src_b) :]
                db[new] = value
                written.add(new)
            for key in moving:
                if key not in written:
                    del db[key]

    def _getsize_blocking(self, path: str) -> int:
        shared = self._share()
        with self._lock:
            db = self._open_db(shared)
            if path:
                try:
                    return len(db[_encode(path)])
                except KeyError:
                    pass
            prefix = _encode(parent_prefix(path))
            start = len(prefix)
            return sum(len(db[k]) for k in db.keys() if k.startswith(prefix) and b"/" not in k[start:])

    def _flush_blocking(self) -> None:
        lease = self._lease
        if self._writer and lease is not None:
            lease.shared.sync()  # nothing in a forked child: the database is the parent's

    def _close_blocking(self) -> None:
        # The last store of the process on the path syncs and closes the database.
        with self._share_lock:
            self._released = True
            lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    # -- identity and pickling -------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if self._writer:
            # What this store wrote so far reaches the files (dbm.dumb writes its
            # index only on sync). A copy that never wrote flushes nothing.
            with contextlib.suppress(Exception):
                self._flush_blocking()
        return {
            "path": self.path,
            "flag": self.flag,
            "mode": self.mode,
            "open": self.open,
            "write_lock": self.write_lock,
            "dimension_separator": self._dimension_separator,
            "open_kwargs": self.open_kwargs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Opens nothing and takes no lock: dask unpickles tasks where an error kills
        # the worker, and in the scheduler. The copy opens at its first use:
        # read-only for a read, writable (the writer lock) at its first write,
        # which is where StoreLockedError is raised if another process has it.
        self._setup(
            state["path"],
            reopen_flag(state["flag"]),  # a copy must not empty the database it names
            state["mode"],
            state["open"],
            state["write_lock"],
            state["dimension_separator"],
            state["open_kwargs"],
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DBMStore)
            and self.path == other.path
            and self.open == other.open
            and self.open_kwargs == other.open_kwargs
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DBMStore({self.path!r})"
