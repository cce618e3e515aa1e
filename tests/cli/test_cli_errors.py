"""Errors as a shell user expects: one line on stderr, a non-zero exit, no traceback
(but with ``--debug``)."""

from __future__ import annotations

import pathlib

import pytest
from cli_helpers import aiostore, write_v2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("errors") / "v2.zarr"
    write_v2(root)
    return root


def one_error_line(*args: str, status: int = 1) -> str:
    result = aiostore(*args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiostore: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "url", ["{tmp}/no/such/dir", "zip://{tmp}/nope.zip", "lmdb://{tmp}/nope.mdb", "file://{tmp}/nope"]
)
def test_a_missing_store(tmp_path: pathlib.Path, url: str) -> None:
    url = url.format(tmp=tmp_path)
    line = one_error_line("ls", url)
    assert line == f"aiostore: error: store {url!r} does not exist (no such file or directory)"
    assert "does not exist" in one_error_line("copy", url, str(tmp_path / "dest"))
    assert not (tmp_path / "dest").exists()  # the destination is not created for nothing


def test_bad_urls(store: pathlib.Path) -> None:
    assert "unknown store URL scheme 'ftp'" in one_error_line("tree", "ftp://host/x")
    assert "bad store URL 's3:/bucket'" in one_error_line("du", "s3:/bucket")
    assert "unknown cache option" in one_error_line("ls", f"cache+{store}?size=1")


def test_a_read_only_destination(tmp_path: pathlib.Path, store: pathlib.Path) -> None:
    # an http:// store is read-only: refused before anything is read or sent
    line = one_error_line("copy", str(store), "http://127.0.0.1:9/x.zarr")
    url = "http://127.0.0.1:9/x.zarr"
    assert line == f"aiostore: error: destination {url!r} is read-only: nothing can be written there"
    (tmp_path / "file").write_text("not a zip")
    assert "not a Zip file" in one_error_line("copy", str(store), f"zip://{tmp_path}/file")
    assert (tmp_path / "file").read_text() == "not a zip"


def test_problems_inside_a_store(store: pathlib.Path) -> None:
    assert (
        one_error_line("ls", str(store), "nope")
        == f"aiostore: error: no group or array at 'nope' in {str(store)!r}"
    )
    assert "'..' segments are not allowed" in one_error_line("info", str(store), "../x")
    assert "nothing stored at 'nope'" in one_error_line("du", str(store), "nope")
    assert "bad size" in one_error_line("copy", "--max-memory", "lots", str(store), "memory://")


def test_verify_errors_exit_with_2(tmp_path: pathlib.Path, store: pathlib.Path) -> None:
    line = one_error_line("verify", str(store), str(tmp_path / "nope"), status=2)
    assert line.endswith("does not exist (no such file or directory)")


def test_usage_errors_are_clicks() -> None:
    result = aiostore("copy", "only-one-argument")
    assert result.returncode == 2 and "Missing argument 'DST'" in result.stderr
    result = aiostore("copy", "--if-exists", "sometimes", "a", "b")
    assert result.returncode == 2 and "'sometimes' is not one of" in result.stderr


def test_debug_shows_the_traceback(tmp_path: pathlib.Path) -> None:
    result = aiostore("--debug", "ls", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "does not exist" in result.stderr.splitlines()[-1]
