"""``copy_store``: copy the keys of one store into another, in overlapping batches.

zarr 2's ``zarr.copy_store`` reads and writes one key at a time. This one takes
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

from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AsyncExitStack
from typing import IO, Any

from aiostore._protocol.store import Store
from aiostore.copying._engine import (
    MAX_BATCH,
    MIN_BATCH,
    READ_PIECE,
    READERS,
    SORT_WINDOW,
    WRITERS,
    Copy,
    CopyProgress,
    IfExists,
)
from aiostore.copying._parts import Budget, LogLines, compile_patterns
from aiostore.keys import normalize_path
from aiostore.stores.mapping import as_store
from aiostore.stores.urls import open_store, parse_size

__all__ = [
    "MAX_BATCH",
    "MIN_BATCH",
    "READERS",
    "READ_PIECE",
    "SORT_WINDOW",
    "WRITERS",
    "CopyProgress",
    "copy_store",
    "summary_line",
]


def summary_line(n_copied: int, n_skipped: int, n_bytes_copied: int, dry_run: bool = False) -> str:
    """The last line a copy logs, as zarr 2's ``copy_store`` words it.

    >>> summary_line(3, 1, 4096), summary_line(3, 1, 0, dry_run=True)
    ('all done: 3 copied, 1 skipped, 4,096 bytes copied', 'dry run: 3 copied, 1 skipped')
    """
    counts = f"{n_copied:,} copied, {n_skipped:,} skipped"
    return f"dry run: {counts}" if dry_run else f"all done: {counts}, {n_bytes_copied:,} bytes copied"


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

    The arguments, log lines and result of zarr 2's ``zarr.copy_store``, run as
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
    exclude, include = compile_patterns(excludes, flags), compile_patterns(includes, flags)

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
    lines = LogLines(log)
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
            copy = Copy(
                stores[0],
                stores[1],
                f"{source_prefix}/" if source_prefix else "",
                f"{dest_prefix}/" if dest_prefix else "",
                keep if exclude else None,
                if_exists,
                dry_run,
                lines,
                Budget(limit),
                progress,
            )
            await copy.run()
        if lines.write is not None:
            lines.write(summary_line(copy.copied, copy.skipped, copy.nbytes, dry_run))
        return copy.copied, copy.skipped, copy.nbytes
    finally:
        lines.close()
