"""The README's zarr 2 blocks, its main job (examples/main_job.py), quickstart and shell commands."""

from __future__ import annotations

import importlib.util
import pathlib
import shlex
import subprocess
import sys

import pytest

_spec = importlib.util.spec_from_file_location(
    "readme_tools", pathlib.Path(__file__).parents[1] / "test_readme.py"
)
assert _spec is not None and _spec.loader is not None
readme = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = readme  # dataclasses look their module up there
_spec.loader.exec_module(readme)

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("block", readme.python_blocks("zarr2"), ids=str)
def test_zarr2_block(block: object) -> None:
    readme.run_block(block)  # the conftest runs each test in a fresh directory


def test_quickstart_runs_end_to_end(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "quick.zarr"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "zarr used the store itself (not a KVStore wrapper): True" in out
    assert "await store.get_many(6 keys):" in out
    assert "chunk 1.1, decoded with blosc:\n[[15 16 17]\n [21 22 23]]" in out
    assert "[18 19 20 21 22 23]]" in out
    assert sorted(p.name for p in path.iterdir()) == [".zarray", ".zattrs", "0.0", "0.1", "1.0", "1.1"]


def test_quickstart_default_path(tmp_path: pathlib.Path) -> None:
    # As the README runs it: no argument, relative to the working directory.
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "quickstart.zarr" / ".zarray").is_file()


def test_the_main_job_runs_end_to_end(tmp_path: pathlib.Path) -> None:
    # The README's first command, on fewer chunks (the full run takes about a minute).
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "main_job.py"), "--chunks", "3000"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert out.count("all done: 2,976 copied, 0 skipped") == 2  # to zip and to LMDB
    assert out.count("equal: 2,976 keys") == 2  # both copies verified
    assert "field  array shape=(540, 550) dtype=float32 chunks=(10, 10) compressor=blosc" in out
    assert "equal to what was written: True" in out
    assert "copy to zip: aiostore.copy_store" in out and "copy to lmdb: aiostore.copy_store" in out
    data = tmp_path / "data" / "main_job"
    assert sorted(p.name for p in data.iterdir()) == ["dataset.mdb", "dataset.zarr", "dataset.zip"]


def test_the_readme_aiostore_commands(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The "Copying stores" section: its zarr 2 block makes the stores its shell block uses.
    monkeypatch.chdir(tmp_path)
    [python] = [b for b in readme.readme_blocks("python") if "zarr.copy_store(store1" in b.code]
    [shell] = [b for b in readme.readme_blocks("sh") if "aiostore copy data/example.zarr" in b.code]
    readme.run_block(python)
    outputs = []
    for line in shell.code.splitlines():
        command = shlex.split(line, comments=True)
        assert command[0] == "aiostore"
        result = subprocess.run(
            [sys.executable, "-m", "aiostore", *command[1:]], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
        outputs.append(result.stdout)
    copied, verified, tree, du, info, dry_run = outputs
    assert "all done: 2 copied, 4 skipped" in copied
    assert verified.startswith("equal: 6 keys")
    assert "baz  array shape=(100,) dtype=int64 chunks=(50,) compressor=blosc" in tree
    assert "total, 6 keys" in du and "Chunks stored" in info
    assert "dry run: 6 copied, 0 skipped" in dry_run and not (tmp_path / "data" / "copy.zarr").exists()
