"""aiostore.copy_store (and its sync twin): zarr 2's arguments and results, batches,
bounded memory, resuming an interrupted copy, errors."""

from __future__ import annotations

import io
import pathlib
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import aiostore
import aiostore.sync
from aiostore.abc import Store

pytestmark = pytest.mark.anyio

SEED = {
    ".zgroup": b'{"zarr_format": 2}',
    "foo/.zgroup": b'{"zarr_format": 2}',
    "foo/bar/.zgroup": b'{"zarr_format": 2}',
    "foo/bar/baz/.zarray": b"{}",
    "foo/bar/baz/0": b"a" * 10,
    "foo/bar/baz/1": b"b" * 20,
}


async def filled(values: dict[str, bytes]) -> aiostore.MemoryStore:
    store = aiostore.MemoryStore()
    # In an order other than sorted: the copy sorts (in windows of SORT_WINDOW keys).
    await store.set_many(dict(reversed(list(values.items()))))
    return store


async def contents(store: Store) -> dict[str, bytes]:
    keys = [key async for key in store.list()]
    return {key: bytes(value) for key, value in (await store.get_many(keys)).items()}


async def test_copies_everything_with_zarrs_log_lines(anyio_backend: str) -> None:
    source, dest = await filled(SEED), aiostore.MemoryStore()
    lines: list[str] = []
    result = await aiostore.copy_store(source, dest, log=lines.append)
    nbytes = sum(map(len, SEED.values()))
    assert result == (6, 0, nbytes)
    assert lines == [
        *(f"copy {key}" for key in sorted(SEED)),
        f"all done: 6 copied, 0 skipped, {nbytes} bytes copied",
    ]
    assert await contents(dest) == SEED


async def test_paths_excludes_includes(anyio_backend: str) -> None:
    source, dest = await filled(SEED), aiostore.MemoryStore()
    lines: list[str] = []
    result = await aiostore.copy_store(
        source, dest, source_path="/foo/bar/", dest_path="x", excludes=[r"\.z"], includes="ZARRAY",
        flags=re.IGNORECASE, log=lines.append,
    )  # fmt: skip
    assert result == (3, 0, 2 + 10 + 20)
    assert await contents(dest) == {
        "x/baz/.zarray": b"{}", "x/baz/0": b"a" * 10, "x/baz/1": b"b" * 20,
    }  # fmt: skip
    assert lines[:3] == [
        "copy foo/bar/baz/.zarray -> x/baz/.zarray",
        "copy foo/bar/baz/0 -> x/baz/0",
        "copy foo/bar/baz/1 -> x/baz/1",
    ]


async def test_if_exists(anyio_backend: str) -> None:
    source = await filled(SEED)
    dest = await filled({"foo/bar/baz/0": b"old"})
    with pytest.raises(aiostore.CopyError, match=r"'foo/bar/baz/0' exists in destination"):
        await aiostore.copy_store(source, dest)
    # As zarr's: keys sorted before the clash may have been copied; nothing after it.
    copied_before = [key async for key in dest.list()]
    assert set(copied_before) <= {
        ".zgroup",
        "foo/.zgroup",
        "foo/bar/.zgroup",
        "foo/bar/baz/.zarray",
        "foo/bar/baz/0",
    }
    assert await dest.get("foo/bar/baz/0") == b"old"
    assert isinstance(aiostore.CopyError("x"), RuntimeError)

    lines: list[str] = []
    copied, skipped, nbytes = await aiostore.copy_store(source, dest, if_exists="skip", log=lines.append)
    assert (copied, skipped) == (6 - len(copied_before), len(copied_before))
    assert (
        "skip foo/bar/baz/0" in lines
        and lines[-1] == f"all done: {copied} copied, {skipped} skipped, {nbytes} bytes copied"
    )
    assert await dest.get("foo/bar/baz/0") == b"old"
    assert {**(await contents(dest)), "foo/bar/baz/0": SEED["foo/bar/baz/0"]} == SEED

    assert await aiostore.copy_store(source, dest, if_exists="replace") == (6, 0, 86)
    assert await contents(dest) == SEED
    with pytest.raises(ValueError, match="if_exists must be one of"):
        await aiostore.copy_store(source, dest, if_exists="overwrite")  # type: ignore[arg-type]


