"""zarr 3 reads arrays that ``aiostore serve`` serves from an LMDB store, through fsspec's
HTTP file system and through obstore's HTTP store: plain arrays, a sharded one (inner
chunks read as byte ranges), and a zarr format 2 array, each equal to its source."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import obstore.store
import pytest
import zarr
import zarr.storage
from serving import running

import aiostore
from aiostore.zarr3 import ZarrStore

PLAIN = np.arange(50 * 60, dtype="int32").reshape(50, 60)
SHARDED = (np.arange(64 * 64, dtype="uint32") * 7).reshape(64, 64).astype("uint16")
V2 = np.linspace(0, 1, 40 * 30).reshape(40, 30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An LMDB store holding the arrays, served read-only; (its URL, the request log)."""
    tmp = tmp_path_factory.mktemp("http")
    backend = aiostore.LMDBStore(str(tmp / "data.mdb"))
    root = zarr.open_group(ZarrStore(backend), mode="w")
    root.attrs["title"] = "served"
    plain = root.create_array("plain", shape=PLAIN.shape, chunks=(10, 16), dtype=PLAIN.dtype, fill_value=-1)
    plain[:] = PLAIN
    sharded = root.create_array(
        "sharded", shape=SHARDED.shape, chunks=(8, 8), shards=(32, 32), dtype=SHARDED.dtype
    )
    sharded[:] = SHARDED
    v2 = zarr.open_group(ZarrStore(backend), path="v2", mode="w", zarr_format=2)
    v2.create_array("a", shape=V2.shape, chunks=(16, 16), dtype=V2.dtype)[:] = V2
    # A zarr format 2 group below a format 3 root writes the root's .zgroup too (its parent).
    backend.delete_many_sync([".zgroup", ".zattrs"])
    backend.close_sync()
    log = tmp / "requests.log"
    with open(log, "w") as err, running(f"lmdb://{tmp / 'data.mdb'}", stderr=err) as (proc, url):
        yield url, log
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()  # type: ignore[union-attr]


def fsspec_store(url: str) -> Any:
    return zarr.storage.FsspecStore.from_url(url, read_only=True)


def obstore_store(url: str) -> Any:
    http = obstore.store.HTTPStore.from_url(url, client_options={"allow_http": True})
    return zarr.storage.ObjectStore(http, read_only=True)


CLIENTS = {"fsspec": fsspec_store, "obstore": obstore_store}


def ranged_requests(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "/sharded/c/" in line and '" 206 ' in line]


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_zarr3_reads_served_arrays(server: tuple[str, Path], client: str) -> None:
    url, _ = server
    store = CLIENTS[client](url)
    root = zarr.open_group(store, mode="r")
    assert root.attrs["title"] == "served"
    np.testing.assert_array_equal(zarr.open_array(store, path="plain", mode="r")[:], PLAIN)
    np.testing.assert_array_equal(
        zarr.open_array(store, path="plain", mode="r")[7:23, 5:50], PLAIN[7:23, 5:50]
    )
    np.testing.assert_array_equal(zarr.open_array(store, path="v2/a", mode="r", zarr_format=2)[:], V2)


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_zarr3_reads_a_sharded_array_by_byte_ranges(server: tuple[str, Path], client: str) -> None:
    url, log = server
    before = len(ranged_requests(log))
    sharded = zarr.open_array(CLIENTS[client](url), path="sharded", mode="r")
    np.testing.assert_array_equal(sharded[3:20, 40:41], SHARDED[3:20, 40:41])
    np.testing.assert_array_equal(sharded[:], SHARDED)
    ranged = ranged_requests(log)[before:]
    assert ranged, "no 206 answer for the shards: the inner chunks were not read as byte ranges"
