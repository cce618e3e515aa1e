"""``aiostore verify``: differences found, printed (capped) and told by the exit status."""

from __future__ import annotations

import pathlib

import pytest
from cli_helpers import aiostore, write_v2

from aiostore import LMDBStore, MemoryStore
from aiostore.cli import StoreComparison


@pytest.fixture
def pair(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    source, dest = tmp_path / "a.zarr", tmp_path / "b.zarr"
    write_v2(source)
    write_v2(dest)
    return source, dest


def test_changed_missing_and_extra_keys(pair: tuple[pathlib.Path, pathlib.Path]) -> None:
    source, dest = pair
    assert aiostore("verify", str(source), str(dest), check=True).stdout.startswith("equal: 111 keys, ")
    (dest / "raw" / "3.4").write_bytes(b"changed")
    (dest / "foo" / "bar" / "1").unlink()
    (dest / "extra").write_bytes(b"x")
    result = aiostore("verify", str(source), str(dest))
    size = (source / "raw" / "3.4").stat().st_size
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout.splitlines() == [
        "only in SRC: foo/bar/1",
        f"differs: raw/3.4 ({size:,} bytes vs 7 bytes)",
        "only in DST: extra",
        "differ: 3 differences (1 differing, 1 only in SRC, 1 only in DST); SRC 111 keys, DST 111 keys",
    ]
    swapped = aiostore("verify", str(dest), str(source))
    assert swapped.returncode == 1
    assert "only in SRC: extra" in swapped.stdout and "only in DST: foo/bar/1" in swapped.stdout
    quiet = aiostore("verify", "-q", str(source), str(dest))
    assert (quiet.returncode, quiet.stdout) == (1, "")


def test_printed_differences_are_capped(pair: tuple[pathlib.Path, pathlib.Path]) -> None:
    source, dest = pair
    for chunk in (dest / "raw").glob("*.*"):
        if chunk.name != ".zarray":
            chunk.unlink()
    lines = aiostore("verify", "--max-lines", "5", str(source), str(dest)).stdout.splitlines()
    assert [line.startswith("only in SRC: raw/") for line in lines[:5]] == [True] * 5
    assert lines[5:] == [
        "... and 95 more differences",
        "differ: 100 differences (100 only in SRC); SRC 111 keys, DST 11 keys",
    ]


@pytest.mark.anyio
async def test_store_comparison_streams_large_stores_in_batches(tmp_path: pathlib.Path) -> None:
    source = MemoryStore()
    await source.set_many({f"k/{i:05}": i.to_bytes(3, "little") for i in range(10_000)})
    async with LMDBStore(str(tmp_path / "db")) as dest:  # buffers (memoryviews) compare as bytes
        await dest.set_many({f"k/{i:05}": i.to_bytes(3, "little") for i in range(1, 10_000)})
        await dest.set_many({"k/05000": b"new", "z": b""})
        comparison = StoreComparison(source, dest, batch_bytes=3000)
        found = [str(d) async for d in comparison.differences()]
    assert found == ["only in SRC: k/00000", "differs: k/05000 (3 bytes vs 3 bytes)", "only in DST: z"]
    assert (comparison.source_keys, comparison.dest_keys, comparison.bytes_compared) == (
        10_000,
        10_000,
        30_000,
    )
    assert not comparison.equal
