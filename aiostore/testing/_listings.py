"""The conformance tests of consistent listings: ``listdir(path)`` names exactly the
children that the keys under ``path + "/"`` imply, before and after keys are removed."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from aiostore.abc import Store
from aiostore.testing._base import StoreTestsBase
from aiostore.testing._cases import sorted_keys

_anyio = pytest.mark.anyio

#: Nested keys, several levels deep. No ``.zarray``/``.zgroup``: a zarr 2 store
#: with ``dimension_separator="/"`` lists the chunks of an array differently.
NESTED_KEYS = [
    "a/b/c/0",
    "a/b/c/1",
    "a/b/d",
    "a/e/f/g",
    "a/h",
    "k",
    "m/n/o/p",
    "m/q",
    "r/s/t",
    "r/u",
    "w/x/y/z",
    "zz",
]
#: Paths no key was ever written at or below.
NEVER_WRITTEN = ["nothing", "a/nothing", "a/b/c/0/deeper", "a/b/cc", "m/n/o/p/q", "kk"]


def children(keys: Iterable[str], path: str) -> list[str]:
    """The child names that ``keys`` imply below ``path`` (``""`` is the root).

    >>> children(["a/b/c", "a/d", "ab", "e"], "a")
    ['b', 'd']
    >>> children(["a/b/c", "a/d", "ab", "e"], ""), children(["a/b/c"], "a/b/c")
    (['a', 'ab', 'e'], [])
    """
    prefix = f"{path}/" if path else ""
    return sorted({key[len(prefix) :].split("/")[0] for key in keys if key.startswith(prefix)})


def paths_of(keys: Iterable[str]) -> list[str]:
    """The root, every key and every path above a key.

    >>> paths_of(["a/b/c", "d"])
    ['', 'a', 'a/b', 'a/b/c', 'd']
    """
    paths = {""}
    for key in keys:
        parts = key.split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(paths)


class ListingTests(StoreTestsBase):
    """``listdir`` agrees with ``list``: no name without a key at or below it, no
    phantom left when a directory's last key goes (by ``delete``, ``delete_many``,
    ``rmdir`` or ``rename``)."""

    def _written_keys(self) -> list[str]:
        if self.values_are_leaves:
            return list(NESTED_KEYS)
        # A flat store also holds a key and keys below it; remove the ones below.
        return [*NESTED_KEYS, "k/l/m", "zz/y"]

    async def _check_listdir(self, store: Store, expected_keys: set[str], paths: Iterable[str]) -> None:
        assert await sorted_keys(store) == sorted(expected_keys)
        for path in paths:
            listed = sorted(await store.listdir(path))
            prefix = f"{path}/" if path else ""
            implied = children(await sorted_keys(store, prefix), path)
            assert listed == implied == children(expected_keys, path), (path, listed, implied)

    @_anyio
    async def test_listdir_matches_list(self, anyio_backend: str) -> None:
        self._need("supports_listing")
        written = self._written_keys()
        every_path = [*paths_of(written), *NEVER_WRITTEN]
        async with await self._open() as store:
            await self._check_listdir(store, set(), ["", *every_path])
            await store.set_many({key: b"v" for key in written})
            keys = set(written)
            await self._check_listdir(store, keys, every_path)
            if not self.supports_deletes:
                return
            # Each step removes the last key (or keys) of at least one directory.
            await store.delete("a/b/c/0")
            keys.discard("a/b/c/0")
            await self._check_listdir(store, keys, every_path)
            await store.delete("a/b/c/1")  # a/b/c's last key: "c" leaves listdir("a/b")
            keys.discard("a/b/c/1")
            await self._check_listdir(store, keys, every_path)
            assert await store.listdir("a/b/c") == [] and await store.listdir("a/b") == ["d"]
            await store.delete_many(["m/n/o/p", "w/x/y/z", "missing"])  # whole chains empty
            keys -= {"m/n/o/p", "w/x/y/z"}
            await self._check_listdir(store, keys, every_path)
            assert await store.listdir("m") == ["q"] and await store.listdir("m/n") == []
            assert "w" not in await store.listdir()
            await store.rmdir("a/e/f")  # a/e's only key was below a/e/f
            keys.discard("a/e/f/g")
            await self._check_listdir(store, keys, every_path)
            assert await store.listdir("a") == ["b", "h"] and await store.listdir("a/e") == []
            await store.rename("r/s", "moved/s")  # r keeps "u"; moved/s/t is new
            await store.rename("r/u", "moved/u")  # r's last key moves away
            keys = (keys - {"r/s/t", "r/u"}) | {"moved/s/t", "moved/u"}
            await self._check_listdir(store, keys, [*every_path, "moved", "moved/s"])
            assert "r" not in await store.listdir() and await store.listdir("r") == []
            removed = [key for key in written if key.startswith(("k/", "zz/"))]
            await store.delete_many(removed)  # a flat store's keys below a key
            keys -= set(removed)
            await self._check_listdir(store, keys, every_path)
            await store.delete_many(sorted(keys))  # every key: every listing is empty
            for path in ["", *every_path, "moved"]:
                assert await store.listdir(path) == [], path

    def test_sync_listdir_matches_keys(self) -> None:
        self._need("supports_listing")
        written = self._written_keys()
        every_path = [*paths_of(written), *NEVER_WRITTEN]
        store = self._open_sync()

        def check(expected_keys: set[str]) -> None:
            stored = sorted(store)
            assert stored == sorted(expected_keys)
            for path in every_path:
                listed = sorted(store.listdir(path))
                assert listed == children(stored, path), (path, listed, children(stored, path))

        check(set())
        store.setitems({key: b"v" for key in written})
        keys = set(written)
        check(keys)
        if self.supports_deletes:
            del store["a/b/c/0"]
            del store["a/b/c/1"]
            store.delitems(["m/n/o/p", "w/x/y/z"])
            store.rmdir("a/e/f")
            store.rename("r/u", "r2/u")
            removed = {key for key in written if key.startswith(("k/", "zz/"))}
            store.delitems(sorted(removed))
            keys -= {"a/b/c/0", "a/b/c/1", "m/n/o/p", "w/x/y/z", "a/e/f/g", "r/u", *removed}
            keys.add("r2/u")
            check(keys)
            assert store.listdir("a/b") == ["d"] and store.listdir("m/n") == [] and store.listdir("a/e") == []
        store.close()


__all__ = ["ListingTests", "NESTED_KEYS", "children", "paths_of"]
