"""``aiostore ls``, ``tree``, ``du`` and ``info`` on zarr v2 and v3 hierarchies, as a subprocess."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from cli_helpers import ENV, aiostore, file_bytes, write_v2, write_v3


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("browse") / "v2.zarr"
    write_v2(root)
    return root


@pytest.fixture(scope="module")
def v3(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("browse") / "v3.zarr"
    write_v3(root)
    return root


def lines(*args: str) -> list[str]:
    result = aiostore(*args, check=True)
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_tree_v2(v2: pathlib.Path) -> None:
    assert lines("tree", str(v2)) == [
        "/  group (zarr v2)",
        "├── foo  group",
        "│   └── bar  array shape=(50,) dtype=float64 chunks=(20,) compressor=zstd",
        "├── implicit  group (implicit)",
        "│   └── baz  array shape=(4,) dtype=uint8 chunks=(2,) compressor=none",
        "└── raw  array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc",
    ]
    assert lines("tree", str(v2), "--depth", "1")[1:] == [
        "├── foo  group",
        "├── implicit  group (implicit)",
        "└── raw  array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc",
    ]
    assert lines("tree", str(v2), "foo") == [
        "foo  group (zarr v2)",
        "└── bar  array shape=(50,) dtype=float64 chunks=(20,) compressor=zstd",
    ]


def test_tree_v3_with_sharding(v3: pathlib.Path) -> None:
    assert lines("tree", str(v3)) == [
        "/  group (zarr v3)",
        "├── a  array shape=(20, 20) dtype=int32 chunks=(10, 10) codecs=bytes/zstd",
        "└── g  group",
        "    └── s  array shape=(64, 64) dtype=uint16 chunks=(8, 8) shards=(32, 32)"
        " codecs=sharding_indexed(bytes/zstd)",
    ]


def test_ls(v2: pathlib.Path, v3: pathlib.Path) -> None:
    assert lines("ls", str(v2)) == [
        "foo/       group",
        "implicit/  group (implicit)",
        "raw        array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc",
    ]
    assert lines("ls", str(v2), "foo") == [
        "bar  array shape=(50,) dtype=float64 chunks=(20,) compressor=zstd"
    ]
    assert lines("ls", str(v2), "/raw/") == [
        "raw  array shape=(100, 100) dtype=int32 chunks=(10, 10) compressor=blosc"
    ]
    assert lines("ls", f"file://{v3}", "g") == [
        "s  array shape=(64, 64) dtype=uint16 chunks=(8, 8) shards=(32, 32)"
        " codecs=sharding_indexed(bytes/zstd)"
    ]


def test_ls_uses_consolidated_metadata(tmp_path: pathlib.Path, v2: pathlib.Path) -> None:
    store = tmp_path / "consolidated.zarr"
    shutil.copytree(v2, store)
    metadata = {
        key: json.loads((store / key).read_text())
        for key in [".zgroup", ".zattrs", "foo/.zgroup", "foo/bar/.zarray", "raw/.zarray"]
    }
    metadata["raw/.zarray"]["shape"] = [7, 7]  # consolidated metadata answers for the array
    (store / ".zmetadata").write_text(json.dumps({"zarr_consolidated_format": 1, "metadata": metadata}))
    assert lines("ls", str(store))[-1].startswith("raw        array shape=(7, 7) dtype=int32")


def test_ls_of_an_empty_store_prints_nothing(tmp_path: pathlib.Path) -> None:
    assert lines("ls", str(tmp_path)) == []
    assert lines("tree", str(tmp_path)) == ["/  group (implicit)"]


def test_du(v2: pathlib.Path, v3: pathlib.Path) -> None:
    total = file_bytes(v2)
    out = lines("du", "--bytes", str(v2))
    assert out == [
        f"{file_bytes(v2, 'foo'):>6,}  foo/",
        f"{file_bytes(v2, 'implicit'):>6,}  implicit/",
        f"{file_bytes(v2, 'raw'):>6,}  raw/",
        f"{total:,}  total, 111 keys",
    ]
    human = lines("du", str(v2))
    assert human[-1] == f"{total / 1024:.1f} KiB  total, 111 keys"
    assert lines("du", "-s", "-b", str(v3), "g") == [f"{file_bytes(v3, 'g'):,}  total, 5 keys"]
    assert lines("du", "-b", str(v3), "a/zarr.json") == [
        f"{(v3 / 'a/zarr.json').stat().st_size}  total, 1 key"
    ]


def test_info_of_arrays(v2: pathlib.Path, v3: pathlib.Path) -> None:
    info = dict(line.split(" : ", 1) for line in lines("info", str(v2), "raw"))
    info = {name.strip(): value for name, value in info.items()}
    stored = file_bytes(v2, "raw")
    assert info == {
        "Path": "raw",
        "Type": "array (zarr v2)",
        "Shape": "(100, 100)",
        "Data type": "int32",
        "Chunks": "(10, 10)",
        "Order": "C",
        "Compressor": "blosc(cname='lz4', clevel=5, shuffle=1, blocksize=0)",
        "Filters": "none",
        "Fill value": "0",
        "Attributes": "0",
        "No. bytes": "40,000 (39.1 KiB)",
        "No. bytes stored": f"{stored:,} ({stored / 1024:.1f} KiB)",
        "Storage ratio": f"{40_000 / stored:.1f}",
        "Chunks stored": "100/100",
    }
    out = "\n".join(lines("info", str(v2), "foo/bar"))
    assert "Attributes       : 2 (scale, units)" in out and "Chunks stored    : 3/3" in out
    out = "\n".join(lines("info", str(v3), "g/s"))
    assert "Type             : array (zarr v3)" in out
    assert "Shards           : (32, 32)" in out and "Chunks           : (8, 8)" in out
    assert "Codecs           : sharding_indexed(codecs=[bytes(endian='little'), zstd(" in out
    assert "Chunks stored    : 3/4" in out and "No. bytes        : 8,192 (8.0 KiB)" in out


def test_info_of_groups(v2: pathlib.Path, v3: pathlib.Path) -> None:
    assert lines("info", str(v2)) == [
        "Path       : /",
        "Type       : group (zarr v2)",
        "Groups     : 2 (foo, implicit)",
        "Arrays     : 1 (raw)",
        "Attributes : 1 (title)",
    ]
    assert lines("info", str(v3), "g")[1:4] == [
        "Type       : group (zarr v3)",
        "Groups     : 0",
        "Arrays     : 1 (s)",
    ]


def test_unreadable_metadata_is_listed_not_fatal(tmp_path: pathlib.Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ".zarray").write_text("{not json")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / ".zgroup").write_text('{"zarr_format": 2}')
    out = lines("ls", str(tmp_path))
    assert out[0].startswith("bad    unreadable metadata: bad/.zarray: not valid JSON metadata")
    assert out[1] == "good/  group"
    result = aiostore("info", str(tmp_path), "bad")
    assert result.returncode == 1
    assert result.stderr.startswith("aiostore: error: bad/.zarray: not valid JSON metadata")


def test_the_console_script(v2: pathlib.Path) -> None:
    # the script beside this Python (its venv's bin), else one on PATH
    script = shutil.which("aiostore", path=os.path.dirname(sys.executable)) or shutil.which("aiostore")
    if script is None:
        pytest.skip("the aiostore console script is not installed")
    result = subprocess.run(
        [script, "ls", str(v2), "foo"], capture_output=True, text=True, env=ENV, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "bar  array shape=(50,) dtype=float64 chunks=(20,) compressor=zstd\n",
        "",
    )
    assert "copy" in subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
