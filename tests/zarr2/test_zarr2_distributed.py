"""Scale-out on zarr 2.18: a ``dask.distributed`` LocalCluster of two worker *processes*
writes zarr arrays to moto's S3 server with ``da.to_zarr`` / ``da.store`` and reads
them back with ``da.from_zarr``, through ``aiostore.sync.ObjectStore`` stores that
reach the workers pickled inside dask's task graph (in the zarr arrays).

The data are made on the workers (``da.random`` with a fixed seed: the same graph
computes the same values again), so the chunks in S3 can only have come from the
workers' copies of the store. Each test checks, from the scheduler's task stream,
that the writing tasks ran on the cluster's workers, whose processes are not the
test's. One cluster serves the whole module (starting one takes seconds); every
wait on it is bounded.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zarr

import aiostore.sync

distributed = pytest.importorskip("distributed", reason="the scale-out tests need dask.distributed")
da = pytest.importorskip("dask.array")

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
def open_store(moto_s3: Any, s3_url: str) -> Any:
    """``open_store(**kwargs)``: a new ``aiostore.sync.ObjectStore`` on the test's bucket."""

    def open_store(**kwargs: Any) -> aiostore.sync.ObjectStore:
        return aiostore.sync.ObjectStore(s3_url, **moto_s3.options(), **kwargs)

    return open_store


def worker_pids(client: Any) -> dict[str, int]:
    """Each worker's address and process id."""
    return dict(client.run(os.getpid, wait=True))


def results(futures: list[Any]) -> Any:
    """The futures' results, all within TIMEOUT; one result alone, else a list."""
    deadline = time.monotonic() + TIMEOUT
    values = [f.result(timeout=max(0.1, deadline - time.monotonic())) for f in futures]
    return values if len(values) > 1 else values[0]


def compute(client: Any, *collections: Any) -> Any:
    """Compute on the cluster, bounded by TIMEOUT; one result per collection."""
    return results(client.compute(list(collections)))


def store_tasks_on_workers(client: Any, work: Any) -> list[dict[str, Any]]:
    """Run ``work()`` (which starts cluster work and waits for it); return the store
    tasks of the task stream meanwhile, after checking every task ran on a worker."""
    pids = worker_pids(client)
    with distributed.get_task_stream(client=client) as stream:
        work()
    tasks = list(stream.data)
    assert tasks, "no task ran on the cluster"
    assert {task["worker"] for task in tasks} <= set(pids)
    return [task for task in tasks if "store" in str(task["key"])]


def test_the_workers_are_other_processes(client: Any) -> None:
    pids = worker_pids(client)
    assert len(pids) == 2
    assert len(set(pids.values())) == 2
    assert os.getpid() not in pids.values()
    assert client.submit(os.getpid, pure=False).result(timeout=TIMEOUT) in pids.values()
    assert all(isinstance(w, distributed.Nanny) for w in client.cluster.workers.values())  # one process each


def test_pickled_sync_store_on_workers(client: Any, open_store: Any) -> None:
    """The zarr 2 store reaches each worker pickled, writes there, and reads what the test wrote."""
    store = open_store()
    assert pickle.loads(pickle.dumps(store)) == store
    store["from-test"] = b"hello"
    pids = worker_pids(client)
    writes = [
        client.submit(store.__setitem__, f"from-worker/{pid}", str(pid).encode(), workers=[addr], pure=False)
        for addr, pid in pids.items()
    ]
    reads = [client.submit(store.__getitem__, "from-test", workers=[addr], pure=False) for addr in pids]
    batches = [
        client.submit(store.getitems, ["from-test", "missing"], contexts={}, workers=[a]) for a in pids
    ]
    done = results(writes + reads + batches)
    assert done[len(writes) :] == [b"hello", b"hello", {"from-test": b"hello"}, {"from-test": b"hello"}]
    assert sorted(store.listdir("from-worker")) == sorted(str(pid) for pid in pids.values())


@pytest.mark.parametrize("dimension_separator", [".", "/"])
def test_to_zarr_and_from_zarr(client: Any, open_store: Any, dimension_separator: str) -> None:
    """``da.to_zarr(x, store, component=...)``: dask creates the array, the workers fill it."""
    x = da.random.default_rng(42).standard_normal((300, 240), chunks=(60, 80))
    store = open_store(dimension_separator=dimension_separator)
    stores = store_tasks_on_workers(
        client, lambda: compute(client, da.to_zarr(x, store, component="grid/x", compute=False))
    )
    assert len(stores) >= x.npartitions
    assert len({task["worker"] for task in stores}) == 2  # both workers wrote chunks
    expected = compute(client, x)  # the same graph: the same numbers, made on the workers
    assert isinstance(expected, np.ndarray)

    # A new store in the test's process sees what the workers wrote ...
    again = zarr.open_array(open_store(), path="grid/x", mode="r")
    assert json.loads(again.store["grid/x/.zarray"])["dimension_separator"] == dimension_separator
    np.testing.assert_array_equal(again[:], expected)
    # ... and so do the workers, reading through dask.
    y = da.from_zarr(open_store(read_only=True), component="grid/x")
    assert y.chunksize == (60, 80)
    total, mean, biggest, column_sums = compute(client, y.sum(), y.mean(), y.max(), y.sum(axis=0))
    np.testing.assert_allclose(total, expected.sum(), rtol=1e-10)
    np.testing.assert_allclose(mean, expected.mean(), rtol=1e-10)
    assert biggest == expected.max()
    np.testing.assert_allclose(column_sums, expected.sum(axis=0), rtol=1e-10)


def test_store_into_an_existing_array(client: Any, open_store: Any) -> None:
    """``zarr.create`` in the test's process, then ``da.store`` from the workers, several
    zarr chunks per dask chunk; read back with other chunks than were written."""
    x = da.random.default_rng(7).integers(0, 1000, size=(200, 150), chunks=(50, 75), dtype="int32")
    z = zarr.create(shape=x.shape, chunks=(25, 25), dtype=x.dtype, store=open_store(), fill_value=-1)
    stores = store_tasks_on_workers(
        client, lambda: compute(client, da.store(x, z, lock=False, compute=False))
    )
    assert len(stores) >= x.npartitions
    expected = compute(client, x)
    assert z.nchunks_initialized == z.nchunks == 8 * 6

    y = da.from_zarr(zarr.open_array(open_store(), mode="r"), chunks=(100, 30))
    total, biggest, row_sums = compute(client, y.sum(), y.max(), y.sum(axis=1))
    assert total == expected.sum()
    assert biggest == expected.max()
    np.testing.assert_array_equal(row_sums, expected.sum(axis=1))
