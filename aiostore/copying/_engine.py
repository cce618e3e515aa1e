"""The copy itself: :class:`Copy` lists, decides, reads and writes; :func:`aiostore.copy_store`
sets it up (see :mod:`aiostore.copying`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

import anyio

from aiostore._protocol.store import Store
from aiostore.copying._parts import Budget, LogLines, nbytes_of
from aiostore.errors import CopyError

__all__ = [
    "MAX_BATCH",
    "MIN_BATCH",
    "READERS",
    "READ_PIECE",
    "SORT_WINDOW",
    "WRITERS",
    "Copy",
    "CopyProgress",
]

IfExists = Literal["raise", "replace", "skip"]
#: Source keys sorted together before they are copied: a store with at most this many
#: keys under ``source_path`` is copied (and logged) in sorted order, as zarr 2 does.
SORT_WINDOW = 10_000
#: Keys in the first batch: one, as nothing is known of the values' sizes yet (later ones
#: are sized from the mean value size seen so far to about an eighth of ``max_memory``,
#: within :data:`MIN_BATCH` and :data:`MAX_BATCH`), so values of any size keep the budget.
FIRST_BATCH = 1
#: Fewest keys in a batch: one value larger than the budget is copied alone.
MIN_BATCH = 1
#: Most keys in a batch.
MAX_BATCH = 4096
#: Keys per ``get_many_sync`` call when both stores are blocking ones. A read fans out
#: over threads only when a piece's work left would give each thread >= 2 ms: a cold or
#: slow source still does; page-cache hits (~5 µs a key) stay on one thread even when
#: the machine is busy and the reader looks like it waits (measured: fanned-out warm
#: reads beside the writes were 1.2-1.5x slower than one thread).
READ_PIECE = 128
#: Batches read at once (when a store is natively async).
READERS = 2
#: Batches written at once (1 for a store with one writer, such as a Zip file).
WRITERS = 2


@dataclass(frozen=True)
class CopyProgress:
    """Where a :func:`aiostore.copy_store` stands, given to its ``progress`` callback.

    ``keys_found`` grows while the source is listed; once ``listing_done`` it is
    the number of keys the copy will handle (copied plus skipped, at the end).
    """

    keys_found: int
    listing_done: bool
    keys_copied: int
    keys_skipped: int
    bytes_copied: int
    elapsed: float


class Copy:
    """One copy: its settings, counters and the stages that share them."""

    def __init__(
        self,
        source: Store,
        dest: Store,
        source_prefix: str,
        dest_prefix: str,
        keep: Callable[[str], bool] | None,
        if_exists: IfExists,
        dry_run: bool,
        log: LogLines,
        budget: Budget,
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
        if self.source.supports_sync_io and self.dest.supports_sync_io:
            await anyio.to_thread.run_sync(self.copy_in_thread)
            self.report()
            return
        to_read, reads = anyio.create_memory_object_stream[list[tuple[str, str]]](READERS)
        to_write, writes = anyio.create_memory_object_stream[tuple[list[tuple[str, Any]], int]](READERS)
        writers = WRITERS if getattr(self.dest, "split_writes", True) else 1
        async with anyio.create_task_group() as group:
            cancel = group.cancel_scope.cancel
            group.start_soon(self.stage, cancel, self.list_and_decide(to_read))
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

    def kept(self, page: list[str]) -> list[str]:
        """The keys of a page of the listing that the filters keep, counted and sorted."""
        kept = page if self.keep is None else list(filter(self.keep, page))
        self.found += len(kept)
        return sorted(kept)

    def batches(self, window: list[str]) -> Iterator[list[tuple[str, str]]]:
        """``(source key, dest key)`` pairs of a window, in batches sized by :meth:`batch_size`."""
        start, strip = 0, len(self.source_prefix)
        while start < len(window):
            batch = window[start : start + self.batch_size()]
            start += len(batch)
            if strip or self.dest_prefix:
                yield [(key, self.dest_prefix + key[strip:]) for key in batch]
            else:
                yield list(zip(batch, batch, strict=True))  # each key to itself

    def choose(
        self, pairs: list[tuple[str, str]], present: set[str]
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """Count each pair, in order: the pairs to copy and the log lines (CopyError for a clash)."""
        if not present and self.log.write is None:
            if self.dry_run:
                self.copied += len(pairs)
            return pairs, []
        chosen, lines = [], []
        logging = self.log.write is not None
        for source_key, dest_key in pairs:
            if dest_key in present:
                if self.if_exists == "raise":
                    raise CopyError(f"key {dest_key!r} exists in destination")
                self.skipped += 1
                if logging:
                    lines.append(f"skip {source_key}" + ("" if dest_key == source_key else f" -> {dest_key}"))
                continue
            if logging:
                lines.append(f"copy {source_key}" + ("" if dest_key == source_key else f" -> {dest_key}"))
            chosen.append((source_key, dest_key))
        if self.dry_run:
            self.copied += len(chosen)
        return chosen, lines

    def to_ask(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        """``{dest key: as the destination stores it}`` for the keys to ask it about (none if
        it started empty); its values, once each, are what ``contains_many`` is given."""
        if not self.check_dest:
            return {}
        return {dest_key: self.dest.check_key(dest_key) for _, dest_key in pairs}

    @staticmethod
    def present(asked: dict[str, str], unique: list[str], answers: list[bool]) -> set[str]:
        """The asked destination keys it holds, from its ``answers`` for ``unique``."""
        found = dict(zip(unique, answers, strict=True))
        return {key for key, normalized in asked.items() if found[normalized]}

    def write_lines(self, lines: list[str]) -> None:
        if self.log.write is not None:
            for line in lines:
                self.log.write(line)

    # -- two blocking stores: one worker thread -----------------------------------------
    def copy_in_thread(self) -> None:
        """Two blocking stores: list, read and write one batch after another, in this thread.

        Measured (100,000 warm files into LMDB, 2 cores): any overlap was slower. The
        listing in another thread at the same time made the copy 1.8x slower, reads and
        writes in two threads were no faster than one after the other, and reads fanned
        out beside the writes 1.2-1.5x slower: all of it holds the GIL most of the time,
        and a thread back from a syscall waits for it. The log lines and ``progress``
        are delivered to the event loop once a batch.
        """
        page: list[str] = []
        for key in chain(self.source.list_sync(self.source_prefix), [None]):
            if key is not None:
                page.append(key)
                if len(page) < SORT_WINDOW:
                    continue
            else:
                self.listing_done = True
            self.copy_window_in_thread(self.kept(page))
            page = []

    def copy_window_in_thread(self, window: list[str]) -> None:
        for pairs in self.batches(window):
            anyio.from_thread.check_cancelled()
            asked = self.to_ask(pairs)
            unique = list(dict.fromkeys(asked.values()))
            answers = self.dest.contains_many_sync(unique) if unique else []
            chosen, lines = self.choose(pairs, self.present(asked, unique, answers))
            copied = nbytes = 0
            if chosen and not self.dry_run:
                copied, nbytes = self.copy_batch(chosen)
            anyio.from_thread.run_sync(self.deliver, lines, copied, nbytes)

    def deliver(self, lines: list[str], copied: int, nbytes: int) -> None:
        self.write_lines(lines)
        self.copied += copied
        self.nbytes += nbytes
        self.report()

    def copy_batch(self, pairs: list[tuple[str, str]]) -> tuple[int, int]:
        keys = [source_key for source_key, _ in pairs]
        values: dict[str, Any] = {}
        # A backend that never splits a batch over threads (LMDB) reads it in one call.
        piece = READ_PIECE if getattr(self.source, "split_batches", False) else len(keys)
        for start in range(0, len(keys), piece):
            values.update(self.source.get_many_sync(keys[start : start + piece]))
        # A key deleted since it was listed is not copied (and not counted).
        if len(values) == len(pairs) and all(map(str.__eq__, keys, (dest for _, dest in pairs))):
            items = list(values.items())  # every key found, to itself
        else:
            items = [(dest_key, values[key]) for key, dest_key in pairs if key in values]
        nbytes = self.measure(items)
        if items:
            self.dest.set_many_sync(items)
        return len(items), nbytes

    # -- otherwise: concurrent stages on the event loop ---------------------------------
    async def list_and_decide(self, to_read: anyio.abc.ObjectSendStream[list[tuple[str, str]]]) -> None:
        async with to_read:
            page: list[str] = []
            async for key in self.source.list(self.source_prefix):
                page.append(key)
                if len(page) >= SORT_WINDOW:
                    await self.decide(self.kept(page), to_read)
                    page = []
            self.listing_done = True
            await self.decide(self.kept(page), to_read)

    async def decide(
        self, window: list[str], to_read: anyio.abc.ObjectSendStream[list[tuple[str, str]]]
    ) -> None:
        for pairs in self.batches(window):
            asked = self.to_ask(pairs)
            unique = list(dict.fromkeys(asked.values()))
            answers = await self.dest.contains_many(unique) if unique else []
            chosen, lines = self.choose(pairs, self.present(asked, unique, answers))
            self.write_lines(lines)
            if self.dry_run:
                self.report()
            elif chosen:
                await to_read.send(chosen)

    def measure(self, items: list[tuple[str, Any]]) -> int:
        """The bytes of a batch read; keeps the mean value size the batches are sized by."""
        nbytes = sum(map(nbytes_of, (value for _, value in items)))
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