async def test_dry_run_writes_nothing(anyio_backend: str) -> None:
    source = await filled(SEED)
    dest = await filled({".zgroup": b"{}"})
    out = io.StringIO()
    assert await aiostore.copy_store(source, dest, if_exists="skip", dry_run=True, log=out) == (5, 1, 0)
    assert out.getvalue().splitlines()[-1] == "dry run: 5 copied, 1 skipped"
    assert await contents(dest) == {".zgroup": b"{}"}
    with pytest.raises(aiostore.CopyError):  # as zarr's: a dry run still finds the clash
        await aiostore.copy_store(source, dest, dry_run=True)


async def test_log_to_a_file_path_and_bad_logs(anyio_backend: str, tmp_path: pathlib.Path) -> None:
    source, dest = await filled(SEED), aiostore.MemoryStore()
    log = tmp_path / "copy.log"
    await aiostore.copy_store(source, dest, log=str(log))
    assert log.read_text().splitlines()[0] == "copy .zgroup"
    with pytest.raises(TypeError, match="log must be"):
        await aiostore.copy_store(source, aiostore.MemoryStore(), log=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_memory"):
        await aiostore.copy_store(source, aiostore.MemoryStore(), max_memory=0)
    with pytest.raises(ValueError, match="bad size"):
        await aiostore.copy_store(source, aiostore.MemoryStore(), max_memory="lots")


async def test_into_itself_is_refused(anyio_backend: str) -> None:
    store = await filled(SEED)
    with pytest.raises(ValueError, match="inside the source"):
        await aiostore.copy_store(store, store, source_path="foo", dest_path="foo/copy")
    assert await aiostore.copy_store(store, store, source_path="foo", dest_path="other") == (5, 0, 68)


async def test_between_file_stores_by_url(anyio_backend: str, tmp_path: pathlib.Path) -> None:
    values = {f"a/{i // 100}.{i % 100}": bytes([i % 251]) * (i % 300) for i in range(3000)}
    values[".zgroup"] = b"{}"
    directory = aiostore.DirectoryStore(str(tmp_path / "d"))
    await directory.set_many(values)
    found: list[aiostore.CopyProgress] = []
    hops = ["zip://" + str(tmp_path / "x.zip"), "lmdb://" + str(tmp_path / "x.mdb"), str(tmp_path / "back")]
    source: Store | str = directory
    for url in hops:
        result = await aiostore.copy_store(source, url, progress=found.append)
        assert result == (len(values), 0, sum(map(len, values.values())))
        source = url
    final = found[-1]
    assert final.listing_done and final.keys_found == final.keys_copied == len(values)
    assert [p.keys_copied for p in found] == sorted(p.keys_copied for p in found) or len(hops) > 1
    back = aiostore.DirectoryStore(str(tmp_path / "back"))
    assert await contents(back) == values


async def test_progress_is_reported_per_batch(anyio_backend: str) -> None:
    source = await filled({f"k/{i}": b"v" * 50 for i in range(2000)})
    seen: list[aiostore.CopyProgress] = []
    await aiostore.copy_store(source, aiostore.MemoryStore(), progress=seen.append)
    assert len(seen) >= 3
    copied = [p.keys_copied for p in seen]
    assert copied == sorted(copied) and copied[-1] == 2000
    assert seen[-1].bytes_copied == 100_000 and seen[-1].elapsed > 0


class SlowAsyncStore(Store):
    """A natively async store (no sync I/O: the copy's concurrent pipeline) that
    tracks the bytes a copy has read from it and not yet written to another."""

    def __init__(self, data: dict[str, bytes] | None = None, delay: float = 0.0) -> None:
        super().__init__()
        self.data = dict(data or {})
        self.delay = delay
        self.ledger: dict[str, int] = {"in_flight": 0, "peak": 0}

    async def _get(self, key: str, byte_range: Any) -> bytes:
        return self.data[key]

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        await anyio.sleep(self.delay)
        found = {key: self.data[key] for key in keys if key in self.data}
        self.ledger["in_flight"] += sum(map(len, found.values()))
        self.ledger["peak"] = max(self.ledger["peak"], self.ledger["in_flight"])
        return found

    async def _set(self, key: str, value: Any) -> None:
        self.data[key] = bytes(value)

    async def _set_many(self, items: list[tuple[str, Any]]) -> None:
        await anyio.sleep(self.delay)
        for key, value in items:
            self.data[key] = bytes(value)
            self.ledger["in_flight"] -= len(value)
        if any(key.endswith("/fail") for key, _ in items):
            raise aiostore.BatchWriteError({"x/fail": OSError("disk full")})

    async def _delete(self, key: str) -> None:
        del self.data[key]

    async def _contains(self, key: str) -> bool:
        return key in self.data

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        for key in list(self.data):
            if key.startswith(prefix):
                yield key


async def test_memory_stays_within_the_budget(anyio_backend: str) -> None:
    values = {f"c/{i:05}": bytes(1000) for i in range(3000)}  # 3 MB
    source = SlowAsyncStore(values, delay=0.001)
    dest = SlowAsyncStore(delay=0.003)
    dest.ledger = source.ledger  # reads add, writes subtract: the bytes held in between
    await aiostore.copy_store(source, dest, max_memory=64_000)
    assert dest.data == values
    # At most the budget plus one batch per reader (a batch is an eighth of the budget,
    # but at least MIN_BATCH values): far below the 3 MB copied.
    batch = max(aiostore.copying.MIN_BATCH * 1000, 64_000 // 8)
    assert source.ledger["peak"] <= 64_000 + aiostore.copying.READERS * batch
    assert source.ledger["in_flight"] == 0


async def test_a_failed_write_is_raised_as_it_is(anyio_backend: str) -> None:
    source = SlowAsyncStore({"x/a": b"1", "x/fail": b"2"})
    with pytest.raises(aiostore.BatchWriteError, match="x/fail"):
        await aiostore.copy_store(source, SlowAsyncStore())


async def test_an_interrupted_copy_finishes_with_skip(anyio_backend: str, tmp_path: pathlib.Path) -> None:
    values = {f"c/{i}": bytes([i % 256]) * 64 for i in range(6000)}
    source = await filled(values)
    dest = aiostore.LMDBStore(str(tmp_path / "d.mdb"))
    seen: list[aiostore.CopyProgress] = []
    with anyio.CancelScope() as scope:

        def stop_part_way(progress: aiostore.CopyProgress) -> None:
            seen.append(progress)
            if progress.keys_copied >= 1000:
                scope.cancel()

        await aiostore.copy_store(source, dest, progress=stop_part_way)
    assert scope.cancelled_caught
    done = seen[-1].keys_copied
    assert 1000 <= done < len(values)
    assert len(await contents(dest)) == done
    copied, skipped, _ = await aiostore.copy_store(source, dest, if_exists="skip")
    assert (copied, skipped) == (len(values) - done, done)
    assert await contents(dest) == values
    await dest.aclose()


def test_sync_twin(tmp_path: pathlib.Path) -> None:
    source = aiostore.sync.DirectoryStore(str(tmp_path / "src"))
    source.update(SEED)
    dest = aiostore.sync.ZipStore(str(tmp_path / "x.zip"), mode="w")
    seen: list[aiostore.CopyProgress] = []
    assert aiostore.sync.copy_store(source, dest, progress=seen.append) == (6, 0, 86)
    dest.close()
    assert seen[-1].keys_copied == 6
    reopened = aiostore.sync.ZipStore(str(tmp_path / "x.zip"), mode="r")
    assert dict(reopened.items()) == SEED
    plain: dict[str, bytes] = {}
    assert aiostore.sync.copy_store(reopened, plain, excludes="baz") == (3, 0, 54)
    assert sorted(plain) == [".zgroup", "foo/.zgroup", "foo/bar/.zgroup"]


def test_large_values_keep_the_budget() -> None:
    # Values of 1 MB against a budget of 2 MB: a batch of one or two values at a time.
    values = {f"big/{i}": bytes([i]) * 1_000_000 for i in range(12)}
    source = SlowAsyncStore(values)
    dest = SlowAsyncStore()
    dest.ledger = source.ledger
    anyio.run(lambda: aiostore.copy_store(source, dest, max_memory="2MB"))
    assert dest.data == values
    assert source.ledger["peak"] <= 2_000_000 + aiostore.copying.READERS * 1_000_000
