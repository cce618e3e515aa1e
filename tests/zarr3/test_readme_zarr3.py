"""The README's zarr 3 blocks (the other README blocks run in the core and zarr 2 sessions)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

_spec = importlib.util.spec_from_file_location(
    "readme_tools", pathlib.Path(__file__).parents[1] / "test_readme.py"
)
assert _spec is not None and _spec.loader is not None
readme = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = readme  # dataclasses look their module up there
_spec.loader.exec_module(readme)


@pytest.mark.parametrize("block", readme.python_blocks("zarr3"), ids=str)
def test_zarr3_block(block: object, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    readme.run_block(block)
