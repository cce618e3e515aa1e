"""The conformance tests of the sync twin (:class:`aiostore.sync.SyncStore`), run with no event loop."""

from __future__ import annotations

import pickle
import threading

import anyio
import numpy as np
import pytest

from aiostore.abc import Store
from aiostore.errors import ClosedStoreError, ReadOnlyError
from aiostore.sync import SyncStore
from aiostore.testing._base import StoreTestsBase
from aiostore.testing._cases import value_for


class SyncTwinTests(StoreTestsBase):
    """The sync twin: the ``MutableMapping``, zarr 2's batch and hierarchy methods, pickling, threads."""

    def test_sync_mutable_mapping(self) -> None:
        self._need("supports_listing")
        store = self._open_sync()
        assert len(store) == 0 and list(store) == [] and "a" not in store
        store["a"] = b"0"
        store["a"] = b"1"  # overwritten: still one key
        store["b/c"] = bytearray(b"22")
        store["n"] = np.array([1, 2], dtype="u1")
        assert store["a"] == b"1" and store["b/c"] == b"22" and store["n"] == b"\x01\x02"
        self._value_bytes(store["a"], b"1")
        assert "a" in store and "/b/c" in store and "b" not in store and "zzz" not in store
        assert (
            len(store) == 3
            and sorted(store) == ["a", "b/c", "n"]
            and sorted(store.keys()) == ["a", "b/c", "n"]
        )
        assert sorted(self._value_bytes(value) for value in store.values()) == [b"\x01\x02", b"1", b"22"]
        assert sorted(store.items()) == [("a", b"1"), ("b/c", b"22"), ("n", b"\x01\x02")]
        assert store.get("zzz") is None and store.get("zzz", b"d") == b"d"
        assert store.setdefault("a", b"other") == b"1"
        store.update({"d": b"4"}, e=b"5")
        assert dict(store) == {"a": b"1", "b/c": b"22", "n": b"\x01\x02", "d": b"4", "e": b"5"}
        with pytest.raises(KeyError):
            store["missing"]
        with pytest.raises(TypeError):
            store["x"] = [1, 2, 3]  # type: ignore[assignment]  # the point of the test
        with pytest.raises(TypeError):
            store["x"] = "text"  # type: ignore[assignment]
        with pytest.raises(ValueError, match="invalid key"):
            store["../x"] = b"x"
        with pytest.raises(ValueError, match="invalid key"):
            store["a\x00"]
        assert "x" not in store and len(store) == 5
        if self.supports_deletes:
            assert store.pop("d") == b"4" and store.pop("d", None) is None
            with pytest.raises(KeyError):
                store.pop("d")
            del store["e"]
            with pytest.raises(KeyError):
                del store["e"]
            key, value = store.popitem()
            assert dict(store).get(key) is None and value in (b"1", b"22", b"\x01\x02")
            assert len(store) == 2
        else:
            with pytest.raises(NotImplementedError):
                del store["e"]
            assert store["e"] == b"5"
        store.clear()
        assert len(store) == 0 and list(store) == []
        store.close()

    def test_sync_batch_and_hierarchy_methods(self) -> None:
        store = self._open_sync()
        store.setitems({"a/0": b"x", "a/1": np.array([1, 2], dtype="u1"), "b": b"yy"})
        assert store.getitems(["a/0", "a/1", "missing"], contexts={}) == {"a/0": b"x", "a/1": b"\x01\x02"}
        assert store.getitems(["b"]) == {"b": b"yy"}
        assert store.getitems([]) == {}
        assert store.getitems(["/b", "b"]) == {"/b": b"yy", "b": b"yy"}  # keyed as asked
        assert store.getsize("a/1") == 2
        assert store.is_readable() and store.is_writeable()
        assert store.is_erasable() is self.supports_deletes
        assert store.is_listable() is self.supports_listing
        if self.supports_listing:
            assert store.listdir() == ["a", "b"] and store.listdir(None) == ["a", "b"]
            assert store.listdir("a") == ["0", "1"] and store.listdir("b") == []
            assert store.getsize() == 2 and store.getsize(None) == 2 and store.getsize("a") == 3
            assert store.getsize("missing") == 0
        if self.supports_deletes and self.supports_listing:
            store.rename("a", "c")
            assert sorted(store) == ["b", "c/0", "c/1"]
            with pytest.raises(KeyError):
                store.rename("a", "d")
            with pytest.raises(FileExistsError):
                store.rename("c", "b")
            store.delitems(["c/0", "missing"])
            assert sorted(store) == ["b", "c/1"]
            store.rmdir("c")
            assert list(store) == ["b"]
            store.rmdir()
            assert list(store) == []
        elif not self.supports_deletes:
            with pytest.raises(NotImplementedError):
                store.delitems(["a/0"])
            with pytest.raises(NotImplementedError):
                store.rename("a", "c")
            store.delitems(["missing"])
            assert store.getitems(["a/0", "b"]) == {"a/0": b"x", "b": b"yy"}
        store.close()

    def test_sync_close_and_context_manager(self) -> None:
        with self._open_sync() as store:
            store["a"] = b"1"
            store.flush()
            assert store["a"] == b"1"
        assert store.async_store.closed
        with pytest.raises(ClosedStoreError):
            store["a"]
        with pytest.raises(ValueError, match="is closed"):
            store["b"] = b"2"
        with pytest.raises(ClosedStoreError):
            store.getitems(["a"])
        store.close()  # closing twice is fine, as zarr's suites expect

    def test_sync_read_only(self) -> None:
        self._need("supports_read_only")
        store = self._open_sync()
        store.setitems({"a": b"1", "b/c": b"2"})
        store.flush()
        view = self._open_sync(read_only=True)
        assert view.read_only and not view.is_writeable() and not view.is_erasable()
        with pytest.raises(ReadOnlyError):
            view["a"] = b"2"
        with pytest.raises(PermissionError):
            view.setitems({"n": b"2"})
        with pytest.raises(PermissionError):
            del view["a"]
        with pytest.raises(PermissionError):
            view.delitems(["a"])
        assert view.getitems(["a", "b/c", "n"]) == {"a": b"1", "b/c": b"2"}
        assert view["b/c"] == b"2"
        view.close()
        store.close()

    def test_sync_pickle(self) -> None:
        self._need("supports_pickle")
        store = self._open_sync()
        store.setitems({"a": b"1", "b/c": b"2"})
        clone = pickle.loads(pickle.dumps(store))
        self._opened.append(clone.async_store)
        assert isinstance(clone, SyncStore) and clone.async_store is not store.async_store
        assert type(clone.async_store) is type(store.async_store)
        assert clone.getitems(["a", "b/c", "x"]) == {"a": b"1", "b/c": b"2"}
        assert clone.read_only == store.read_only
        assert clone.async_store.dimension_separator == store.async_store.dimension_separator
        clone.close()
        assert store["a"] == b"1"  # the original is unaffected by the copy's close
        inner = pickle.loads(pickle.dumps(store.async_store))  # the async store pickles as well
        self._opened.append(inner)
        assert isinstance(inner, Store) and not inner.closed
        assert anyio.run(inner.get_many, ["a", "b/c"]) == {"a": b"1", "b/c": b"2"}
        SyncStore(inner).close()
        store.close()

    def test_sync_threads(self) -> None:
        store = self._open_sync()
        values = {f"t/{i}": value_for(i) for i in range(64)}
        store.setitems(values)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for _ in range(5):
                    keys = [f"t/{i}" for i in range(n, 64, 4)]
                    assert store.getitems(keys) == {k: values[k] for k in keys}
                    assert store[f"t/{n}"] == values[f"t/{n}"]
                    store[f"mine/{n}"] = bytes([n]) * 100
            except BaseException as exc:  # reported below, with the thread's traceback
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        if errors:
            raise errors[0]
        assert store.getitems([f"mine/{n}" for n in range(4)]) == {
            f"mine/{n}": bytes([n]) * 100 for n in range(4)
        }
        store.close()
