"""Fixtures for running zarr 2.18's own store suites against aiostore's sync stores.

Three things make zarr 2's suites run here (see the project's testing notes):

* numcodecs' Pickle codec refuses to decode unless
  ``NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE=1`` is set *before* numcodecs is
  imported, and the object-array tests need it;
* the suites write to relative paths (``data/...``, ``fixture/...``), so every
  test runs in its own scratch working directory;
* ``test_init_array*`` take the module-level fixture
  ``dimension_separator_fixture`` from ``zarr/tests/test_storage.py``.

``moto_s3`` is moto's S3 server on 127.0.0.1 (``tests/servers.py``), one per
session, started only when an S3 test asks for it; each store takes a fresh
bucket from it. Without moto or obstore the S3 tests skip and say why, unless
``AIOSTORE_REQUIRE_SERVERS=1`` makes that an error (CI).
"""

from __future__ import annotations

import os
import sys

os.environ["NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE"] = "1"
if "numcodecs.pickles" in sys.modules:  # imported early by something else: it read the variable already
    sys.modules["numcodecs.pickles"].ALLOW_UNSAFE_PICKLE_DECODE = True

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from zarr.tests.test_storage import dimension_separator_fixture

__all__ = ["dimension_separator_fixture"]


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own empty directory: zarr's suites write to relative paths."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1, one per session."""
    try:
        import moto.server  # noqa: F401
        import obstore  # noqa: F401
    except ImportError as exc:
        reason = (
            f"the S3 tests need moto's server mode and obstore: pip install 'moto[server]' obstore ({exc})"
        )
        if os.environ.get("AIOSTORE_REQUIRE_SERVERS", "") not in ("", "0"):
            pytest.fail(f"{reason} (AIOSTORE_REQUIRE_SERVERS is set)", pytrace=False)
        pytest.skip(reason)
    from servers import MotoS3

    server = MotoS3()
    yield server
    server.stop()
