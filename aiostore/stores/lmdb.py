"""LMDBStore: a store in an LMDB database (via the ``lmdb`` package).

LMDB reads are memory copies done holding the GIL, so splitting a batch over
threads only adds contention: every batch is one thread hop and one
transaction -- one read transaction per ``get_many``, one write transaction per
``set_many`` (all of it committed, or none of it) -- with as little Python per
key as possible.

With ``buffers=True`` (the default) values are read-only memoryviews into
LMDB's map, each keeping its read snapshot open until it is released
(:mod:`~aiostore.stores._lmdbsnapshot`), so a later write never changes one
under its holder; with ``buffers=False`` they are ``bytes`` copied out inside
the transaction.

Examples
--------
>>> import anyio, tempfile, os
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "example.mdb")
>>> async def main():
...     async with LMDBStore(path) as store:
...         await store.set_many({"a/0": b"x", "a/1": b"yz"})
...         found = await store.get_many(["a/0", "a/1", "b"])
...         print({k: bytes(v) for k, v in found.items()}, type(found["a/0"]).__name__)
...         print(await store.listdir("a"))
>>> anyio.run(main)
{'a/0': b'x', 'a/1': b'yz'} memoryview
['0', '1']
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import lmdb  # the py-lmdb package: imports are absolute, so not this module

from aiostore.abc import BlockingStore, Buffer, Request
from aiostore.errors import BackendError, BatchWriteError, ClosedStoreError
from aiostore.keys import KeyLimits, parent_prefix
from aiostore.stores._fsops import fs_path
from aiostore.stores._lmdbenv import SharedEnv, acquire_env, open_settings, release_env
from aiostore.stores._lmdbscan import LIST_CHUNK, after_subtree, list_chunk
from aiostore.stores._lmdbsnapshot import encode_requests, read_buffers, read_copies, readers_full

__all__ = ["LMDBStore"]

R = TypeVar("R")


def _encode(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


class LMDBStore(BlockingStore):
    """Store backed by an LMDB database.

    Parameters
    ----------
    path : str or os.PathLike
        Location of the database (a directory, or a file with ``subdir=False``).
    buffers : bool
        True: ``get``/``get_many`` return read-only memoryviews into LMDB's
        map, with no copy (a byte range is a slice of one). Each keeps its read
        snapshot open until it and every view of it (slices, ``np.frombuffer``)
        is released, so its bytes never change under it, whatever is written
        later (zarr 2's could). Reads with no commit in between share a
        snapshot. The costs of holding buffers for long: LMDB cannot reuse the
        pages a live snapshot can see, so while one lives the file grows
        instead, and the map fills up sooner; the map cannot grow while one
        lives (a write that needs it to waits briefly, then raises
        :class:`~aiostore.errors.BackendError`); and each snapshot holds one
        of ``max_readers`` reader slots. Closing the store with buffers alive
        keeps the environment open (and the buffers readable) until the last
        one is released. A forked child must not use buffers read before the
        fork once it has used the database (its first transaction unmaps them).
        False: values are ``bytes`` copied out inside the transaction.
    read_only : bool
        Open with ``readonly=True``; writes raise :class:`~aiostore.ReadOnlyError`.
        ``readonly=True`` among ``kwargs`` does the same.
    dimension_separator : {".", "/"}, optional
    **kwargs
        Passed to :func:`lmdb.open` (an unknown name or a bad size raises
        ``TypeError``/``ValueError`` naming it), over these defaults, suited to large stores:
        ``map_size`` 1 TiB (address space, not disk; it doubles whenever it
        fills), ``sync=False``, ``metasync=False`` (commits are not flushed to
        disk one by one: :meth:`flush` and :meth:`aclose` do it),
        ``meminit=False``, ``max_spare_txns=0`` (see below), and
        ``writemap=False`` (zarr 2 turns ``writemap`` on under Linux; it is
        slower for databases larger than RAM, makes the data file as large as
        the map, and turns a full disk into a SIGBUS crash instead of an error.
        Do not mix processes with and without it on one database).

    Notes
    -----
    Safe from many threads and tasks, and from several processes (LMDB's own
    locking, ``lock=True``). Stores on the same database in one process share
    one environment: a second store that asks for other settings raises
    :class:`~aiostore.errors.SettingsConflictError` naming them, and one that
    asks for none reports the first one's in :attr:`kwargs`. A path that is not
    an LMDB database raises :class:`~aiostore.errors.BackendError`, as does any
    other LMDB failure (``lmdb.Error`` is its ``__cause__``). When the map
    fills up, the write transaction is aborted (nothing of it is written), the
    map is doubled and the transaction is run again. An environment must not be
    used after ``fork``: a forked child's store opens the child's own before its
    first transaction (``fork`` waits for the transactions in flight; with
    ``max_spare_txns`` above 0 the child's may fail, see ``_lmdbenv``).

    Examples
    --------
    >>> import anyio, tempfile, os
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "data.mdb")
    >>> async def main():
    ...     async with LMDBStore(path) as store:
    ...         await store.set("foo/bar", b"baz")
    ...     async with LMDBStore(path, read_only=True) as store:
    ...         view = await store.get("foo/bar", byte_range=(1, None))  # a memoryview
    ...         print(bytes(view), view.readonly, store.read_only)
    ...     del view  # else it holds the read-only environment open: no writable one yet
    ...     async with LMDBStore(path, buffers=False) as store:
    ...         print(await store.get("foo/bar"))
    >>> anyio.run(main)
    b'az' True True
    b'baz'
    >>> tmp.cleanup()
    """

    split_batches = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        buffers: bool = True,
        *,
        read_only: bool = False,
        dimension_separator: str | None = None,
        **kwargs: Any,
    ) -> None:
        read_only = bool(read_only or kwargs.get("readonly", False))
        super().__init__(read_only=read_only, dimension_separator=dimension_separator)
        settings = open_settings(kwargs, read_only)
        self.path = fs_path(path, type(self).__name__)
        self.buffers = bool(buffers)
        if not read_only and settings.get("create", True):
            # As a directory store would: "data/array.mdb" works without "data/".
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._shared: SharedEnv | None = acquire_env(self.path, settings, read_only, asked=kwargs)
        #: The ``lmdb.open`` settings in effect: those of the environment this
        #: process has open on the database (a second store joins it).
        self.kwargs = {**self._shared.kwargs, "readonly": True} if read_only else dict(self._shared.kwargs)
        self._max_key = self._shared.max_key_size
        self.key_limits = KeyLimits(max_key_bytes=self._max_key)

    @property
    def db(self) -> lmdb.Environment:
        """The underlying ``lmdb.Environment`` (zarr 2's name for it)."""
        return self._env_holder().current_env()

    def _env_holder(self) -> SharedEnv:
        shared = self._shared
        if shared is None:
            raise ClosedStoreError(f"{self!r} is closed")
        return shared

    # -- transactions ------------------------------------------------------------
    def _read(self, fn: Callable[[lmdb.Transaction[Any]], R], buffers: bool = False) -> R:
        """Run ``fn(txn)`` in one read transaction (ended before this returns)."""
        shared = self._env_holder()
        while True:
            env = shared.acquire()
            try:
                txn = env.begin(buffers=True) if buffers else env.begin()
            except lmdb.MapResizedError:
                pass
            except lmdb.ReadersFullError as exc:
                raise readers_full(shared, exc) from exc
            except lmdb.Error as exc:
                raise BackendError(self.path, f"LMDB read failed: {exc}") from exc
            else:
                with txn:
                    return fn(txn)
            finally:
                shared.release()
            shared.adopt_new_size()

    def _write(self, fn: Callable[[lmdb.Transaction[Any]], R]) -> R:
        """Run ``fn(txn)`` in one write transaction: all of it commits or none.

        A full map aborts the transaction, grows the map and runs it again.
        """
        shared = self._env_holder()
        while True:
            env = shared.acquire()
            resizes = shared.resizes
            try:
                with env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapFullError:
                full = True
            except lmdb.MapResizedError:
                full = False
            except lmdb.Error as exc:  # nothing of the transaction was stored
                raise BackendError(self.path, f"LMDB write failed: {exc}") from exc
            finally:
                shared.release()
            if full:
                shared.grow(resizes)
            else:
                shared.adopt_new_size()

    # -- blocking hooks: one transaction per batch ---------------------------------
    def _get_blocking(self, requests: Sequence[Request]) -> list[bytes | None]:
        if not requests:
            return []
        keys, ranges, fast = encode_requests(requests, self._max_key)
        if self.buffers:  # memoryviews, not bytes: Buffer would be the honest type here
            return cast("list[bytes | None]", read_buffers(self._env_holder(), keys, ranges, fast))
        if fast:
            # txn.get copies each value into a new bytes object in C, inside the
            # transaction -- the one copy a safe read needs.
            return self._read(lambda txn: list(map(txn.get, keys)))  # type: ignore[arg-type]
        # With buffers inside the transaction, only the ranges are copied.
        return self._read(partial(read_copies, keys=keys, ranges=ranges), buffers=True)

    def _check_key_size(self, key: str, encoded: bytes) -> None:
        if len(encoded) > self._max_key:
            raise ValueError(
                f"key {key!r} is {len(encoded)} bytes long; LMDB keys are at most {self._max_key} bytes"
            )

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        failed: dict[str, BaseException] = {}
        encoded = list(map(_encode, (key for key, _ in items)))
        pairs = list(zip(encoded, (value for _, value in items), strict=True))
        if encoded and max(map(len, encoded)) > self._max_key:
            for (key, _), (e, _) in zip(items, pairs, strict=True):
                try:
                    self._check_key_size(key, e)
                except ValueError as exc:
                    failed[key] = exc
            pairs = [pair for pair in pairs if len(pair[0]) <= self._max_key]

        def write(txn: lmdb.Transaction[Any]) -> None:
            txn.cursor().putmulti(pairs)  # one C call; every key put (overwrite, no dupsort)

        cause = None
        if pairs:
            try:
                self._write(write)
            except BackendError as exc:  # one transaction: every key of it failed
                failed.update((key, exc) for key, _ in items if key not in failed)
                cause = exc
        if failed:
            raise BatchWriteError(failed) from cause

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        max_key = self._max_key
        missing = [key for key in keys if len(_encode(key)) > max_key]
        encoded = [(key, e) for key, e in zip(keys, map(_encode, keys), strict=True) if len(e) <= max_key]

        def delete(txn: lmdb.Transaction[Any]) -> list[str]:
            remove = txn.delete
            return [key for key, e in encoded if not remove(e)]

        if encoded:
            missing.extend(self._write(delete))
        return missing

    def _contains_blocking(self, key: str) -> bool:
        encoded = _encode(key)
        if len(encoded) > self._max_key:
            return False
        # buffers=True: the value is looked up, never copied.
        return self._read(lambda txn: txn.get(encoded) is not None, buffers=True)

    def _list_blocking(self, prefix: str) -> Iterator[str]:
        encoded = _encode(prefix)
        start: bytes | None = None
        # One short read transaction per chunk, none held while the caller
        # consumes keys: a slow consumer must not pin old pages or hold up a
        # map resize.
        while True:
            keys = self._read(partial(list_chunk, prefix=encoded, after=start))
            for key in keys:
                yield _decode(key)
            if len(keys) < LIST_CHUNK:
                return
            start = keys[-1]

    # -- whole-path operations: one transaction each -------------------------------
    def _listdir_blocking(self, path: str) -> list[str]:
        prefix = _encode(parent_prefix(path))
        cut = len(prefix)

        def scan(txn: lmdb.Transaction[Any]) -> list[str]:
            # A dict as an ordered set: a name can be a key and a "directory" at once.
            names: dict[str, None] = {}
            cursor = txn.cursor()
            found = cursor.set_range(prefix)
            while found:
                key = cursor.key()
                if not key.startswith(prefix):
                    break
                slash = key.find(b"/", cut)
                if slash < 0:
                    names[_decode(key[cut:])] = None
                    found = cursor.next()
                else:
                    # A "directory": name it once and jump past its subtree.
                    names[_decode(key[cut:slash])] = None
                    found = cursor.set_range(after_subtree(key[:slash]))
            return list(names)

        return self._read(scan)

    def _getsize_blocking(self, path: str) -> int:
        prefix = _encode(parent_prefix(path))
        cut = len(prefix)
        target = _encode(path)

        def size(txn: lmdb.Transaction[Any]) -> int:
            if path and len(target) <= self._max_key:
                value = txn.get(target)
                if value is not None:
                    return len(value)
            total = 0
            cursor = txn.cursor()
            found = cursor.set_range(prefix)
            while found:
                key = bytes(cursor.key())
                if not key.startswith(prefix):
                    break
                slash = key.find(b"/", cut)
                if slash < 0:
                    total += len(cursor.value())
                    found = cursor.next()
                else:
                    found = cursor.set_range(after_subtree(key[:slash]))
            return total

        # buffers=True: sizes are read from the pages, nothing is copied.
        return self._read(size, buffers=True)

    def _rmdir_blocking(self, path: str) -> None:
        prefix = _encode(parent_prefix(path))
        shared = self._env_holder()

        def remove(txn: lmdb.Transaction[Any]) -> None:
            if not prefix:  # main_db read now: a forked child opens its own environment first
                txn.drop(shared.main_db, delete=False)
                return
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                while cursor.key().startswith(prefix) and cursor.delete():
                    pass

        self._write(remove)

    def _rename_blocking(self, src: str, dst: str) -> None:
        src_b, dst_b = _encode(src), _encode(dst)
        prefix = src_b + b"/"

        def move(txn: lmdb.Transaction[Any]) -> None:
            moving: list[tuple[bytes, bytes]] = []
            value = txn.get(src_b) if len(src_b) <= self._max_key else None
            if value is not None:
                moving.append((src_b, value))
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                for key, value in cursor.iternext():
                    if not key.startswith(prefix):
                        break
                    moving.append((key, value))
            new_keys = [dst_b + key[len(src_b) :] for key, _ in moving]
            too_long = [k for k in new_keys if len(k) > self._max_key]
            if too_long:
                raise ValueError(
                    f"cannot rename {src!r} to {dst!r}: key {_decode(too_long[0])!r} would be "
                    f"longer than LMDB's {self._max_key} bytes"
                )
            # One transaction: delete then write, so dst may overlap src.
            for key, _ in moving:
                txn.delete(key)
            for new, (_, value) in zip(new_keys, moving, strict=True):
                txn.put(new, value)

        self._write(move)

    def _flush_blocking(self) -> None:
        if self._read_only:
            return
        shared = self._env_holder()
        env = shared.acquire()
        try:
            env.sync(True)
        finally:
            shared.release()

    def _close_blocking(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            release_env(shared)

    # -- identity and pickling ---------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "buffers": self.buffers,
            "read_only": self._read_only,
            "dimension_separator": self._dimension_separator,
            "kwargs": self.kwargs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"],
            buffers=state["buffers"],
            read_only=state["read_only"],
            dimension_separator=state["dimension_separator"],
            **state["kwargs"],
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LMDBStore) and self.path == other.path

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LMDBStore({self.path!r})"
