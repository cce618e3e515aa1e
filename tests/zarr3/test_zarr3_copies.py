"""zarr 3 reads the copies the ``aiostore`` command makes: directory -> zip -> LMDB ->
directory, arrays in both zarr formats, a sharded one among them, and ``aiostore tree``
shows zarr 3's metadata."""

from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys

import anyio
import numpy as np
import zarr

import aiostore
from aiostore.zarr3 import ZarrStore


def aiostore_command(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "aiostore", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def read_all(url: str) -> dict[str, np.ndarray]:
    async def read() -> dict[str, np.ndarray]:
        store = await aiostore.open_store(url, mode="r")
        try:
            arrays = {}
            for name in ("v3/plain", "v3/sharded", "v2/plain"):
                array = await zarr.api.asynchronous.open_array(store=ZarrStore(store), path=name, mode="r")
                arrays[name] = await array.getitem(...)
            return arrays
        finally:
            await store.aclose()

    return anyio.run(read)


def test_zarr3_reads_every_copy(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "source.zarr"
    store = ZarrStore(aiostore.DirectoryStore(str(source)))
    root = zarr.open_group(store, mode="w")
    data = np.arange(60 * 50, dtype="<i4").reshape(60, 50)
    expected = {"v3/plain": data, "v3/sharded": data * 2, "v2/plain": data - 7}
    root.create_array("v3/plain", shape=data.shape, chunks=(7, 9), dtype=data.dtype)[...] = data
    sharded = root.create_array("v3/sharded", shape=data.shape, chunks=(5, 5), shards=(20, 25), dtype="<i4")
    sharded[...] = data * 2
    v2 = zarr.open_group(ZarrStore(aiostore.DirectoryStore(str(source / "v2"))), mode="w", zarr_format=2)
    v2.create_array("plain", shape=data.shape, chunks=(8, 8), dtype="<i4")[...] = data - 7

    hops = [str(source), f"zip://{tmp_path}/copy.zip", f"lmdb://{tmp_path}/copy.mdb", str(tmp_path / "back")]
    for src, dst in itertools.pairwise(hops):
        aiostore_command("copy", "--progress", "none", src, dst)
        aiostore_command("verify", str(source), dst)
        found = read_all(dst)
        assert found.keys() == expected.keys()
        for name, values in expected.items():
            np.testing.assert_array_equal(found[name], values, err_msg=f"{name} in {dst}")
    tree = aiostore_command("tree", f"lmdb://{tmp_path}/copy.mdb").stdout
    assert "sharded  array shape=(60, 50) dtype=int32 chunks=(5, 5) shards=(20, 25)" in tree
    assert "plain  array shape=(60, 50) dtype=int32 chunks=(7, 9)" in tree
