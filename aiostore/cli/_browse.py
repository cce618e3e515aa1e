"""``aiostore ls``, ``tree``, ``du`` and ``info``: a store's zarr hierarchy and its sizes."""

from __future__ import annotations

import json

import click

from aiostore.abc import Store
from aiostore.cli._common import human_size, opened, run
from aiostore.cli._errors import UserError
from aiostore.cli._hierarchy import Entry, Hierarchy, tree_lines
from aiostore.cli._metadata import ArrayNode, GroupNode, Node, format_shape
from aiostore.cli._sizes import disk_usage

__all__ = ["du", "info", "ls", "tree"]

_MEMBERS_SHOWN = 20


async def _node(store: Store, hierarchy: Hierarchy, url: str, path: str) -> Node:
    node = await hierarchy.node(path)
    if node is None:
        raise UserError(f"no group or array at {path!r} in {url!r}")
    return node


def _listing(entries: list[Entry]) -> list[str]:
    names = [e.path.rpartition("/")[2] + ("/" if e.kind == "group" else "") for e in entries]
    width = max(map(len, names), default=0)
    return [f"{name:<{width}}  {entry.summary()}" for name, entry in zip(names, entries, strict=True)]


@click.command()
@click.argument("url")
@click.argument("path", default="")
def ls(url: str, path: str) -> None:
    """List the groups and arrays in the group at PATH (the root by default).

    Each array shows its shape, dtype, chunks and compressor (zarr v2) or codecs
    (zarr v3); groups end in a slash.

    \b
    $ aiostore ls data.zarr
    foo/  group
    bar   array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc
    """

    async def body() -> None:
        async with opened(url) as store:
            hierarchy = Hierarchy(store)
            where = store.check_path(path)
            node = await _node(store, hierarchy, url, where)
            lines = _listing([node] if node.kind == "array" else await hierarchy.children(where))
            for line in lines:
                click.echo(line)

    run(body)


@click.command()
@click.argument("url")
@click.argument("path", default="")
@click.option(
    "-d", "--depth", type=click.IntRange(min=1), default=None, help="Show at most this many levels."
)
def tree(url: str, path: str, depth: int | None) -> None:
    """Show the zarr hierarchy below PATH (the root by default) as a tree.

    \b
    $ aiostore tree data.zarr
    /  group (zarr v2)
    ├── bar  array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc
    └── foo  group
        └── baz  array shape=(5,) dtype=float64 chunks=(5,) compressor=zstd
    """

    async def body() -> None:
        async with opened(url) as store:
            async for line in tree_lines(Hierarchy(store), store.check_path(path), depth):
                click.echo(line)

    run(body)


@click.command()
@click.argument("url")
@click.argument("path", default="")
@click.option("-b", "--bytes", "exact", is_flag=True, help="Exact byte counts, not KiB/MiB/...")
@click.option("-s", "--summarize", is_flag=True, help="Only the total, not each subdirectory.")
def du(url: str, path: str, exact: bool, summarize: bool) -> None:
    """Stored bytes under PATH (the whole store by default), and of each subdirectory.

    Sizes are what the store holds (compressed chunks; a Zip file's stored bytes).

    \b
    $ aiostore du data.zarr
     39.1 KiB  bar/
    351.6 KiB  foo/
    390.7 KiB  total, 212 keys
    """

    def size(n: int) -> str:
        return f"{n:,}" if exact else human_size(n)

    async def body() -> None:
        async with opened(url) as store:
            where = store.check_path(path)
            usage = await disk_usage(store, where)
            if usage.keys == 0 and where:
                raise UserError(f"nothing stored at {path!r} in {url!r}")
            rows = (
                []
                if summarize
                else [(size(u.total), f"{name}/") for name, u in sorted(usage.children.items())]
            )
            rows.append((size(usage.total), f"total, {usage.keys:,} key{'s' if usage.keys != 1 else ''}"))
            width = max(len(r[0]) for r in rows)
            for amount, label in rows:
                click.echo(f"{amount:>{width}}  {label}")

    run(body)


def _names(nodes: list[Entry]) -> str:
    names = [n.path.rpartition("/")[2] for n in nodes]
    more = f", ... ({len(names) - _MEMBERS_SHOWN} more)" if len(names) > _MEMBERS_SHOWN else ""
    return f"{len(names)}" + (f" ({', '.join(names[:_MEMBERS_SHOWN])}{more})" if names else "")


def _attributes(node: Node) -> str:
    keys = sorted(node.attributes)
    return f"{len(keys)}" + (f" ({', '.join(keys[:_MEMBERS_SHOWN])})" if keys else "")


async def _array_rows(store: Store, node: ArrayNode) -> list[tuple[str, str]]:
    rows = [
        ("Type", f"array (zarr v{node.zarr_format})"),
        ("Shape", format_shape(node.shape)),
        ("Data type", node.dtype),
        ("Chunks", format_shape(node.chunks)),
    ]
    if node.shards is not None:
        rows.append(("Shards", format_shape(node.shards)))
    if node.order:
        rows.append(("Order", node.order))
    if node.zarr_format == 2:
        rows += [("Compressor", node.compressor_detail), ("Filters", node.filters)]
    else:
        rows.append(("Codecs", node.compressor_detail))
    rows += [("Fill value", json.dumps(node.fill_value)), ("Attributes", _attributes(node))]
    usage = await disk_usage(store, node.path)
    prefix = f"{node.path}/" if node.path else ""
    metadata = sum(await store.contains_many([prefix + name for name in node.metadata_names]))
    if node.nbytes is not None:
        rows.append(("No. bytes", f"{node.nbytes:,} ({human_size(node.nbytes)})"))
    rows.append(("No. bytes stored", f"{usage.total:,} ({human_size(usage.total)})"))
    if node.nbytes is not None and usage.total:
        rows.append(("Storage ratio", f"{node.nbytes / usage.total:.1f}"))
    rows.append(("Chunks stored", f"{usage.keys - metadata:,}/{node.chunk_count:,}"))
    return rows


@click.command()
@click.argument("url")
@click.argument("path", default="")
def info(url: str, path: str) -> None:
    """Describe the array or group at PATH (the root by default).

    An array: shape, dtype, chunks, compressor or codecs, fill value, and the
    chunks and bytes stored; a group: its groups, arrays and attributes.

    \b
    $ aiostore info data.zarr bar
    Path             : bar
    Type             : array (zarr v2)
    Shape            : (100, 100)
    ...
    No. bytes stored : 1,234 (1.2 KiB)
    Storage ratio    : 32.4
    Chunks stored    : 100/100
    """

    async def body() -> None:
        async with opened(url) as store:
            hierarchy = Hierarchy(store)
            node = await _node(store, hierarchy, url, store.check_path(path))
            rows = [("Path", node.path or "/")]
            if isinstance(node, GroupNode):
                members = await hierarchy.children(node.path)
                version = f"zarr v{node.zarr_format}" if node.zarr_format else "implicit"
                rows += [
                    ("Type", f"group ({version})"),
                    ("Groups", _names([m for m in members if m.kind == "group"])),
                    ("Arrays", _names([m for m in members if m.kind == "array"])),
                    ("Attributes", _attributes(node)),
                ]
                unreadable = [m for m in members if m.kind == "unreadable"]
                if unreadable:
                    rows.append(("Unreadable", _names(unreadable)))
            else:
                rows += await _array_rows(store, node)
            width = max(len(name) for name, _ in rows)
            for name, value in rows:
                click.echo(f"{name:<{width}} : {value}")

    run(body)
