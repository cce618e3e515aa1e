"""The parts of a copy that know nothing of stores: zarr 2's ``log`` argument, the
budget of bytes in flight, the include/exclude patterns."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from typing import IO, Any

import anyio

__all__ = ["Budget", "LogLines", "compile_patterns", "nbytes_of"]


class LogLines:
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


class Budget:
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


def compile_patterns(patterns: str | Sequence[str] | None, flags: int) -> list[re.Pattern[str]]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    return [re.compile(pattern, flags) for pattern in patterns]


def nbytes_of(value: Any) -> int:
    return value.nbytes if isinstance(value, memoryview) else len(value)
