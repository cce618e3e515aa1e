"""Servers for the object-store tests, started by the tests themselves on 127.0.0.1.

* ``moto_s3``: moto's S3 server (from PyPI) in a child process, one per session;
  each test takes a fresh bucket from it.
* ``azurite``: Azurite's Blob service (from the npm registry) in a subprocess,
  one per session; each test takes a fresh container. npm installs ``azurite@3``
  once into ``.nox/azurite/`` under the repository root (reused afterwards; set
  ``AIOSTORE_AZURITE_DIR`` to use another folder). Without ``node`` and ``npm``
  the Azure tests skip and say why.

Both skip (with the reason) when their server cannot run here; set
``AIOSTORE_REQUIRE_SERVERS=1`` to make that an error instead (CI, where a silent
skip would hide a missing install step; nox's ``tests`` session sets it when
``$CI`` is set).

A test class here may list the suite's tests that fail on its store because of
an aiostore bug (``xfails``) or that another class already runs (``skips``):
see :func:`pytest_collection_modifyitems`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Azurite, MotoS3, ServerUnavailable, install_azurite

REPO = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> None:
    if os.environ.get("AIOSTORE_REQUIRE_SERVERS", "") not in ("", "0"):
        pytest.fail(f"{reason} (AIOSTORE_REQUIRE_SERVERS is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        _unavailable(f"the S3 tests need moto's server mode: pip install 'moto[server]' ({exc})")
    server = MotoS3(process=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    cache = Path(os.environ.get("AIOSTORE_AZURITE_DIR") or REPO / ".nox" / "azurite")
    try:
        executable = install_azurite(cache)
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    server = Azurite(executable)
    yield server
    server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test class's ``xfails`` and ``skips`` (``{test name: reason}``) mark those inherited tests.

    The conformance classes list in ``xfails`` the suite's tests that an aiostore
    bug breaks on their store only: each stays, ``xfail(strict=True)``, and fails
    the run once the bug is fixed (so that its entry is removed). ``skips`` leaves
    out tests another class already runs against the same server.
    """
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:  # a conftest's hook sees the whole session's items
            continue
        cls = getattr(item, "cls", None)
        name = getattr(item, "originalname", item.name)
        xfails: dict[str, str] = getattr(cls, "xfails", None) or {}
        skips: dict[str, str] = getattr(cls, "skips", None) or {}
        if name in xfails:
            item.add_marker(pytest.mark.xfail(strict=True, reason=xfails[name]))
        if name in skips:
            item.add_marker(pytest.mark.skip(reason=skips[name]))
