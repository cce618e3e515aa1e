"""Fixtures for running zarr 2.18's own store suites against aiostore's sync stores.

Three things make zarr 2's suites run here (see the project's testing notes):

* numcodecs' Pickle codec refuses to decode unless
  ``NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE=1`` is set *before* numcodecs is
  imported, and the object-array tests need it;
* the suites write to relative paths (``data/...``, ``fixture/...``), so every
  test runs in its own scratch working directory;
* ``test_init_array*`` take the module-level fixture
  ``dimension_separator_fixture`` from ``zarr/tests/test_storage.py``.
"""

from __future__ import annotations

import os
import sys

os.environ["NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE"] = "1"
if "numcodecs.pickles" in sys.modules:  # imported early by something else: it read the variable already
    sys.modules["numcodecs.pickles"].ALLOW_UNSAFE_PICKLE_DECODE = True

import pathlib

import pytest
from zarr.tests.test_storage import dimension_separator_fixture

__all__ = ["dimension_separator_fixture"]


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own empty directory: zarr's suites write to relative paths."""
    monkeypatch.chdir(tmp_path)
