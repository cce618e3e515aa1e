"""Scale-out on zarr 3: a ``dask.distributed`` LocalCluster of two worker *processes*
writes zarr arrays and xarray datasets to moto's S3 server and reads them back,
through aiostore stores (``ZarrStore`` over ``ObjectStore``) that reach the
workers pickled inside dask's task graph.

The data are made on the workers (``da.random`` with a fixed seed: the same graph
computes the same values again), so the chunks in S3 can only have come from the
workers' copies of the store. Each test checks, from the scheduler's task stream,
that the writing tasks ran on the cluster's workers, whose processes are not the
test's. One cluster serves the whole module (starting one takes seconds); every
wait on it is bounded.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import aiostore
from aiostore.zarr3 import ZarrStore

distributed = pytest.importorskip("distributed", reason="the scale-out tests need dask.distributed")
da = pytest.importorskip("dask.array")

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")

#: Seconds any one wait on the cluster may take before the test fails.
TIMEOUT = 60


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
        death_timeout=TIMEOUT,
    )
    try:
        # Not the default client: only what a test hands to it runs on the cluster.
        c = distributed.Client(cluster, timeout=TIMEOUT, set_as_default=False)
    except BaseException:
        cluster.close(timeout=TIMEOUT)
        raise
    try:
        c.wait_for_workers(2, timeout=TIMEOUT)
        yield c
    finally:
        c.close(timeout=TIMEOUT)
        cluster.close(timeout=TIMEOUT)


@pytest.fixture
def s3_url(moto_s3: Any) -> str:
    """A fresh bucket, and a prefix in it."""
    return str(moto_s3.url(moto_s3.bucket(), "data.zarr"))


@pytest.fixture
def object_store(moto_s3: Any, s3_url: str) -> aiostore.ObjectStore:
    return aiostore.ObjectStore(s3_url, **moto_s3.options())


def worker_pids(client: Any) -> dict[str, int]:
    """Each worker's address and process id."""
    return dict(client.run(os.getpid, wait=True))


def compute(client: Any, *collections: Any) -> Any:
    """Compute on the cluster, bounded by TIMEOUT; one result per collection."""
    return results(client.compute(list(collections)))


def results(futures: list[Any]) -> Any:
    """The futures' results, all within TIMEOUT; one result alone, else a list."""
    deadline = time.monotonic() + TIMEOUT
    values = [f.result(timeout=max(0.1, deadline - time.monotonic())) for f in futures]
    return values if len(values) > 1 else values[0]


def run_on_workers(client: Any, work: Any) -> list[dict[str, Any]]:
    """Run ``work()`` (which starts cluster work and waits for it) and return the
    task stream of what ran meanwhile; fails if no task ran, or one ran off the workers."""
    pids = worker_pids(client)
    with distributed.get_task_stream(client=client) as stream:
        work()
    tasks = list(stream.data)
    assert tasks, "no task ran on the cluster"
    assert {task["worker"] for task in tasks} <= set(pids)
    return tasks


def test_the_workers_are_other_processes(client: Any) -> None:
    pids = worker_pids(client)
    assert len(pids) == 2
    assert len(set(pids.values())) == 2
    assert os.getpid() not in pids.values()
    assert client.submit(os.getpid, pure=False).result(timeout=TIMEOUT) in pids.values()
    cluster = client.cluster
    assert all(isinstance(w, distributed.Nanny) for w in cluster.workers.values())  # one process each


def test_pickled_object_store_on_workers(client: Any, object_store: aiostore.ObjectStore) -> None:
    """An ObjectStore reaches each worker pickled, writes there, and reads what the test wrote."""
    assert pickle.loads(pickle.dumps(object_store)) == object_store
    object_store.set_sync("from-test", b"hello")
    pids = worker_pids(client)
    writes = [
        client.submit(
            object_store.set_sync, f"from-worker/{pid}", str(pid).encode(), workers=[addr], pure=False
        )
        for addr, pid in pids.items()
    ]
    reads = [client.submit(object_store.get_sync, "from-test", workers=[addr], pure=False) for addr in pids]
    assert results(writes + reads)[len(writes) :] == [b"hello", b"hello"]
    assert object_store.get_many_sync([f"from-worker/{pid}" for pid in pids.values()]) == {
        f"from-worker/{pid}": str(pid).encode() for pid in pids.values()
    }


