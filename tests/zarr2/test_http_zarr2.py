"""zarr 2 reads arrays that ``aiostore serve`` serves from an LMDB store, through fsspec's
HTTP mapper (``fsspec.get_mapper("http://...")``), each equal to its source."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import fsspec
import numpy as np
import pytest
import zarr
from serving import running

import aiostore.sync

DATA = np.arange(60 * 70, dtype="int32").reshape(60, 70)
NESTED = np.linspace(0, 1, 30 * 20).reshape(30, 20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An LMDB store holding a group and arrays, served read-only: its URL."""
    tmp = tmp_path_factory.mktemp("http")
    store = aiostore.sync.LMDBStore(str(tmp / "data.mdb"))
    root = zarr.open_group(store, mode="w")
    root.attrs["title"] = "served"
    root.create_dataset("arr", data=DATA, chunks=(16, 16), fill_value=-1)
    nested = root.create_group("sub").create_dataset(
        "nested", shape=NESTED.shape, chunks=(8, 8), dtype=NESTED.dtype, dimension_separator="/"
    )
    nested[:] = NESTED
    root.create_dataset("sparse", shape=(100,), chunks=(10,), dtype="i2", fill_value=7)[20:30] = 1
    store.close()
    with running(f"lmdb://{tmp / 'data.mdb'}", "--log-level", "warning") as (proc, url):
        yield url
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


def test_zarr2_reads_an_array_through_the_fsspec_mapper(server: str) -> None:
    z = zarr.open_array(fsspec.get_mapper(server + "arr"), mode="r")
    assert (z.shape, z.chunks, z.dtype) == (DATA.shape, (16, 16), DATA.dtype)
    np.testing.assert_array_equal(z[:], DATA)
    np.testing.assert_array_equal(z[5:40, 17:33], DATA[5:40, 17:33])


def test_zarr2_reads_a_group_and_its_members(server: str) -> None:
    group = zarr.open_group(fsspec.get_mapper(server), mode="r")
    assert group.attrs["title"] == "served"
    np.testing.assert_array_equal(group["arr"][:], DATA)
    np.testing.assert_array_equal(group["sub/nested"][:], NESTED)
    expected = np.full(100, 7, dtype="i2")
    expected[20:30] = 1
    np.testing.assert_array_equal(group["sparse"][:], expected)  # missing chunks: 404, the fill value


def test_listing_a_served_directory_through_fsspec(server: str) -> None:
    fs = fsspec.filesystem("http")
    names = sorted(fs.ls(server + "arr/", detail=False))
    assert server + "arr/.zarray" in names and server + "arr/0.0" in names
