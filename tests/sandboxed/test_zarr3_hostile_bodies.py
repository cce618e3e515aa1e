"""Hostile keys through the zarr 3 adapter -- run ONLY in a read-only sandbox.

The zarr 3 counterpart of test_hostile_bodies.py: :class:`aiostore.zarr3.ZarrStore`
over every store, called through zarr's async ``Store`` API (``get`` with a
buffer prototype and byte requests, ``get_partial_values``, ``set``,
``set_if_not_exists``, ``delete``, ``delete_dir``, ``exists``, ``getsize``,
``getsize_prefix``, ``list_prefix``, ``list_dir``, ``is_empty``) and its
synchronous ``get_sync``/``set_sync``/``delete_sync``, on asyncio as zarr
runs it. The same judge (:func:`hostile.judge_async`) holds: nothing outside
the store is touched, and a refusal is a ValueError naming the key.

tests/zarr3/test_zarr3_hostile_keys.py runs it in the zarr 3 venv, in a
sandbox (see tests/sandboxed/sandbox_runner.py); elsewhere it skips.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio.from_thread
import hostile
import pytest
from hostile import PAYLOAD, TALLY, Op, Playground, Subject
from hypothesis import example, given

zarr = pytest.importorskip("zarr", minversion="3")

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest  # noqa: E402
from zarr.core.buffer import default_buffer_prototype  # noqa: E402

from aiostore.zarr3 import ZarrStore  # noqa: E402

pytestmark = [*hostile.sandbox_marks(), pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")]

PROTO = default_buffer_prototype()


class ZarrSubject(Subject):
    """``ZarrStore`` over a fresh aiostore store; the judge reads the backend directly."""

    def __init__(self, pg: Playground, kind: str) -> None:
        super().__init__(pg)
        self.kind = kind
        self.temp_names = kind in hostile.DIRECTORY_KINDS
        self.rebuilt = kind != "temp"

    def build(self) -> None:
        if self.kind == "temp":
            import aiostore

            self.store = aiostore.TempStore(dir=self.pg.parent)
            self.pg.root = self.store.path
        else:
            self.store = hostile.STORES[self.kind](self.pg.root)
        self.target = ZarrStore(self.store)

    async def run(self, op: Op, key: str) -> Any:
        return await op.call(self.target, key)

    def __repr__(self) -> str:
        return f"ZarrStore over {self.kind}"


# -- results as bytes, for the judge's checks ----------------------------------------------------------


def _raw(buffer: Any) -> bytes | None:
    return None if buffer is None else bytes(buffer.to_bytes())


def _check_buffer(value: Any, where: str) -> None:
    hostile.check_bytes(value, where)


async def _keys(agen: AsyncIterator[str]) -> list[str]:
    return [k async for k in agen]


def _op(name: str, arg: str, fn: Callable[[Any, str], Any], **kw: Any) -> Op:
    async def call(s: ZarrStore, k: str) -> Any:
        result = fn(s, k)
        if hasattr(result, "__await__"):
            result = await result
        return result

    return Op(name, arg, call, **kw)


async def _get(s: ZarrStore, k: str, byte_range: Any = None) -> bytes | None:
    return _raw(await s.get(k, PROTO, byte_range))


async def _partial(s: ZarrStore, k: str) -> list[bytes | None]:
    return [_raw(b) for b in await s.get_partial_values(PROTO, [(k, None), ("seed", RangeByteRequest(0, 2))])]


_EXISTS = (FileExistsError,)
ZARR_OPS = [
    _op("get", "key", lambda s, k: _get(s, k), check=_check_buffer),
    _op("get_range", "key", lambda s, k: _get(s, k, RangeByteRequest(1, 3)), check=_check_buffer),
    _op("get_suffix", "key", lambda s, k: _get(s, k, SuffixByteRequest(4)), check=_check_buffer),
    _op("get_offset", "key", lambda s, k: _get(s, k, OffsetByteRequest(0)), check=_check_buffer),
    _op("get_partial_values", "key", _partial, check=hostile.check_values),
    _op("exists", "key", lambda s, k: s.exists(k), check=hostile.check_bool),
    _op("getsize", "key", lambda s, k: s.getsize(k), errors=(FileNotFoundError,), check=hostile.check_size),
    _op("set", "key", lambda s, k: s.set(k, PROTO.buffer.from_bytes(PAYLOAD)), lands=("key", PAYLOAD)),
    _op(
        "set_if_not_exists",
        "key",
        lambda s, k: s.set_if_not_exists(k, PROTO.buffer.from_bytes(PAYLOAD)),
        lands=("key", PAYLOAD),
    ),
    _op("delete", "key", lambda s, k: s.delete(k), deletes=True),
    _op("delete_dir", "path", lambda s, k: s.delete_dir(k), deletes=True),
    _op("list_dir", "path", lambda s, k: _keys(s.list_dir(k)), check=hostile.check_names),
    _op("list_prefix", "prefix", lambda s, k: _keys(s.list_prefix(k)), check=hostile.check_keys),
    _op("is_empty", "prefix", lambda s, k: s.is_empty(k), check=hostile.check_bool),
    _op("getsize_prefix", "prefix", lambda s, k: s.getsize_prefix(k), check=hostile.check_size),
    # zarr 3's synchronous protocol (blocking calls on the loop's thread, as zarr makes them)
    _op("get_sync", "key", lambda s, k: _raw(s.get_sync(k, prototype=PROTO)), check=_check_buffer),
    _op(
        "set_sync",
        "key",
        lambda s, k: s.set_sync(k, PROTO.buffer.from_bytes(PAYLOAD)),
        lands=("key", PAYLOAD),
    ),
    _op("delete_sync", "key", lambda s, k: s.delete_sync(k), deletes=True),
]


@pytest.fixture
def playground(tmp_path: pathlib.Path) -> Iterator[Playground]:
    with hostile.playground_at(str(tmp_path)) as pg:
        yield pg


@pytest.fixture(params=hostile.KINDS)
def subject(request: pytest.FixtureRequest, playground: Playground) -> Iterator[ZarrSubject]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        s = ZarrSubject(playground, request.param)
        s.portal = portal  # type: ignore[attr-defined]
        yield s
        s.close()


def _with_explicit_keys(test: Callable[..., None]) -> Callable[..., None]:
    for key in hostile.EXPLICIT_KEYS:
        test = example(key=key)(test)
    return test


@hostile.hypothesis_settings(quick=20, full=300)
@given(key=hostile.hostile_keys())
@_with_explicit_keys
def test_zarr3_hostile_keys(subject: ZarrSubject, key: str) -> None:
    TALLY.keys += 1
    subject.portal.call(hostile.judge_all, subject, ZARR_OPS, key)  # type: ignore[attr-defined]


def test_zarr3_writes_an_absolute_key_inside_the_root(playground: Playground) -> None:
    async def main() -> None:
        store = ZarrStore(hostile.STORES["directory"](playground.root))
        await store.set("/etc/passwd", PROTO.buffer.from_bytes(PAYLOAD))
        assert [k async for k in store.list_dir("etc")] == ["passwd"]
        await store.delete_dir("/")
        assert await store.is_empty("")
        store.close()

    anyio.run(main)
    assert pathlib.Path(playground.parent, "secret").read_bytes().startswith(hostile.CANARY)
