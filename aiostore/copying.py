"""``copy_store``: copy the keys of one store into another, in overlapping batches.

zarr 2's :func:`zarr.copy_store` reads and writes one key at a time. This one takes
the same arguments and logs the same lines, and runs three stages at once over any
two stores: a listing, streamed and filtered; reads in batches (``get_many``); writes
in batches (``set_many``: one LMDB transaction, one Zip append, files written by a
few threads). The bytes read and not yet written stay under ``max_memory`` (one
batch more per reader), so a store of any size copies in a fixed budget.

>>> import anyio, aiostore
>>> async def main():
...     source, dest = aiostore.MemoryStore(), aiostore.MemoryStore()
...     await source.set_many({".zgroup": b"{}", "a/.zarray": b"{}", "a/0": b"xyz"})
...     return await aiostore.copy_store(source, dest, log=print), await dest.get("a/0")
>>> anyio.run(main)
copy .zgroup
copy a/.zarray
copy a/0
all done: 3 copied, 0 skipped, 7 bytes copied
((3, 0, 7), b'xyz')
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Callable, Coroutine, MutableMapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import IO, Any, Literal

import anyio

from aiostore._protocol.store import Store
from aiostore.errors import CopyError
from aiostore.keys import normalize_path
from aiostore.stores.mapping import as_store
from aiostore.stores.urls import open_store, parse_size

__all__ = ["CopyProgress", "copy_store"]

IfExists = Literal["raise", "replace", "skip"]
#: Source keys sorted together before they are copied: a store with at most this many
#: keys under ``source_path`` is copied (and logged) in sorted order, as zarr 2 does.
SORT_WINDOW = 10_000
#: Keys per batch: the first batch, and the bounds of later ones (sized from the mean
#: value size seen so far to about an eighth of ``max_memory``).
FIRST_BATCH, MIN_BATCH, MAX_BATCH = 16, 16, 4096
#: Batches read at once; batches written at once (1 for a store with one writer).
READERS, WRITERS = 2, 2


@dataclass(frozen=True)
class CopyProgress:
    """Where a :func:`copy_store` stands, given to its ``progress`` callback.

    ``keys_found`` grows while the source is listed; once ``listing_done`` it is
    the number of keys the copy will handle (copied plus skipped, at the end).
    """

    keys_found: int
    listing_done: bool
    keys_copied: int
    keys_skipped: int
    bytes_copied: int
    elapsed: float


class _LogLines:
    """zarr 2's ``log`` argument: a callable, a file path (written) or a file-like object."""

    def __init__(self, log: Callable[[str], object] | str | IO[str] | None) -> None:
        self.write: Callable[[str], object] | None = None
        self.file: IO[str] | None = None
        self.owned = isinstance(log, str)
        if log is None:
            return
        if callable(log):
            self.write = log
        elif isinstance(log, str):
            self.file = builtins.open(log, "w", encoding="utf-8")  # closed in close()
            self.write = self._to_file
        elif hasattr(log, "write"):
            self.write = self._to_file
            self.file = log
        else:
            raise TypeError(f"log must be a callable, a file path or a file-like object, not {log!r}")

    def _to_file(self, line: str) -> None:
        assert self.file is not None
        print(line, file=self.file)
        flush = getattr(self.file, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        if self.file is not None and self.owned:
            self.file.close()


class _Budget:
    """Bytes read and not yet written: readers wait while they are at the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = anyio.Event()

    async def wait_for_room(self) -> None:
        while self.used >= self.limit:
            await self._freed.wait()

    def release(self, nbytes: int) -> None:
        self.used -= nbytes
        self._freed.set()
        self._freed = anyio.Event()


def _patterns(patterns: str | Sequence[str] | None, flags: int) -> list[re.Pattern[str]]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    return [re.compile(pattern, flags) for pattern in patterns]


def _nbytes(value: Any) -> int:
    return value.nbytes if isinstance(value, memoryview) else len(value)


class _Copy:
    """One copy: its settings, counters and the stages that share them."""

    def __init__(
        self,
        source: Store,
        dest: Store,
        source_prefix: str,
        dest_prefix: str,
        keep: Callable[[str], bool],
        if_exists: IfExists,
        dry_run: bool,
        log: _LogLines,
        budget: _Budget,
        progress: Callable[[CopyProgress], object] | None,
    ) -> None:
        self.source, self.dest = source, dest
        self.source_prefix, self.dest_prefix = source_prefix, dest_prefix
        self.keep, self.if_exists, self.dry_run = keep, if_exists, dry_run
        self.log, self.budget, self.progress = log, budget, progress
        self.started = time.perf_counter()
        self.found = self.copied = self.skipped = self.nbytes = 0
        self.listing_done = False
        self.mean_size = 0.0
        self.sized = 0  # values the mean is over
        self.check_dest = if_exists != "replace"
        self.error: Exception | None = None

    def report(self) -> None:
        if self.progress is not None:
            self.progress(
                CopyProgress(
                    self.found,
                    self.listing_done,
                    self.copied,
                    self.skipped,
                    self.nbytes,
                    time.perf_counter() - self.started,
                )
            )

    def batch_size(self) -> int:
        if not self.mean_size:
            return FIRST_BATCH
        wanted = int(self.budget.limit / 8 / max(self.mean_size, 1.0))
        return max(MIN_BATCH, min(MAX_BATCH, wanted))

    async def run(self) -> None:
        if self.check_dest:
            # An empty destination has nothing to clash with: no existence checks.
            async for _ in self.dest.list(self.dest_prefix):
                break
            else:
                self.check_dest = False
        to_read, reads = anyio.create_memory_object_stream[list[tuple[str, str]]](READERS)
        to_write, writes = anyio.create_memory_object_stream[tuple[list[tuple[str, Any]], int]](READERS)
        writers = WRITERS if getattr(self.dest, "split_writes", True) else 1
        async with anyio.create_task_group() as group:
            cancel = group.cancel_scope.cancel
            group.start_soon(self.stage, cancel, self.list_and_decide(to_read))
            if self.source.supports_sync_io and self.dest.supports_sync_io:
                group.start_soon(self.stage, cancel, self.copy_in_thread(reads))
                to_write.close()
                writes.close()
            else:
                async with to_write:
                    for _ in range(READERS):
                        group.start_soon(self.stage, cancel, self.read(reads.clone(), to_write.clone()))
                reads.close()
                for _ in range(writers):
                    group.start_soon(self.stage, cancel, self.write(writes.clone()))
                writes.close()
        if self.error is not None:
            raise self.error
        self.report()

    async def stage(self, cancel: Callable[[], None], work: Coroutine[Any, Any, None]) -> None:
        """Run one stage; its error stops the others and is what the copy raises."""
        try:
            await work
        except Exception as exc:
            if self.error is None:
                self.error = exc
            cancel()

    async def list_and_decide(self, to_read: anyio.abc.ObjectSendStream[list[tuple[str, str]]]) -> None:
        async with to_read:
            window: list[str] = []
            async for key in self.source.list(self.source_prefix):
                if self.keep(key):
                    window.append(key)
                    self.found += 1
                    if len(window) >= SORT_WINDOW:
                        await self.decide(sorted(window), to_read)
                        window = []
            self.listing_done = True
            await self.decide(sorted(window), to_read)

    async def decide(
        self, keys: list[str], to_read: anyio.abc.ObjectSendStream[list[tuple[str, str]]]
    ) -> None:
        """Log and count each key of a sorted window, in order; send the ones to copy."""
        start = 0
        while start < len(keys):
            batch = keys[start : start + self.batch_size()]
            start += len(batch)
            strip = len(self.source_prefix)
            pairs = [(key, self.dest_prefix + key[strip:]) for key in batch]
            present = await self.existing([dest_key for _, dest_key in pairs])
            chosen = []
            for source_key, dest_key in pairs:
                descr = source_key if dest_key == source_key else f"{source_key} -> {dest_key}"
                if dest_key in present:
                    if self.if_exists == "raise":
                        raise CopyError(f"key {dest_key!r} exists in destination")
                    self.skipped += 1
                    if self.log.write is not None:
                        self.log.write(f"skip {descr}")
                    continue
                if self.log.write is not None:
                    self.log.write(f"copy {descr}")
                chosen.append((source_key, dest_key))
            if self.dry_run:
                self.copied += len(chosen)
                self.report()
            elif chosen:
                await to_read.send(chosen)

    async def existing(self, dest_keys: list[str]) -> set[str]:
        if not self.check_dest:
            return set()
        normalized = [self.dest.check_key(key) for key in dest_keys]
        unique = list(dict.fromkeys(normalized))
        answers = dict(zip(unique, await self.dest.contains_many(unique), strict=True))
        return {key for key, norm in zip(dest_keys, normalized, strict=True) if answers[norm]}

    async def copy_in_thread(self, reads: anyio.abc.ObjectReceiveStream[list[tuple[str, str]]]) -> None:
        """Two blocking stores: each batch read, then written, in one worker thread.

        Measured: reads and writes in two threads at once (or a batch's reads fanned
        out while another thread writes) were slower than one after the other -- the
        work holds the GIL most of the time, and a thread back from a syscall waits
        for it -- so the listing is what overlaps here, and batches go one at a time.
        """
        async with reads:
            async for pairs in reads:
                copied, nbytes = await anyio.to_thread.run_sync(self.copy_batch, pairs)
                self.copied += copied
                self.nbytes += nbytes
                self.report()

    def copy_batch(self, pairs: list[tuple[str, str]]) -> tuple[int, int]:
        values = self.source.get_many_sync([source_key for source_key, _ in pairs])
        items = [(dest_key, values[key]) for key, dest_key in pairs if key in values]
        nbytes = self.measure(items)
        if items:
            self.dest.set_many_sync(items)
        return len(items), nbytes

    def measure(self, items: list[tuple[str, Any]]) -> int:
        """The bytes of a batch read; keeps the mean value size the batches are sized by."""
        nbytes = sum(map(_nbytes, (value for _, value in items)))
        if items:
            self.sized += len(items)
            self.mean_size += (nbytes / len(items) - self.mean_size) * len(items) / self.sized
        return nbytes

    async def read(
        self,
        reads: anyio.abc.ObjectReceiveStream[list[tuple[str, str]]],
        to_write: anyio.abc.ObjectSendStream[tuple[list[tuple[str, Any]], int]],
    ) -> None:
        async with reads, to_write:
            async for pairs in reads:
                await self.budget.wait_for_room()
                values = await self.source.get_many([source_key for source_key, _ in pairs])
                # A key deleted since it was listed is not copied (and not counted).
                items = [(dest_key, values[key]) for key, dest_key in pairs if key in values]
                nbytes = self.measure(items)
                self.budget.used += nbytes
                await to_write.send((items, nbytes))

    async def write(self, writes: anyio.abc.ObjectReceiveStream[tuple[list[tuple[str, Any]], int]]) -> None:
        async with writes:
            async for items, nbytes in writes:
                try:
                    if items:
                        await self.dest.set_many(items)
                finally:
                    self.budget.release(nbytes)
                self.copied += len(items)
                self.nbytes += nbytes
                self.report()


async def copy_store(
    source: Store | MutableMapping[str, Any] | str,
    dest: Store | MutableMapping[str, Any] | str,
    source_path: str = "",
    dest_path: str = "",
    excludes: str | Sequence[str] | None = None,
    includes: str | Sequence[str] | None = None,
    flags: int = 0,
    if_exists: IfExists = "raise",
    dry_run: bool = False,
    log: Callable[[str], object] | str | IO[str] | None = None,
    *,
    max_memory: int | str = "64MiB",
    progress: Callable[[CopyProgress], object] | None = None,
) -> tuple[int, int, int]:
    """Copy every key under ``source_path`` of ``source`` to ``dest_path`` of ``dest``.

    The arguments, log lines and result of zarr 2's :func:`zarr.copy_store`, run as
    concurrent batches: the listing, the reads and the writes overlap, and the bytes
    read but not yet written stay within ``max_memory``.

    Parameters
    ----------
    source, dest
        aiostore stores, any ``MutableMapping`` (wrapped, as :func:`aiostore.as_store`
        does), or store URLs (:func:`aiostore.open_store`; the source opened with
        ``mode="r"``, the destination with ``mode="a"``, both closed at the end).
    source_path, dest_path : str
        Copy the keys below ``source_path`` to below ``dest_path``.
    excludes, includes : str or sequence of str, optional
        Regular expressions searched in each source key: a key any ``excludes``
        matches is not copied, unless an ``includes`` matches it too.
    flags : int
        :mod:`re` flags of those expressions.
    if_exists : {"raise", "replace", "skip"}
        A key already in ``dest``: raise :class:`~aiostore.CopyError` (nothing of
        that batch written), overwrite it, or leave it. ``"skip"`` finishes an
        interrupted copy: the keys it had written are skipped.
    dry_run : bool
        Decide and log, read and write nothing.
    log : callable, file path or file-like, optional
        Gets a line per key (``copy <key>``, ``skip <key>``, ``<key> -> <dest key>``
        when renamed) and a summary line, as zarr 2's.
    max_memory : int or str
        Bytes read and not yet written, at most (``"256MiB"``, ``"1GB"``); a batch
        per reader more while one is being read. Any value is at least one batch.
    progress : callable, optional
        Called with a :class:`CopyProgress` after each batch and at the end.

    Returns
    -------
    (n_copied, n_skipped, n_bytes_copied) : tuple of int

    Keys are copied in the order the source lists them, sorted in windows of
    :data:`SORT_WINDOW` keys (so all sorted, as in zarr 2, below that many).
    """
    if if_exists not in ("raise", "replace", "skip"):
        raise ValueError(f"if_exists must be one of ['raise', 'replace', 'skip']; found {if_exists!r}")
    limit = parse_size(max_memory) if isinstance(max_memory, str) else max_memory
    if not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"max_memory must be a positive number of bytes, not {max_memory!r}")
    exclude, include = _patterns(excludes, flags), _patterns(includes, flags)

    def keep(key: str) -> bool:
        if not any(p.search(key) for p in exclude):
            return True
        return any(p.search(key) for p in include)

    source_prefix = normalize_path(source_path)
    dest_prefix = normalize_path(dest_path)
    if source is dest and (f"{dest_prefix}/".startswith(f"{source_prefix}/") or not source_prefix):
        raise ValueError(
            f"cannot copy {source_path!r} into {dest_path!r} of the same store: it is inside the source"
        )
    lines = _LogLines(log)
    try:
        async with AsyncExitStack() as stack:
            stores = []
            for store, mode in ((source, "r"), (dest, "a")):
                if isinstance(store, str):
                    opened = await open_store(store, mode=mode)
                    stack.push_async_callback(opened.aclose)
                    stores.append(opened)
                else:
                    stores.append(as_store(store))
            copy = _Copy(
                stores[0],
                stores[1],
                f"{source_prefix}/" if source_prefix else "",
                f"{dest_prefix}/" if dest_prefix else "",
                keep if exclude else (lambda key: True),
                if_exists,
                dry_run,
                lines,
                _Budget(limit),
                progress,
            )
            await copy.run()
        if lines.write is not None:
            summary = f"{copy.copied:,} copied, {copy.skipped:,} skipped"
            if dry_run:
                lines.write(f"dry run: {summary}")
            else:
                lines.write(f"all done: {summary}, {copy.nbytes:,} bytes copied")
        return copy.copied, copy.skipped, copy.nbytes
    finally:
        lines.close()
