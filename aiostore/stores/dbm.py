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

from aiostore.abc import BlockingStore, Buffer, Request, delete_each, read_each, write_each
from aiostore.errors import BackendError, ClosedStoreError
from aiostore.keys import parent_prefix
from aiostore.stores._fsops import fs_path
from aiostore.stores._writerlock import WriterLock, lock_for_writing

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
        ``False`` no lock is taken, as in zarr 2: only for a single-threaded
        caller or a dbm implementation that locks for itself.
    dimension_separator : {".", "/"}, optional
    **open_kwargs
        Passed to ``open``.

    Notes
    -----
    Call :meth:`aclose` (or use ``async with``) when done: some
    implementations (``dbm.dumb``) write their index only on sync or close.
    Keys are stored as UTF-8 bytes. One process writes a database at a time:
    a writable store holds an exclusive lock on ``<path>.lock`` while open, and
    a writer in another process is refused at open with
    :class:`~aiostore.errors.StoreLockedError` (stores of one process share the
    lock; ``flag="r"`` takes none). A file that is not a database of this
    ``open`` raises :class:`~aiostore.errors.BackendError` naming the path.

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
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if write_lock else contextlib.nullcontext()
        )
        if flag[0] in "cn":
            # As a directory store would: "data/array.db" works without "data/".
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        #: The open dbm object (None once closed).
        self.db: Any = None
        self._writer_lock = self._lock_for_writing()
        try:
            self.db = self._open_file(flag)
        except BaseException:
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        if self._writer_lock is not None:
            weakref.finalize(self, self._writer_lock.release)

    def _lock_for_writing(self) -> WriterLock | None:
        """One writing process at a time (a ``<path>.lock`` file): each writer keeps
        its own index, so two would lose each other's keys."""
        if self._read_only:
            return None
        try:
            return lock_for_writing(self.path, "DBMStore", sidecar=True, read_mode="flag='r'")
        except FileNotFoundError:
            return None  # no such directory: opening the database says so

    def _open_file(self, flag: str) -> Any:
        try:
            return self.open(self.path, flag, self.mode, **self.open_kwargs)
        except OSError as exc:
            if exc.errno is not None and exc.filename is not None:
                raise  # a file-system error, naming its file
            raise BackendError(self.path, f"cannot open it as a DBM database ({exc})") from exc
        except Exception as exc:  # dbm.error, or a dbm.dumb index that does not parse
            raise BackendError(
                self.path, f"cannot open it as a DBM database ({type(exc).__name__}: {exc})"
            ) from exc

    def _open_db(self) -> Any:
        """The dbm object; call with the lock held."""
        db = self.db
        if db is None:
            raise ClosedStoreError(f"{self!r} is closed")
        return db

    # -- blocking hooks: one lock hold per batch ------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        with self._lock:
            db = self._open_db()

            def read(key: str) -> bytes | None:
                try:  # not db.get: not every dbm-style object has it
                    return _as_bytes(db[_encode(key)])
                except KeyError:
                    return None

            return read_each(requests, read)

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        with self._lock:
            db = self._open_db()
            write_each(items, lambda key, value: db.__setitem__(_encode(key), bytes(value)))

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        with self._lock:
            db = self._open_db()
            return delete_each(keys, lambda key: db.__delitem__(_encode(key)))

    def _contains_blocking(self, key: str) -> bool:
        with self._lock:
            return _encode(key) in self._open_db()

    def _raw_keys(self) -> list[bytes]:
        with self._lock:
            return list(self._open_db().keys())

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
        with self._lock:
            db = self._open_db()
            for key in self._keys_below(db, path):
                del db[key]

    def _rename_blocking(self, src: str, dst: str) -> None:
        src_b, dst_b = _encode(src), _encode(dst)
        with self._lock:
            db = self._open_db()
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
        with self._lock:
            db = self._open_db()
            if path:
                try:
                    return len(db[_encode(path)])
                except KeyError:
                    pass
            prefix = _encode(parent_prefix(path))
            start = len(prefix)
            return sum(len(db[k]) for k in db.keys() if k.startswith(prefix) and b"/" not in k[start:])

    def _flush_blocking(self) -> None:
        if self._read_only:
            return
        with self._lock:
            db = self._open_db()
            sync = getattr(db, "sync", None)
            if sync is not None:
                sync()
            else:
                # dbm.ndbm has no sync: closing writes everything; reopen
                # without "n", which would empty the database.
                db.close()
                self.db = None
                self.db = self._open_file(self._reopen_flag_of(self.flag))

    def _close_blocking(self) -> None:
        with self._lock:
            db, self.db = self.db, None
            try:
                close = getattr(db, "close", None)
                if close is not None:
                    close()
            finally:
                if self._writer_lock is not None:
                    self._writer_lock.release()

    # -- identity and pickling -------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if self.db is not None and not self._read_only:
            # Another process reopening the file must see the writes so far
            # (dbm.dumb writes its index only on sync).
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
        self.__init__(  # type: ignore[misc]
            state["path"],
            flag=self._reopen_flag_of(state["flag"]),
            mode=state["mode"],
            open=state["open"],
            write_lock=state["write_lock"],
            dimension_separator=state["dimension_separator"],
            **state["open_kwargs"],
        )

    @staticmethod
    def _reopen_flag_of(flag: str) -> str:
        # A store unpickled elsewhere must not empty the database it names.
        return "c" + flag[1:] if flag[0] == "n" else flag

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
