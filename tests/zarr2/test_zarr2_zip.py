"""aiostore's sync ZipStore under zarr 2.18: zarr's own TestZipStore and the seed's examples."""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.tests.test_storage as zt

import aiostore.sync
from aiostore.sync import ZipStore

_names = itertools.count()


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path) -> None:
    """The suite and the seed write to ``data/...`` below the scratch directory."""
    (tmp_path / "data").mkdir(exist_ok=True)


class TestZipStore(zt.TestZipStore):  # type: ignore[misc]
    """zarr 2.18's TestZipStore with aiostore's sync ZipStore.

    Two tests are replaced (the rest run unchanged):

    * ``test_permissions`` writes the key ``"baz/"`` and expects a Zip *directory*
      entry named ``baz/``. aiostore's key gate normalizes every key the same
      way, so ``"baz/"`` is the key ``"baz"`` (a file entry, mode 0o644), and
      directory entries in a Zip file are not keys. The replacement checks the
      permissions of both entries as aiostore writes them.
    * ``test_store_and_retrieve_ndarray`` builds zarr's own ZipStore by name;
      the replacement runs the same test on aiostore's.
    """

    ZipStoreClass = ZipStore

    def create_store(self, **kwargs: Any) -> ZipStore:
        return ZipStore(f"store-{next(_names)}.zip", mode="w", **kwargs)

    def test_permissions(self) -> None:
        store = ZipStore("data/store.zip", mode="w")
        store["foo"] = b"bar"
        store["baz/"] = b""
        store.close()
        with zipfile.ZipFile("data/store.zip") as zf:
            assert oct(zf.getinfo("foo").external_attr >> 16) == "0o644"
            assert oct(zf.getinfo("baz").external_attr >> 16) == "0o644"
            assert zf.namelist() == ["foo", "baz"]

    def test_store_and_retrieve_ndarray(self) -> None:
        store = ZipStore("data/store.zip")
        x = np.array([[1, 2], [3, 4]])
        store["foo"] = x
        y = np.frombuffer(store["foo"], dtype=x.dtype).reshape(x.shape)
        assert np.array_equiv(y, x)
        store.close()


# -- the seed's examples ----------------------------------------------------------------


def test_seed_store_a_single_array() -> None:
    store = ZipStore("data/array.zip", mode="w")
    z = zarr.zeros((10, 10), chunks=(5, 5), store=store)
    z[...] = 42
    store.close()  # don't forget to call this when you're done

    with zipfile.ZipFile("data/array.zip") as zf:
        assert sorted(zf.namelist()) == [".zarray", "0.0", "0.1", "1.0", "1.1"]
    reader = ZipStore("data/array.zip", mode="r")
    assert (zarr.open_array(reader, mode="r")[...] == 42).all()
    reader.close()


def test_seed_store_a_group() -> None:
    store = ZipStore("data/group.zip", mode="w")
    root = zarr.group(store=store)
    foo = root.create_group("foo")
    bar = foo.zeros("bar", shape=(10, 10), chunks=(5, 5))
    bar[...] = 42
    store.close()  # don't forget to call this when you're done

    with ZipStore("data/group.zip", mode="r") as reader:
        group = zarr.open_group(reader, mode="r")
        assert list(group) == ["foo"] and list(group["foo"]) == ["bar"]
        assert (group["foo/bar"][...] == 42).all()


def test_seed_context_manager() -> None:
    with ZipStore("data/array.zip", mode="w") as store:
        z = zarr.zeros((10, 10), chunks=(5, 5), store=store)
        z[...] = 42
        # no need to call store.close()
    assert store.closed
    with zarr.ZipStore("data/array.zip", mode="r") as theirs:  # zarr 2's own store reads it
        assert (zarr.open_array(theirs, mode="r")[...] == 42).all()


def test_seed_second_write_warns_about_duplicates() -> None:
    store = ZipStore("data/example.zip", mode="w")
    z = zarr.zeros(100, chunks=10, store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z[...] = 42  # first write OK
    with pytest.warns(UserWarning, match="Duplicate name"):
        z[...] = 43  # second write generates warnings
    assert (z[...] == 43).all()  # reads return the newest entries
    store.close()
    with ZipStore("data/example.zip", mode="r") as reader:
        assert (zarr.open_array(reader, mode="r")[...] == 43).all()


def test_seed_unaligned_writes_warn_about_duplicates() -> None:
    store = ZipStore("data/example.zip", mode="w")
    z = zarr.zeros(100, chunks=10, store=store)
    z[5:15] = 42
    with pytest.warns(UserWarning, match="Duplicate name: '1'"):
        z[15:25] = 42  # write overlaps chunk previously written, generates warnings
    expected = np.zeros(100)
    expected[5:25] = 42
    assert (z[...] == expected).all()
    store.close()


def test_seed_zip_a_directory_store_for_reading() -> None:
    """The seed's alternative: write a DirectoryStore, zip the directory, read the Zip file."""
    source = zarr.DirectoryStore("data/source.zarr")
    root = zarr.group(store=source)
    root.zeros("a/b", shape=(20,), chunks=(5,), dtype="i4")[...] = np.arange(20)
    archive = shutil.make_archive("data/archive", "zip", root_dir="data/source.zarr")
    with zipfile.ZipFile(archive) as zf:
        assert "a/" in zf.namelist()  # a directory entry: not a key
    with ZipStore(archive, mode="r") as store:
        assert "a/" not in list(store)
        assert (zarr.open_group(store, mode="r")["a/b"][...] == np.arange(20)).all()


def test_zarr2_zip_files_and_aiostore_zip_files_are_interchangeable() -> None:
    theirs = zarr.ZipStore("data/theirs.zip", mode="w")
    zarr.array(np.arange(50), chunks=7, store=theirs)
    theirs.close()
    with ZipStore("data/theirs.zip", mode="a") as ours:
        z = zarr.open_array(ours)
        assert (z[...] == np.arange(50)).all()
        z.attrs["by"] = "aiostore"
    with zarr.ZipStore("data/theirs.zip", mode="r") as theirs:
        assert zarr.open_array(theirs, mode="r").attrs["by"] == "aiostore"


def test_array_on_a_zip_store_pickles() -> None:
    store = ZipStore("data/array.zip", mode="w")
    z = zarr.array(np.arange(30), chunks=10, store=store)
    copy = pickle.loads(pickle.dumps(z))  # the store is flushed, re-opened for appending
    assert (copy[...] == np.arange(30)).all()
    store.close()
    copy.store.close()


def test_zarr2_uses_the_batch_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ZipStore("data/array.zip", mode="w")
    z = zarr.zeros(100, chunks=10, store=store)
    calls: list[int] = []
    real = aiostore.sync.SyncStore.getitems

    def counting(self: aiostore.sync.SyncStore, keys: Any, **kwargs: Any) -> Any:
        keys = list(keys)
        calls.append(len(keys))
        return real(self, keys, **kwargs)

    monkeypatch.setattr(aiostore.sync.SyncStore, "getitems", counting)
    z[...] = 1
    assert z[...].sum() == 100
    assert calls == [10]  # one batch of ten chunks, not ten single reads
    store.close()
    assert os.path.getsize("data/array.zip") > 0