LAYOUTS = {
    # name: (create_array kwargs, dask chunks)
    "v2": ({"zarr_format": 2, "chunks": (50, 40)}, (100, 80)),
    "v3": ({"zarr_format": 3, "chunks": (50, 40)}, (50, 80)),
    # dask writes whole shards; the workers read inner chunks as byte ranges
    "v3-sharded": ({"zarr_format": 3, "chunks": (25, 20), "shards": (100, 80)}, (100, 80)),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_dask_array_to_zarr_and_back(
    client: Any, moto_s3: Any, s3_url: str, object_store: aiostore.ObjectStore, layout: str
) -> None:
    array_kwargs, dask_chunks = LAYOUTS[layout]
    x = da.random.default_rng(42).standard_normal((300, 240), chunks=dask_chunks)
    z = zarr.create_array(ZarrStore(object_store), shape=x.shape, dtype=x.dtype, **array_kwargs)

    # da.store, not da.to_zarr: to_zarr rechunks onto an existing array to dask's
    # "auto" chunk size, which here is one chunk (one task) for the whole array.
    tasks = run_on_workers(client, lambda: compute(client, da.store(x, z, lock=False, compute=False)))
    stores = [task for task in tasks if "store" in str(task["key"])]
    assert len(stores) >= x.npartitions
    assert len({task["worker"] for task in stores}) == 2  # both workers wrote chunks

    expected = compute(client, x)  # the same graph: the same numbers, made on the workers
    assert isinstance(expected, np.ndarray)

    # A new store object in the test's process sees what the workers wrote ...
    again = zarr.open_array(ZarrStore(aiostore.ObjectStore(s3_url, **moto_s3.options())), mode="r")
    assert again.metadata.zarr_format == array_kwargs["zarr_format"]
    np.testing.assert_array_equal(again[:], expected)
    assert again.nchunks_initialized == again.nchunks

    # ... and so do the workers, reading through dask (a task per shard, if sharded:
    # it reads the shard's inner chunks as byte ranges).
    y = da.from_zarr(again, chunks=again.shards or again.chunks)
    assert y.chunksize == (again.shards or again.chunks)
    total, mean, biggest, column_sums = compute(client, y.sum(), y.mean(), y.max(), y.sum(axis=0))
    np.testing.assert_allclose(total, expected.sum(), rtol=1e-10)
    np.testing.assert_allclose(mean, expected.mean(), rtol=1e-10)
    assert biggest == expected.max()
    np.testing.assert_allclose(column_sums, expected.sum(axis=0), rtol=1e-10)


def test_dask_creates_the_array_in_a_zarr_store(
    client: Any, moto_s3: Any, s3_url: str, object_store: aiostore.ObjectStore
) -> None:
    """``da.to_zarr(x, ZarrStore(...), component=...)``: dask creates the array, the workers fill it."""
    x = da.random.default_rng(7).integers(0, 1000, size=(120, 90), chunks=(30, 45), dtype="int32")
    run_on_workers(
        client,
        lambda: compute(client, da.to_zarr(x, ZarrStore(object_store), component="ints", compute=False)),
    )
    expected = compute(client, x)
    store = ZarrStore(aiostore.ObjectStore(s3_url, **moto_s3.options()), read_only=True)
    y = da.from_zarr(store, component="ints")
    total, biggest = compute(client, y.sum(), y.max())
    assert total == expected.sum()
    assert biggest == expected.max()
    np.testing.assert_array_equal(zarr.open_array(store, path="ints", mode="r")[:], expected)


def make_dataset() -> xr.Dataset:
    rng = np.random.default_rng(1)
    return xr.Dataset(
        {
            "temperature": (("time", "x", "y"), rng.normal(size=(48, 20, 16)).astype("float32")),
            "count": (("time", "x"), rng.integers(0, 100, size=(48, 20)).astype("int64")),
        },
        coords={
            "time": pd.date_range("2024-01-01", periods=48, freq="h"),
            "x": np.arange(20),
            "y": np.arange(16),
        },
        attrs={"title": "scale-out"},
    )


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_to_zarr_and_open_zarr_on_the_cluster(
    client: Any, moto_s3: Any, object_store: aiostore.ObjectStore, s3_url: str, zarr_format: int
) -> None:
    ds = make_dataset()
    chunked = ds.chunk({"time": 12, "x": 10})
    delayed = chunked.to_zarr(
        ZarrStore(object_store), mode="w", zarr_format=zarr_format, consolidated=True, compute=False
    )
    # The chunks, and the consolidated metadata written when the store closes, come from the workers.
    run_on_workers(client, lambda: compute(client, delayed))

    store = ZarrStore(aiostore.ObjectStore(s3_url, **moto_s3.options()))
    with xr.open_zarr(store, chunks={"time": 24, "x": 10}, consolidated=True) as back:
        assert back.temperature.chunks == ((24, 24), (10, 10), (16,))
        assert back.temperature.encoding["chunks"] == (12, 10, 16)
        loaded = compute(client, back)
        xr.testing.assert_identical(loaded, ds)
        mean_t, total_count = compute(client, back.temperature.mean("time"), back["count"].sum())
    np.testing.assert_allclose(mean_t.values, ds.temperature.values.mean(axis=0), rtol=1e-5)
    assert int(total_count) == int(ds["count"].values.sum())
