"""Fixtures for the zarr 3 suite: the backends, and pytest-asyncio for this folder only.

zarr 3's ``zarr.testing.store.StoreTests`` is written for pytest-asyncio's auto
mode (bare ``async def`` tests). The core suite uses anyio's plugin instead, so
auto mode is not switched on globally: the hook below marks the coroutine tests
collected *from this folder* with ``pytest.mark.asyncio`` (what auto mode
would do), and async fixtures here are ``pytest_asyncio.fixture``. Nothing in
this folder uses anyio's marker, so the two plugins never claim the same test.

Every backend is a parameter. A backend whose module or class has not landed
in aiostore yet is skipped and says so. The ``objectstore`` backend is
``aiostore.ObjectStore`` on moto's S3 server (``moto_s3``: one per session, on
127.0.0.1, started only when an S3 test runs), with a fresh bucket per test.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pathlib
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

import aiostore
from aiostore.abc import Store


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: object) -> Generator[None, Any, None]:
    # trylast makes this the innermost wrapper: its code after ``yield`` runs
    # before pytest-asyncio's, which turns asyncio-marked coroutine tests into
    # asyncio test items.
    outcome = yield
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result]
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)


def _server_unavailable(reason: str) -> None:
    if os.environ.get("AIOSTORE_REQUIRE_SERVERS", "") not in ("", "0"):
        pytest.fail(f"{reason} (AIOSTORE_REQUIRE_SERVERS is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1, one per session (``tests/servers.py``)."""
    try:
        import moto.server  # noqa: F401
        import obstore  # noqa: F401
    except ImportError as exc:
        _server_unavailable(
            f"the S3 tests need moto's server mode and obstore: pip install 'moto[server]' obstore ({exc})"
        )
    from servers import MotoS3

    server = MotoS3()
    yield server
    server.stop()


@dataclasses.dataclass(frozen=True)
class S3Place:
    """One fresh bucket on the session's moto server: where an S3 backend keeps its data."""

    server: Any
    bucket: str

    def url(self, prefix: str = "") -> str:
        return str(self.server.url(self.bucket, prefix))

    def options(self) -> dict[str, Any]:
        return dict(self.server.options())


@dataclasses.dataclass(frozen=True)
class Backend:
    """How to make (and reopen) one aiostore backend for the zarr 3 tests."""

    name: str
    module: str
    cls_name: str
    #: ``make(cls, place)``: ``place`` is the test's ``tmp_path``, or an
    #: :class:`S3Place` (a fresh bucket) for a backend with ``s3=True``.
    make: Callable[[Any, Any], Store]
    #: Keeps its data outside the store object (files, a folder, a bucket):
    #: reopening means close, then open anew at the same place.
    persistent: bool = False
    why_missing: str = ""
    #: Keeps its data on the moto S3 server (a fresh bucket per test).
    s3: bool = False

    def store_class(self) -> Any:
        if self.why_missing:
            pytest.skip(self.why_missing)
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError:
            pytest.skip(f"{self.module} has not landed yet ({self.cls_name} does not exist)")
        cls = getattr(module, self.cls_name, None)
        if cls is None:
            pytest.skip(f"{self.module}.{self.cls_name} does not exist yet")
        return cls


def _cache_over_memory(cls: Any, tmp: pathlib.Path) -> Store:
    return cls(aiostore.MemoryStore(), max_size=2**20)  # type: ignore[no-any-return]


BACKENDS = [
    Backend("memory", "aiostore", "MemoryStore", lambda cls, tmp: cls()),
    Backend("mapping", "aiostore", "MappingStore", lambda cls, tmp: cls({})),
    Backend(
        "directory",
        "aiostore",
        "DirectoryStore",
        lambda c, t: c(str(t / "data")),
        persistent=True,
    ),
    Backend(
        "nested",
        "aiostore",
        "NestedDirectoryStore",
        lambda c, t: c(str(t / "data")),
        persistent=True,
    ),
    Backend("temp", "aiostore", "TempStore", lambda c, t: c(dir=str(t))),
    Backend("zip", "aiostore", "ZipStore", lambda c, t: c(str(t / "data.zip")), persistent=True),
    Backend("dbm", "aiostore", "DBMStore", lambda c, t: c(str(t / "data.db")), persistent=True),
    Backend("lmdb", "aiostore", "LMDBStore", lambda c, t: c(str(t / "data.mdb")), persistent=True),
    Backend("cache", "aiostore", "LRUStoreCache", _cache_over_memory),
    Backend(
        "objectstore",
        "aiostore",
        "ObjectStore",
        lambda c, place: c(place.url("data"), **place.options()),
        persistent=True,
        s3=True,
    ),
]
BACKEND_NAMES = [b.name for b in BACKENDS]


def backend_by_name(name: str) -> Backend:
    return next(b for b in BACKENDS if b.name == name)


class BackendFactory:
    """Makes stores of one backend at one place, and closes them at the end."""

    def __init__(self, spec: Backend, tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> None:
        self.spec = spec
        self.cls = spec.store_class()
        self.tmp_path = tmp_path
        self.place: Any = tmp_path
        if spec.s3:
            server = request.getfixturevalue("moto_s3")
            self.place = S3Place(server, server.bucket())
        self.made: list[Store] = []

    def __call__(self) -> Store:
        store = self.spec.make(self.cls, self.place)
        self.made.append(store)
        return store

    def reopen(self, store: Store) -> Store:
        """The same data, seen through a fresh store (after closing ``store``, if
        the backend keeps its data in files)."""
        if not self.spec.persistent:
            return store
        store.close_sync()
        return self()

    def close_all(self) -> None:
        for store in self.made:
            if not store.closed:
                store.close_sync()


@pytest.fixture(params=BACKEND_NAMES)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_backend(
    backend_name: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> Iterator[BackendFactory]:
    factory = BackendFactory(backend_by_name(backend_name), tmp_path, request)
    yield factory
    factory.close_all()


@pytest.fixture
def backend(make_backend: BackendFactory) -> Store:
    return make_backend()
