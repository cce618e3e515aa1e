"""Helpers shared by the benchmark scripts: best-of-N timing, Markdown tables, the machine.

Every ``bench_*.py`` prints Markdown ready to paste into ``benchmarks/RESULTS.md``::

    from _common import Row, best_of, format_table, machine_description

    seconds = best_of(lambda: sum(range(10**6)), repeat=5)
    rows = [Row("aiostore", seconds), Row("other way", 2 * seconds, note="why it differs")]
    print(machine_description(["anyio"]))
    print(format_table("Summing", rows, baseline="aiostore"))

Timing is wall clock (``time.perf_counter``), best of ``repeat`` runs: the minimum is
the run least disturbed by the rest of the machine, which is what a comparison of code
paths wants. ``gc.collect()`` runs before each run, outside the timing. On a shared
machine, :func:`interleaved_best` takes the rounds in turn (way A, B, C, A, B, C, ...)
so that a busy spell slows every way a little rather than one way a lot; the machine
line records the load average, so a reader can tell a quiet run from a busy one.

Only the standard library is imported here, so a benchmark can also run parts of
itself under another interpreter (e.g. a Python with zarr 3) and still use these.
"""

from __future__ import annotations

import datetime
import gc
import importlib.metadata
import os
import platform
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "Row",
    "best_of",
    "format_table",
    "fresh_dir",
    "interleaved_best",
    "machine_description",
    "time_once",
    "time_once_async",
]

T = TypeVar("T")


def time_once(run: Callable[[], T], *, before: Callable[[], Any] | None = None) -> tuple[float, T]:
    """Seconds taken by one call of ``run()``, and what it returned.

    ``before()``, if given, runs untimed first (e.g. to empty a directory a write
    benchmark fills); ``gc.collect()`` too.

    >>> seconds, value = time_once(lambda: 6 * 7)
    >>> value, seconds < 0.1
    (42, True)
    """
    if before is not None:
        before()
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


async def time_once_async(
    run: Callable[[], Awaitable[T]], *, before: Callable[[], Any] | None = None
) -> tuple[float, T]:
    """:func:`time_once` for a coroutine function, timed inside the caller's event
    loop (so starting the loop is not counted)."""
    if before is not None:
        before()
    gc.collect()
    start = time.perf_counter()
    result = await run()
    return time.perf_counter() - start, result


def best_of(run: Callable[[], Any], repeat: int, *, before: Callable[[], Any] | None = None) -> float:
    """Seconds taken by the fastest of ``repeat`` calls of ``run()`` (see :func:`time_once`).

    >>> best_of(lambda: None, repeat=3) < 0.1
    True
    """
    return min(time_once(run, before=before)[0] for _ in range(repeat))


def interleaved_best(runs: Mapping[str, Callable[[int], float]], repeat: int) -> dict[str, float | Exception]:
    """Best of ``repeat`` rounds, each round calling every run once, in turn.

    Each ``runs[name](round)`` does one measurement and returns its seconds.
    Interleaving spreads a noisy neighbour's load over every way instead of
    charging it to whichever way was running at the time. A run that raises is
    not called again; its exception is its result.

    >>> best = interleaved_best({"a": lambda r: 1.0 + r, "b": lambda r: 1 / 0}, repeat=2)
    >>> best["a"], type(best["b"]).__name__
    (1.0, 'ZeroDivisionError')
    """
    best: dict[str, float | Exception] = dict.fromkeys(runs, float("inf"))
    for round_ in range(repeat):
        for name, run in runs.items():
            if isinstance(best[name], Exception):
                continue
            try:
                best[name] = min(best[name], run(round_))  # type: ignore[type-var]
            except Exception as exc:
                best[name] = exc
    return best


def fresh_dir(path: str) -> None:
    """Make ``path`` an empty directory and flush dirty pages to disk.

    Used before each run of a write benchmark: every run starts from the same
    state, and write-back of the previous run's files does not land inside the
    next run's timing.
    """
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.sync()


@dataclass
class Row:
    """One line of a results table.

    Parameters
    ----------
    name : str
        The way measured, e.g. ``"aiostore DirectoryStore.get_many"``.
    seconds : float or None
        Best time; None when the way could not run (``note`` says why).
    note : str
        What differs about this way (atomic or not, thread count, skip reason).
    """

    name: str
    seconds: float | None
    note: str = ""


def format_table(title: str, rows: Sequence[Row], baseline: str, label: str | None = None) -> str:
    """A Markdown table of ``rows`` with each time's ratio to the row named ``baseline``.

    A ratio above 1 means slower than the baseline. The ratio column is headed
    ``vs label`` (``label`` defaults to ``baseline``).

    >>> print(format_table("Reads", [Row("a", 0.5), Row("b", 1.0, "slow"), Row("c", None, "skipped")], "a"))
    **Reads**
    <BLANKLINE>
    | way | seconds | vs a | note |
    | --- | ---: | ---: | --- |
    | a | 0.500 | 1.00 |  |
    | b | 1.000 | 2.00 | slow |
    | c | - | - | skipped |
    """
    base = next((r.seconds for r in rows if r.name == baseline), None)
    lines = [
        f"**{title}**",
        "",
        f"| way | seconds | vs {label or baseline} | note |",
        "| --- | ---: | ---: | --- |",
    ]
    for row in rows:
        if row.seconds is None:
            lines.append(f"| {row.name} | - | - | {row.note} |")
            continue
        ratio = f"{row.seconds / base:.2f}" if base else "-"
        lines.append(f"| {row.name} | {row.seconds:.3f} | {ratio} | {row.note} |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(packages: Sequence[str] = ()) -> str:
    """One line naming the date, CPU, usable cores, load average, OS, Python and
    ``packages``' versions.

    >>> "Python" in machine_description(["no-such-package"])
    True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    parts = [
        datetime.date.today().isoformat(),
        f"{_cpu_model()}, {cores} cores, load average {os.getloadavg()[0]:.1f}",
        f"{platform.system()} {platform.release()}",
        f"Python {sys.version.split()[0]}",
        *versions,
    ]
    return "; ".join(parts)
