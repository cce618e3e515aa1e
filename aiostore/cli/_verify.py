"""``aiostore verify SRC DST``: do two stores hold the same keys and bytes?

The comparison streams: source keys are listed and read from both stores a batch
at a time (batches sized to hold some tens of MiB), then destination keys are
listed and looked up in the source a batch at a time, so stores of millions of
keys are compared in bounded memory.

>>> import anyio
>>> from aiostore import MemoryStore
>>> async def main():
...     a, b = MemoryStore(), MemoryStore()
...     await a.set_many({"x": b"1", "y": b"22", "z": b"3"})
...     await b.set_many({"x": b"1", "y": b"2", "w": b"4"})
...     comparison = StoreComparison(a, b)
...     for difference in [d async for d in comparison.differences()]:
...         print(difference)
...     print(comparison.summary())
>>> anyio.run(main)
differs: y (2 bytes vs 1 bytes)
only in SRC: z
only in DST: w
differ: 3 differences (1 differing, 1 only in SRC, 1 only in DST); SRC 3 keys, DST 3 keys
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import click

from aiostore.abc import Store
from aiostore.cli._common import human_size, opened, run
from aiostore.cli._errors import set_error_exit_code

__all__ = ["Difference", "StoreComparison", "verify"]

ONLY_IN_SOURCE, ONLY_IN_DEST, DIFFERS = "only in SRC", "only in DST", "differs"


@dataclass(frozen=True)
class Difference:
    """One key that is not the same on both sides."""

    kind: str  #: ``"only in SRC"``, ``"only in DST"`` or ``"differs"``
    key: str
    source_size: int | None = None
    dest_size: int | None = None

    def __str__(self) -> str:
        if self.kind == DIFFERS:
            return f"{self.kind}: {self.key} ({self.source_size:,} bytes vs {self.dest_size:,} bytes)"
        return f"{self.kind}: {self.key}"


class StoreComparison:
    """Compares every key and value of two stores; :meth:`differences` streams what differs.

    Parameters
    ----------
    source, dest : Store
    batch_bytes : int
        About how many bytes of values one batch reads from each side.
    """

    def __init__(self, source: Store, dest: Store, batch_bytes: int = 32 * 2**20) -> None:
        self.source = source
        self.dest = dest
        self.batch_bytes = batch_bytes
        #: Keys listed in the source and in the destination.
        self.source_keys = 0
        self.dest_keys = 0
        #: Bytes read from the source.
        self.bytes_compared = 0
        #: How many differences of each kind were found.
        self.counts: Counter[str] = Counter()

    @property
    def equal(self) -> bool:
        """True if no difference was found (meaningful once :meth:`differences` is done)."""
        return not self.counts

    def _next_batch_size(self, keys: int, nbytes: int) -> int:
        average = max(nbytes // max(keys, 1), 1)
        return max(16, min(4096, self.batch_bytes // average))

    def _read_both(self, keys: list[str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
        return self.source.get_many_sync(keys), self.dest.get_many_sync(keys)

    async def _compare(self, keys: list[str]) -> tuple[list[Difference], int]:
        if self.source.supports_sync_io and self.dest.supports_sync_io:
            # Two blocking stores: one side after the other in one worker thread (as
            # copy_store does: two threads reading at once mostly pass the GIL around).
            source, dest = await anyio.to_thread.run_sync(self._read_both, keys)
        else:
            found: dict[str, dict[str, bytes]] = {}

            async def read(side: str, store: Store) -> None:
                found[side] = await store.get_many(keys)

            async with anyio.create_task_group() as group:
                group.start_soon(read, "source", self.source)
                group.start_soon(read, "dest", self.dest)
            source, dest = found.pop("source"), found.pop("dest")
        differences = []
        nbytes = 0
        for key in keys:
            value = source.get(key)
            if value is None:
                continue  # removed from the source while it was compared
            nbytes += len(value)
            other = dest.get(key)
            if other is None:
                differences.append(Difference(ONLY_IN_SOURCE, key, len(value)))
            elif other != value:
                differences.append(Difference(DIFFERS, key, len(value), len(other)))
        return differences, nbytes

    async def differences(self) -> AsyncIterator[Difference]:
        """Each difference, as it is found: source keys first, then keys only in the destination."""
        batch: list[str] = []
        size = 256
        listing = self.source.list()
        while True:
            key = await anext(listing, None)
            if key is not None:
                batch.append(key)
                self.source_keys += 1
                if len(batch) < size:
                    continue
            if batch:
                differences, nbytes = await self._compare(batch)
                self.bytes_compared += nbytes
                size = self._next_batch_size(len(batch), nbytes)
                batch = []
                for difference in differences:
                    self.counts[difference.kind] += 1
                    yield difference
            if key is None:
                break
        async for difference in self._only_in_dest():
            yield difference

    async def _only_in_dest(self) -> AsyncIterator[Difference]:
        batch: list[str] = []
        listing = self.dest.list()
        while True:
            key = await anext(listing, None)
            if key is not None:
                batch.append(key)
                self.dest_keys += 1
                if len(batch) < 4096:
                    continue
            if batch:
                present = await self.source.contains_many(batch)
                for name, here in zip(batch, present, strict=True):
                    if not here:
                        self.counts[ONLY_IN_DEST] += 1
                        yield Difference(ONLY_IN_DEST, name)
                batch = []
            if key is None:
                break

    def summary(self) -> str:
        """One line: ``equal: ...`` or ``differ: ...`` with the counts."""
        if self.equal:
            nbytes = self.bytes_compared
            return f"equal: {self.source_keys:,} keys, {nbytes:,} bytes ({human_size(nbytes)})"
        total = sum(self.counts.values())
        kinds = [(DIFFERS, "differing"), (ONLY_IN_SOURCE, ONLY_IN_SOURCE), (ONLY_IN_DEST, ONLY_IN_DEST)]
        detail = ", ".join(f"{self.counts[kind]:,} {label}" for kind, label in kinds if self.counts[kind])
        return (
            f"differ: {total:,} difference{'s' if total != 1 else ''} ({detail}); "
            f"SRC {self.source_keys:,} keys, DST {self.dest_keys:,} keys"
        )


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--max-lines",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Print at most this many differences (0: all), then how many more there are.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; only the exit status tells.")
@click.pass_context
def verify(ctx: click.Context, src: str, dst: str, max_lines: int, quiet: bool) -> None:
    """Check that DST holds exactly the keys and bytes of SRC.

    Prints each difference ("only in SRC: key", "only in DST: key", "differs:
    key (n bytes vs m bytes)") and a summary line. Exit status 0 if
    the stores are equal, 1 if they differ, 2 on an error.

    \b
    $ aiostore verify data.zarr zip://data.zip
    equal: 1,234 keys, 5,678,901 bytes (5.4 MiB)
    """
    set_error_exit_code(ctx, 2)

    async def body() -> bool:
        async with opened(src, role="source") as source, opened(dst, role="destination") as dest:
            comparison = StoreComparison(source, dest)
            shown = 0
            async for difference in comparison.differences():
                if not quiet and (max_lines == 0 or shown < max_lines):
                    click.echo(str(difference))
                    shown += 1
            hidden = sum(comparison.counts.values()) - shown
            if not quiet:
                if hidden:
                    click.echo(f"... and {hidden:,} more difference{'s' if hidden != 1 else ''}")
                click.echo(comparison.summary())
            return comparison.equal

    if not run(body):
        ctx.exit(1)
