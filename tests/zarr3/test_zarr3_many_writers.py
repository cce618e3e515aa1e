"""Many writers through zarr 3: the original bug, on a ``dask.distributed`` cluster of
two worker processes writing one array with ``dask.array.to_zarr`` through
``ZarrStore`` over each file-backed aiostore store.

The bug: to a ``ZipStore`` this finished without an error and left a file that
is not a Zip file; to a ``DBMStore`` it finished without an error and every
value read back as the fill value. Directory and LMDB stores take any number of
writing processes and must round-trip exactly. Zip files and DBM databases take
one writer: the run must fail with :class:`aiostore.errors.StoreLockedError`,
whose message says why, or succeed and read back exactly; never a silently
corrupt or empty store.

The cluster (two worker processes, one thread each) and the helpers come from
``test_zarr3_distributed``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zarr

import aiostore
from aiostore.errors import StoreError, StoreLockedError
from aiostore.zarr3 import ZarrStore

distributed = pytest.importorskip("distributed", reason="the scale-out tests need dask.distributed")
da = pytest.importorskip("dask.array")

from test_zarr3_distributed import TIMEOUT, client, compute, worker_pids  # noqa: E402, F401

#: Seconds to wait for a refused writer's error to come back from the cluster: a
#: refusal is immediate, a hang means the error never reached the client.
LOCK_TIMEOUT = 15

SHAPE = (240, 200)
CHUNKS = (40, 50)  # 6 x 4 = 24 chunks, 24 tasks


def open_backend(kind: str, tmp_path: Any, *, read_only: bool = False, new: bool = False) -> Any:
    if kind == "directory":
        return aiostore.DirectoryStore(str(tmp_path / "data.zarr"), read_only=read_only)
    if kind == "nested":
        return aiostore.NestedDirectoryStore(str(tmp_path / "data.zarr"), read_only=read_only)
    if kind == "lmdb":
        return aiostore.LMDBStore(str(tmp_path / "data.mdb"), read_only=read_only)
    if kind == "zip":
        return aiostore.ZipStore(str(tmp_path / "data.zip"), mode="r" if read_only else "w" if new else "a")
    if kind == "dbm":
        return aiostore.DBMStore(str(tmp_path / "data.db"), flag="r" if read_only else "n" if new else "c")
    raise AssertionError(kind)


def the_data() -> Any:
    """Made on the workers: the same graph computes the same numbers again."""
    return da.random.default_rng(11).integers(0, 2**31, size=SHAPE, chunks=CHUNKS, dtype="int64")


def read_array(kind: str, tmp_path: Any) -> np.ndarray:
    """The array ``a`` as a fresh read-only store in this process sees it."""
    backend = open_backend(kind, tmp_path, read_only=True)
    try:
        return zarr.open_array(ZarrStore(backend), path="a", mode="r")[:]  # type: ignore[no-any-return]
    finally:
        backend.close_sync()


def to_zarr(dask_client: Any, x: Any, store: ZarrStore, timeout: float, close_first: bool = False) -> None:
    """``da.to_zarr`` on the cluster; the graph's writes run on the workers.

    ``close_first``: close ``store`` after dask has made the array (in this process)
    and before the graph runs, so that this process holds no writer meanwhile.
    """
    pids = worker_pids(dask_client)
    delayed = da.to_zarr(x, store, component="a", compute=False, zarr_format=3)
    if close_first:
        store.store.close_sync()
    with distributed.get_task_stream(client=dask_client) as stream:
        future = dask_client.compute(delayed)
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            pytest.fail(
                f"to_zarr gave neither a result nor an error within {timeout} s (did the store "
                "raise while being unpickled? that kills a dask worker, and the error never "
                "reaches the client)"
            )
    tasks = list(stream.data)
    assert tasks, "no task ran on the cluster"
    assert {task["worker"] for task in tasks} <= set(pids)


def assert_chunks_whole(back: np.ndarray, expected: np.ndarray) -> None:
    """Every chunk holds the workers' values or the fill value (0), nothing in between."""
    assert back.shape == SHAPE
    for i in range(0, SHAPE[0], CHUNKS[0]):
        for j in range(0, SHAPE[1], CHUNKS[1]):
            chunk = back[i : i + CHUNKS[0], j : j + CHUNKS[1]]
            want = expected[i : i + CHUNKS[0], j : j + CHUNKS[1]]
            assert (chunk == want).all() or not chunk.any(), (
                f"the chunk at {(i, j)} is neither written nor empty"
            )


