"""``StoreHooks``: the hooks a natively async backend writes, and the fallbacks
of the optional ones, built on the five it must write.

The base of :class:`aiostore.abc.Store`, which adds the public methods that
check arguments and call these; see its docstring for the list.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

import anyio

from aiostore._protocol.checks import Buffer, ByteRange, Request, child_name
from aiostore.errors import BatchWriteError
from aiostore.keys import parent_prefix

__all__ = ["CONTAINS_CONCURRENCY", "StoreHooks"]

#: How many ``_contains`` calls the fallback of ``_contains_many`` runs at once.
CONTAINS_CONCURRENCY = 64


class StoreHooks(abc.ABC):
    """The async hooks of a store: five abstract, the rest with fallbacks.

    Hooks receive normalized keys, checked byte ranges and flat byte buffers:
    the public methods of :class:`~aiostore.abc.Store` check everything first.
    """

    # -- hooks: a natively async backend writes these ------------------------
    @abc.abstractmethod
    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        """Return the value (or the byte range of it); ``KeyError`` if missing."""

    @abc.abstractmethod
    async def _set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key``, replacing it atomically."""

    @abc.abstractmethod
    async def _delete(self, key: str) -> None:
        """Remove ``key``; ``KeyError`` if missing."""

    @abc.abstractmethod
    async def _contains(self, key: str) -> bool:
        """Return whether ``key`` holds a value."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> AsyncIterator[str]:
        """Yield every key that starts with ``prefix`` (a plain string prefix)."""

    # -- hooks with fallbacks: override to be faster ---------------------------
    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key in keys:
            try:
                found[key] = await self._get(key, None)
            except KeyError:
                pass
        return found

    async def _get_ranges(self, requests: list[Request]) -> list[bytes | None]:
        values: list[bytes | None] = []
        for key, byte_range in requests:
            try:
                values.append(await self._get(key, byte_range))
            except KeyError:
                values.append(None)
        return values

    async def _set_many(self, items: list[tuple[str, Buffer]]) -> None:
        failed: dict[str, BaseException] = {}
        for key, value in items:
            try:
                await self._set(key, value)
            except Exception as exc:
                failed[key] = exc
        if failed:
            raise BatchWriteError(failed)

    async def _delete_many(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self._delete(key)
            except KeyError:
                pass

    async def _contains_many(self, keys: list[str]) -> list[bool]:
        # Concurrent ``_contains`` calls: a network backend answers them in parallel.
        answers = [False] * len(keys)
        limiter = anyio.CapacityLimiter(CONTAINS_CONCURRENCY)

        async def answer(index: int, key: str) -> None:
            async with limiter:
                answers[index] = await self._contains(key)

        async with anyio.create_task_group() as group:
            for index, key in enumerate(keys):
                group.start_soon(answer, index, key)
        return answers

    async def _listdir(self, path: str) -> list[str]:
        prefix = parent_prefix(path)
        return sorted({child_name(prefix, key) async for key in self._list(prefix)})

    async def _exists(self, path: str) -> bool:
        """Whether a value is at ``path`` or anything below it."""
        return await self._contains(path) or bool(await self._listdir(path))

    async def _rmdir(self, path: str) -> None:
        # zarr 2 semantics: only what is *below* path; rmdir of a plain key is a no-op.
        await self._delete_many([k async for k in self._list(parent_prefix(path))])

    async def _rename(self, src: str, dst: str) -> None:
        keys = [k async for k in self._list(parent_prefix(src))]
        if await self._contains(src):
            keys.append(src)
        values = await self._get_many(keys)
        await self._set_many([(dst + k[len(src) :], v) for k, v in values.items()])
        await self._delete_many(list(values))

    async def _getsize(self, path: str) -> int:
        if path and await self._contains(path):
            return len(await self._get(path, None))
        prefix = parent_prefix(path)
        children = [k async for k in self._list(prefix) if "/" not in k[len(prefix) :]]
        values = await self._get_many(children)
        return sum(len(v) for v in values.values())

    async def _clear(self) -> None:
        await self._rmdir("")

    async def _flush(self) -> None:
        return None

    async def _close(self) -> None:
        return None
