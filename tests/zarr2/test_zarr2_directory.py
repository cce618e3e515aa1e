"""zarr 2.18.7's own directory-store suites, run against aiostore's sync stores.

The module is imported (not its classes) so pytest does not also collect zarr's
originals. None of these suites feeds absolute or ``..`` keys to the store (the
keys are ``foo``, ``a/b``, ``c/e/f``, ``.zarray`` and the like), so they are safe
outside the sandbox.

Changes to zarr's suites, and why:

* ``test_filesystem_path`` and ``test_init_pathlib`` construct zarr's own
  ``DirectoryStore`` by its module-level name; here they run zarr's exact bodies
  with that name pointing at ``aiostore.sync.DirectoryStore``.
* ``test_listing_keys_slash`` / ``test_listing_keys_no_slash`` are skipped: they
  call zarr's private static helper ``DirectoryStore._keys_fast(path, walker)``
  with a mocked ``os.walk``, which is zarr's implementation detail, not store
  behaviour. ``tests/test_directory.py`` checks the behaviour they protect (keys
  listed the same whether the root was given with a trailing slash or not).
* ``TestTempStore`` runs its nested-chunk (``dimension_separator="/"``) case,
  which zarr skips for its own TempStore (zarr's drops the argument); aiostore's
  keeps it.
"""

from __future__ import annotations

from typing import Any

import pytest
import zarr.tests.test_storage as zt

import aiostore.sync

_KEYS_FAST = (
    "calls zarr's private DirectoryStore._keys_fast(path, walker) with a mocked os.walk: "
    "an implementation detail of zarr's class, not store behaviour (covered in tests/test_directory.py)"
)


class _OwnClassTests:
    """zarr's tests that build ``DirectoryStore(...)`` by name, with the name pointing here."""

    def test_filesystem_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(zt, "DirectoryStore", aiostore.sync.DirectoryStore)
        zt.TestDirectoryStore.test_filesystem_path(self)  # type: ignore[arg-type]

    def test_init_pathlib(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(zt, "DirectoryStore", aiostore.sync.DirectoryStore)
        zt.TestDirectoryStore.test_init_pathlib(self)  # type: ignore[arg-type]

    @pytest.mark.skip(reason=_KEYS_FAST)
    def test_listing_keys_slash(self) -> None:
        raise AssertionError("skipped")

    @pytest.mark.skip(reason=_KEYS_FAST)
    def test_listing_keys_no_slash(self) -> None:
        raise AssertionError("skipped")


class TestDirectoryStore(_OwnClassTests, zt.TestDirectoryStore):
    def create_store(
        self, normalize_keys: bool = False, dimension_separator: str | None = ".", **kwargs: Any
    ) -> aiostore.sync.DirectoryStore:
        path = zt.tempfile.mkdtemp()
        zt.atexit.register(zt.atexit_rmtree, path)
        return aiostore.sync.DirectoryStore(
            path, normalize_keys=normalize_keys, dimension_separator=dimension_separator, **kwargs
        )

    def test_repr_and_path(self) -> None:
        store = self.create_store()
        assert zt.os.path.isabs(store.path)
        assert repr(store) == f"DirectoryStore(DirectoryStore({store.path!r}))"


class TestNestedDirectoryStore(_OwnClassTests, zt.TestNestedDirectoryStore):
    def create_store(self, normalize_keys: bool = False, **kwargs: Any) -> aiostore.sync.NestedDirectoryStore:
        path = zt.tempfile.mkdtemp()
        zt.atexit.register(zt.atexit_rmtree, path)
        return aiostore.sync.NestedDirectoryStore(path, normalize_keys=normalize_keys, **kwargs)


class TestNestedDirectoryStoreNone:
    def test_value_error(self, tmp_path: Any) -> None:
        store = aiostore.sync.NestedDirectoryStore(
            str(tmp_path), normalize_keys=True, dimension_separator=None
        )
        assert store._dimension_separator == "/"


class TestNestedDirectoryStoreWithWrongValue:
    def test_value_error(self, tmp_path: Any) -> None:
        with pytest.raises(ValueError):
            aiostore.sync.NestedDirectoryStore(str(tmp_path), normalize_keys=True, dimension_separator=".")


class TestTempStore(zt.TestTempStore):
    def create_store(self, **kwargs: Any) -> aiostore.sync.TempStore:
        return aiostore.sync.TempStore(**kwargs)