def assert_locked(exc: BaseException, kind: str) -> None:
    assert isinstance(exc, StoreLockedError), f"expected StoreLockedError, got {type(exc).__name__}: {exc}"
    assert "one writer" in str(exc) and ("data.zip" in str(exc) or "data.db" in str(exc)), str(exc)


@pytest.mark.parametrize("kind", ["directory", "nested", "lmdb"])
def test_to_zarr_from_two_worker_processes_round_trips(client: Any, kind: str, tmp_path: Any) -> None:  # noqa: F811
    """Both workers write chunks of one array while this process holds the store open."""
    client.wait_for_workers(2, timeout=TIMEOUT)
    x = the_data()
    backend = open_backend(kind, tmp_path)
    try:
        to_zarr(client, x, ZarrStore(backend), TIMEOUT)
        expected = compute(client, x)
        np.testing.assert_array_equal(zarr.open_array(ZarrStore(backend), path="a", mode="r")[:], expected)
    finally:
        backend.close_sync()
    again = read_array(kind, tmp_path)
    np.testing.assert_array_equal(again, expected)
    assert (again != 0).mean() > 0.99  # written, not fill values


@contextlib.contextmanager
def fresh_cluster() -> Iterator[Any]:
    """A cluster of its own: its workers exit at the end (closing their copies of the
    store), and a worker a failed test breaks breaks no other test."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
        death_timeout=TIMEOUT,
    )
    try:
        c = distributed.Client(cluster, timeout=TIMEOUT, set_as_default=False)
        try:
            c.wait_for_workers(2, timeout=TIMEOUT)
            yield c
        finally:
            c.close(timeout=TIMEOUT)
    finally:
        cluster.close(timeout=TIMEOUT)


@pytest.mark.parametrize("kind", ["zip", "dbm"])
def test_to_zarr_while_the_client_holds_the_writer_is_refused(kind: str, tmp_path: Any) -> None:
    """The original bug: dask makes the array through this process's store, which stays
    open (the writer) while the workers write the chunks. Their writes fail with
    StoreLockedError, the run raises it, and the store stays readable."""
    backend = open_backend(kind, tmp_path, new=True)
    x = the_data()
    with fresh_cluster() as c:
        expected = compute(c, x)
        try:
            with pytest.raises(Exception) as raised:
                to_zarr(c, x, ZarrStore(backend), LOCK_TIMEOUT)
            assert_locked(raised.value, kind)
        finally:
            backend.close_sync()
    # Tasks still running when the error came back may have written chunks once this
    # process let go of the writer; each chunk is whole, or not there.
    assert_chunks_whole(read_array(kind, tmp_path), expected)


@pytest.mark.parametrize("kind", ["zip", "dbm"])
def test_to_zarr_after_the_client_closed_is_refused_or_complete(kind: str, tmp_path: Any) -> None:
    """Dask makes the array through this process's store, which is closed before the
    graph runs; then the two workers write the chunks through their copies.

    Either the run raises StoreLockedError (the second worker process is refused),
    or it succeeds and the array reads back exactly, at once or, failing that, with
    an aiostore error saying why not. Once the workers exit, the file opens, and
    holds the array: exactly, if the run succeeded.
    """
    backend = open_backend(kind, tmp_path, new=True)
    x = the_data()
    with fresh_cluster() as c:
        expected = compute(c, x)
        try:
            to_zarr(c, x, ZarrStore(backend), LOCK_TIMEOUT, close_first=True)
        except Exception as exc:
            assert_locked(exc, kind)
            succeeded = False
        else:
            succeeded = True
            # As a user would once compute() returned: read it back.
            try:
                seen = read_array(kind, tmp_path)
            except StoreError:
                pass  # an aiostore error says something is wrong: not silent
            else:
                assert np.array_equal(seen, expected), (
                    f"to_zarr on the cluster returned, and a read-only {kind} store reads the array "
                    f"without an error, but {int((seen != expected).sum())} of {seen.size} values differ "
                    f"({int((seen == 0).sum())} are the fill value)"
                )
    time.sleep(0.1)
    back = read_array(kind, tmp_path)  # the workers exited: their copies are closed
    assert back.shape == SHAPE
    if succeeded:
        np.testing.assert_array_equal(back, expected)
    else:
        assert_chunks_whole(back, expected)
