"""The zarr hierarchy of a store, walked level by level for ``ls``, ``tree`` and ``info``.

Children are found with ``listdir`` and their metadata read with one ``get_many``
per level; a consolidated ``.zmetadata`` at the root answers for the documents it
holds. A directory with nodes below it but no metadata of its own is an implicit
group.

>>> import anyio
>>> from aiostore import MemoryStore
>>> async def main():
...     store = MemoryStore()
...     await store.set_many({".zgroup": b'{"zarr_format": 2}', "g/zarr.json":
...                           b'{"zarr_format": 3, "node_type": "group"}'})
...     return "\\n".join([line async for line in tree_lines(Hierarchy(store), "")])
>>> print(anyio.run(main))
/  group (zarr v2)
└── g  group
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiostore.abc import Store
from aiostore.cli._metadata import (
    ATTRS_V2,
    CONSOLIDATED,
    METADATA_NAMES,
    NODE_KEYS,
    GroupNode,
    Node,
    parse_node,
)
from aiostore.errors import MetadataError

__all__ = ["BadNode", "Entry", "Hierarchy", "tree_lines"]


@dataclass(frozen=True)
class BadNode:
    """A child whose metadata cannot be read; listed with the reason, not fatal."""

    path: str
    problem: str
    kind = "unreadable"

    def summary(self) -> str:
        """One line: the problem."""
        return f"unreadable metadata: {self.problem}"


Entry = Node | BadNode


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


class Hierarchy:
    """Reads the nodes of one store (paths are store paths: ``""`` is the root)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._consolidated: dict[str, Any] | None = None
        self._loaded = False

    async def _documents(self, keys: list[str]) -> dict[str, bytes | Mapping[str, Any]]:
        if not self._loaded:
            self._loaded = True
            try:
                raw = await self.store.get(CONSOLIDATED)
                doc = json.loads(raw)
                metadata = doc.get("metadata") if isinstance(doc, dict) else None
                self._consolidated = metadata if isinstance(metadata, dict) else None
            except (KeyError, ValueError, UnicodeDecodeError):
                self._consolidated = None
        found: dict[str, bytes | Mapping[str, Any]] = {}
        if self._consolidated:
            found.update(
                {k: self._consolidated[k] for k in keys if isinstance(self._consolidated.get(k), dict)}
            )
        missing = [k for k in keys if k not in found]
        found.update(await self.store.get_many(missing) if missing else {})
        return found

    async def node(self, path: str) -> Node | None:
        """The node at ``path`` (attributes included), an implicit group if only keys
        lie below it, or None; :class:`~aiostore.MetadataError` if its metadata is bad."""
        names = [*NODE_KEYS, ATTRS_V2]
        documents = await self._documents([_join(path, name) for name in names])
        node = parse_node({n: documents[_join(path, n)] for n in names if _join(path, n) in documents}, path)
        if node is not None:
            return node
        if not path:
            return GroupNode("", None)  # the root is always a group, if only an empty one
        if await self.store.contains(path):
            return None  # a value, not a node
        return GroupNode(path, None) if await self.store.listdir(path) else None

    async def children(self, path: str) -> list[Entry]:
        """The child nodes of the group at ``path``, sorted by name."""
        names = [name for name in await self.store.listdir(path) if name not in METADATA_NAMES]
        wanted = [_join(_join(path, name), key) for name in names for key in NODE_KEYS]
        documents = await self._documents(wanted)
        entries: dict[str, Entry] = {}
        unknown = []
        for name in names:
            child = _join(path, name)
            docs = {key: documents[_join(child, key)] for key in NODE_KEYS if _join(child, key) in documents}
            try:
                node = parse_node(docs, child)
            except MetadataError as exc:
                entries[name] = BadNode(child, str(exc))
                continue
            if node is None:
                unknown.append(name)
            else:
                entries[name] = node
        # no metadata: a plain value (not a node), or a directory (an implicit group)
        if unknown:
            is_value = await self.store.contains_many([_join(path, name) for name in unknown])
            for name, value in zip(unknown, is_value, strict=True):
                if not value:
                    entries[name] = GroupNode(_join(path, name), None)
        return [entries[name] for name in names if name in entries]


def _name(path: str) -> str:
    return path.rpartition("/")[2]


async def tree_lines(hierarchy: Hierarchy, path: str, max_depth: int | None = None) -> AsyncIterator[str]:
    """The lines of ``aiostore tree``: the node at ``path``, then everything below it."""
    root = await hierarchy.node(path)
    if root is None:
        raise LookupError(f"no group or array at {path!r}")
    version = f" (zarr v{root.zarr_format})" if root.zarr_format else ""
    yield f"{path or '/'}  {root.summary()}{version}"
    if root.kind == "group":
        async for line in _below(hierarchy, path, "", 1, max_depth):
            yield line


async def _below(
    hierarchy: Hierarchy, path: str, indent: str, depth: int, max_depth: int | None
) -> AsyncIterator[str]:
    children = await hierarchy.children(path)
    for index, child in enumerate(children):
        last = index == len(children) - 1
        yield f"{indent}{'└── ' if last else '├── '}{_name(child.path)}  {child.summary()}"
        if child.kind == "group" and (max_depth is None or depth < max_depth):
            async for line in _below(
                hierarchy, child.path, indent + ("    " if last else "│   "), depth + 1, max_depth
            ):
                yield line
