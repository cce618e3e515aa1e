"""zarr 2 reads the copies the ``aiostore`` command makes: directory -> zip -> LMDB ->
directory, verified equal at each hop."""

from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys

import numpy as np
import zarr

import aiostore.sync


def aiostore_command(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "aiostore", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_zarr2_reads_every_copy(tmp_path: pathlib.Path) -> None:
    source = str(tmp_path / "source.zarr")
    root = zarr.group(aiostore.sync.DirectoryStore(source), overwrite=True)
    data = np.arange(60 * 50, dtype="<f8").reshape(60, 50)
    root.create_dataset("a/x", data=data, chunks=(7, 9))
    root.create_dataset("a/y", data=data.astype("i2"), chunks=(10, 10), compressor=None)
    root["a"].attrs["units"] = "m"
    hops = [source, f"zip://{tmp_path}/copy.zip", f"lmdb://{tmp_path}/copy.mdb", str(tmp_path / "back")]
    for src, dst in itertools.pairwise(hops):
        assert "all done: " in aiostore_command("copy", "--progress", "plain", src, dst)
        assert aiostore_command("verify", source, dst).startswith("equal: ")
        copy = aiostore.sync.open_store(dst, mode="r")
        try:
            group = zarr.open_group(copy, mode="r")
            np.testing.assert_array_equal(group["a/x"][...], data)
            np.testing.assert_array_equal(group["a/y"][...], data.astype("i2"))
            assert group["a"].attrs["units"] == "m"
        finally:
            copy.close()
