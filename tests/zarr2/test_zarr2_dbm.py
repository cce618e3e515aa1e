"""zarr 2.18.7's DBMStore suites and the seed's DBMStore examples, on aiostore's sync DBMStore.

Only ``dbm.dumb`` is built into this machine's Python: the Gnu and NDBM
variants skip when their module is missing (zarr's own ``importorskip`` says
which), and so does the seed's Berkeley DB example when ``bsddb3`` is missing.
"""

from __future__ import annotations

import dbm.dumb
from typing import Any

import pytest
import zarr
import zarr.tests.test_storage as zt

import aiostore.sync


class TestDBMStore(zt.TestDBMStore):
    def create_store(self, dimension_separator: str | None = None) -> aiostore.sync.DBMStore:
        # The default dbm.open, as in zarr's own test.
        return aiostore.sync.DBMStore(
            zt.mktemp(suffix=".anydbm"), flag="n", dimension_separator=dimension_separator
        )


class TestDBMStoreDumb(zt.TestDBMStoreDumb):
    def create_store(self, **kwargs: Any) -> aiostore.sync.DBMStore:
        return aiostore.sync.DBMStore(zt.mktemp(suffix=".dumbdbm"), flag="n", open=dbm.dumb.open, **kwargs)


class TestDBMStoreGnu(zt.TestDBMStoreGnu):
    def create_store(self, **kwargs: Any) -> aiostore.sync.DBMStore:
        gdbm = pytest.importorskip("dbm.gnu", reason="dbm.gnu is not built into this Python")
        return aiostore.sync.DBMStore(
            zt.mktemp(suffix=".gdbm"), flag="n", open=gdbm.open, write_lock=False, **kwargs
        )


class TestDBMStoreNDBM(zt.TestDBMStoreNDBM):
    def create_store(self, **kwargs: Any) -> aiostore.sync.DBMStore:
        ndbm = pytest.importorskip("dbm.ndbm", reason="dbm.ndbm is not built into this Python")
        return aiostore.sync.DBMStore(zt.mktemp(suffix=".ndbm"), flag="n", open=ndbm.open, **kwargs)


# -- the seed's examples ------------------------------------------------------------


def test_seed_single_array() -> None:
    store = aiostore.sync.DBMStore("data/array.db")
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
    z[...] = 42
    store.close()  # don't forget to call this when you're done
    with aiostore.sync.DBMStore("data/array.db", flag="r") as store:
        assert (zarr.open_array(store, mode="r")[...] == 42).all()


def test_seed_group() -> None:
    store = aiostore.sync.DBMStore("data/group.db")
    root = zarr.group(store=store, overwrite=True)
    foo = root.create_group("foo")
    bar = foo.zeros("bar", shape=(10, 10), chunks=(5, 5))
    bar[...] = 42
    store.close()  # don't forget to call this when you're done
    with aiostore.sync.DBMStore("data/group.db", flag="r") as store:
        assert (zarr.open_group(store, mode="r")["foo/bar"][...] == 42).all()


def test_seed_context_manager() -> None:
    with aiostore.sync.DBMStore("data/array.db") as store:
        z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
        z[...] = 42
        # no need to call store.close()
    assert store.async_store.closed
    with aiostore.sync.DBMStore("data/array.db", flag="r") as store:
        assert (zarr.open_array(store, mode="r")[...] == 42).all()


def test_seed_bsddb3() -> None:
    bsddb3 = pytest.importorskip(
        "bsddb3", reason="bsddb3 is not installed (it needs Berkeley DB's C library to build)"
    )
    store = aiostore.sync.DBMStore("data/array.bdb", open=bsddb3.btopen)
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store, overwrite=True)
    z[...] = 42
    store.close()
    with aiostore.sync.DBMStore("data/array.bdb", flag="r", open=bsddb3.btopen) as store:
        assert (zarr.open_array(store, mode="r")[...] == 42).all()
