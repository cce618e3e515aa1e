"""``aiostore copy SRC DST``: :func:`aiostore.copy_store` with a progress display.

On a terminal the progress is a rich bar (keys copied of those found, bytes, rates,
time); into a pipe or a file it is plain lines, one a second at most, which a log
keeps and a script can read:

>>> from aiostore.copying import CopyProgress
>>> print(progress_line(CopyProgress(12_500, False, 12_000, 0, 1_258_291, 0.25)))
copied 12,000/12,500+ keys, 1.2 MiB, 48,000 keys/s, 4.8 MiB/s
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from types import TracebackType
from typing import IO, Literal, cast

import click

from aiostore.cli._common import human_size, opened, run
from aiostore.copying import CopyProgress, copy_store, summary_line

__all__ = ["PlainProgress", "copy", "progress_line"]

IfExists = Literal["raise", "replace", "skip"]


def _keys(progress: CopyProgress) -> str:
    done = progress.keys_copied + progress.keys_skipped
    return f"{done:,}/{progress.keys_found:,}{'' if progress.listing_done else '+'} keys"


def _rates(progress: CopyProgress) -> str:
    elapsed = max(progress.elapsed, 1e-9)
    done = progress.keys_copied + progress.keys_skipped
    return f"{done / elapsed:,.0f} keys/s, {human_size(int(progress.bytes_copied / elapsed))}/s"


def progress_line(progress: CopyProgress, dry_run: bool = False) -> str:
    """One plain line of progress: keys done of found, bytes, rates (and skipped, if any)."""
    skipped = f" ({progress.keys_skipped:,} skipped)" if progress.keys_skipped else ""
    if dry_run:
        rate = (progress.keys_copied + progress.keys_skipped) / max(progress.elapsed, 1e-9)
        return f"dry run: {_keys(progress)}{skipped}, {rate:,.0f} keys/s"
    return f"copied {_keys(progress)}{skipped}, {human_size(progress.bytes_copied)}, {_rates(progress)}"


class PlainProgress:
    """Progress as plain lines on ``stream``: the first batch's at once, then one per ``interval``."""

    def __init__(self, stream: IO[str], interval: float = 1.0, dry_run: bool = False) -> None:
        self.stream = stream
        self.interval = interval
        self.dry_run = dry_run
        self.last: float | None = None

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __call__(self, progress: CopyProgress) -> None:
        now = time.monotonic()
        if self.last is None or now - self.last >= self.interval:
            self.last = now
            self.log(progress_line(progress, self.dry_run))

    def log(self, line: str) -> None:
        """Print a line (and flush: a reader of the pipe sees it now)."""
        click.echo(line, file=self.stream)


class BarProgress:
    """Progress as a rich bar on a terminal; log lines are printed above it."""

    def __init__(self, stream: IO[str], dry_run: bool = False) -> None:
        from rich.console import Console  # rich is imported only for a terminal
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[keys]}"),
            TextColumn("{task.fields[size]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
        )
        self.task = self.progress.add_task(
            "dry run" if dry_run else "copying", total=None, keys="0/0+ keys", size="0 B", rate=""
        )

    def __enter__(self) -> BarProgress:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def __call__(self, progress: CopyProgress) -> None:
        done = progress.keys_copied + progress.keys_skipped
        self.progress.update(
            self.task,
            total=max(progress.keys_found, done, 1),
            completed=done,
            keys=_keys(progress),
            size=human_size(progress.bytes_copied),
            rate=_rates(progress),
        )

    def log(self, line: str) -> None:
        """Print a line above the bar."""
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _display(mode: str, dry_run: bool) -> PlainProgress | BarProgress | None:
    if mode == "auto":
        mode = "bar" if sys.stdout.isatty() else "plain"
    if mode == "bar":
        return BarProgress(sys.stdout, dry_run)
    return PlainProgress(sys.stdout, dry_run=dry_run) if mode == "plain" else None


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--include",
    "includes",
    multiple=True,
    metavar="PATTERN",
    help="Copy keys this regex finds even if excluded (repeatable).",
)
@click.option(
    "--exclude", "excludes", multiple=True, metavar="PATTERN", help="Skip keys this regex finds (repeatable)."
)
@click.option(
    "--if-exists",
    type=click.Choice(["raise", "skip", "replace"]),
    default="raise",
    show_default=True,
    help="A key already in DST: stop with an error, leave it (resume a copy), or overwrite it.",
)
@click.option("-n", "--dry-run", is_flag=True, help="Decide what to copy, and copy nothing.")
@click.option("--source-path", default="", metavar="PATH", help="Copy only the keys under this path of SRC.")
@click.option("--dest-path", default="", metavar="PATH", help="Copy them under this path of DST.")
@click.option(
    "--max-memory", default="64MiB", show_default=True, help="Bytes read and not yet written, at most."
)
@click.option("-v", "--verbose", is_flag=True, help="Print a line per key (zarr's copy log).")
@click.option(
    "--log", "log_file", type=click.Path(dir_okay=False), help="Write the per-key log to this file."
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "bar", "plain", "none"]),
    default="auto",
    show_default=True,
    help="auto: a bar on a terminal, plain lines otherwise.",
)
def copy(
    src: str,
    dst: str,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    if_exists: str,
    dry_run: bool,
    source_path: str,
    dest_path: str,
    max_memory: str,
    verbose: bool,
    log_file: str | None,
    progress_mode: str,
) -> None:
    """Copy every key of SRC into DST (store URLs), as zarr's copy_store does.

    Patterns are regular expressions searched in each key (--exclude '\\.zattrs$');
    --include wins over --exclude. A copy that was stopped part-way is finished
    with --if-exists skip. Progress is a bar on a terminal, plain lines otherwise;
    the last line is zarr's summary.

    \b
    $ aiostore copy data.zarr zip://data.zip
    copied 256/10,000+ keys, 1.0 MiB, 25,600 keys/s, 10.0 MiB/s
    ...
    all done: 10,000 copied, 0 skipped, 41,943,040 bytes copied
    """
    display = _display(progress_mode, dry_run)
    log_stream = open(log_file, "w", encoding="utf-8") if log_file else None  # closed below

    def log(line: str) -> None:
        if verbose and display is not None:
            display.log(line)
        elif verbose:
            click.echo(line)
        if log_stream is not None:
            print(line, file=log_stream, flush=True)

    async def body() -> tuple[int, int, int]:
        async with opened(src, role="source") as source, opened(dst, mode="a", role="destination") as dest:
            with display if display is not None else nullcontext():
                return await copy_store(
                    source,
                    dest,
                    source_path=source_path,
                    dest_path=dest_path,
                    excludes=list(excludes) or None,
                    includes=list(includes) or None,
                    if_exists=cast(IfExists, if_exists),
                    dry_run=dry_run,
                    log=log if verbose or log_stream is not None else None,
                    max_memory=max_memory,
                    progress=display,
                )

    try:
        copied, skipped, nbytes = run(body)
    finally:
        if log_stream is not None:
            log_stream.close()
    if not verbose:  # (the log's last line is this summary already)
        click.echo(summary_line(copied, skipped, nbytes, dry_run))
