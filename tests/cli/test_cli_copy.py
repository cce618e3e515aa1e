"""``aiostore copy`` and ``verify`` as a subprocess: a chain of stores, filters, progress
on a pipe and on a pseudo-terminal, and a copy killed part-way then finished."""

from __future__ import annotations

import itertools
import os
import pathlib
import re
import signal
import subprocess

import pytest
from cli_helpers import COMMAND, ENV, aiostore, write_v2, write_v3

from aiostore.sync import DirectoryStore

SUMMARY = re.compile(r"^all done: ([\d,]+) copied, ([\d,]+) skipped, ([\d,]+) bytes copied$")


def summary(stdout: str) -> tuple[int, int, int]:
    match = SUMMARY.match(stdout.splitlines()[-1])
    assert match, stdout
    copied, skipped, nbytes = (int(group.replace(",", "")) for group in match.groups())
    return copied, skipped, nbytes


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "source.zarr"
    write_v2(root)
    write_v3(root / "v3")  # a v3 hierarchy below it: the copy does not care
    return root


def test_directory_to_zip_to_lmdb_to_directory(tmp_path: pathlib.Path, source: pathlib.Path) -> None:
    keys = sum(1 for p in source.rglob("*") if p.is_file())
    nbytes = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    chain = [str(source), f"zip://{tmp_path}/copy.zip", f"lmdb://{tmp_path}/copy.mdb", str(tmp_path / "back")]
    tree = aiostore("tree", chain[0], check=True).stdout
    for src, dst in itertools.pairwise(chain):
        copied = aiostore("copy", src, dst, check=True)
        assert summary(copied.stdout) == (keys, 0, nbytes)
        assert copied.stdout.splitlines()[0].startswith("copied ")  # plain progress lines into a pipe
        assert "\x1b" not in copied.stdout
        verified = aiostore("verify", src, dst, check=True)
        assert verified.stdout == f"equal: {keys:,} keys, {nbytes:,} bytes ({nbytes / 1024:.1f} KiB)\n"
        assert aiostore("tree", dst, check=True).stdout == tree
    assert aiostore("verify", chain[0], chain[-1], check=True).returncode == 0


def test_filters_dry_run_and_if_exists(tmp_path: pathlib.Path, source: pathlib.Path) -> None:
    dest = tmp_path / "dest"
    dry = aiostore("copy", "--dry-run", str(source), str(dest), check=True)
    assert dry.stdout.splitlines()[-1] == "dry run: 122 copied, 0 skipped"
    assert not dest.exists() or not any(dest.rglob("*"))
    # raw/ is left out, but for its metadata; v3/ entirely
    args = ["--exclude", "^raw/", "--include", r"^raw/\.zarray$", "--exclude", "^v3/"]
    copied = aiostore("copy", *args, "-v", str(source), str(dest), check=True)
    log = [line for line in copied.stdout.splitlines() if not line.startswith("copied ")]
    assert log[:3] == ["copy .zattrs", "copy .zgroup", "copy foo/.zgroup"]
    assert "copy raw/.zarray" in log and not any(line.startswith("copy raw/0") for line in log)
    assert summary(copied.stdout)[:2] == (11, 0)
    assert sorted(p.name for p in (dest / "raw").iterdir()) == [".zarray"]

    again = aiostore("copy", str(source), str(dest))
    assert again.returncode == 1 and "all done" not in again.stdout
    assert again.stderr == "aiostore: error: key '.zattrs' exists in destination\n"
    skipped = aiostore("copy", "--if-exists", "skip", "--log", str(tmp_path / "log"), str(source), str(dest))
    assert summary(skipped.stdout)[:2] == (111, 11)
    log_lines = (tmp_path / "log").read_text().splitlines()
    assert log_lines[0] == "skip .zattrs" and log_lines[-1] == skipped.stdout.splitlines()[-1]
    (dest / "raw" / "0.0").write_bytes(b"changed")
    assert aiostore("verify", str(source), str(dest)).returncode == 1
    replaced = aiostore("copy", "--if-exists", "replace", "--progress", "none", str(source), str(dest))
    assert replaced.stdout.splitlines() == [replaced.stdout.strip()]  # the summary only
    assert summary(replaced.stdout)[:2] == (122, 0)
    assert aiostore("verify", str(source), str(dest)).returncode == 0


def test_source_and_dest_paths(tmp_path: pathlib.Path, source: pathlib.Path) -> None:
    dest = f"zip://{tmp_path}/sub.zip"
    aiostore("copy", "--source-path", "v3", "--dest-path", "copied/v3", str(source), dest, check=True)
    assert (
        aiostore("tree", dest, "copied/v3", check=True).stdout.splitlines()[0] == "copied/v3  group (zarr v3)"
    )


def run_on_a_pty(*args: str) -> tuple[int, str]:
    """Run the command with its stdout on a pseudo-terminal; its exit status and what it wrote."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            [*COMMAND, *args], stdout=terminal, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV
        )
    finally:
        os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    return process.returncode, output.decode()


def test_progress_is_a_bar_on_a_terminal(tmp_path: pathlib.Path, source: pathlib.Path) -> None:
    _, output = run_on_a_pty("copy", str(source), str(tmp_path / "dest"))
    assert "━" in output  # rich's bar
    assert "122/122 keys" in output
    assert "\x1b[" in output  # drawn in place, in colour
    assert "copied 122/122" not in output  # not the plain lines
    nbytes = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert (
        output.rstrip().splitlines()[-1].endswith(f"all done: 122 copied, 0 skipped, {nbytes:,} bytes copied")
    )


def test_progress_is_plain_lines_into_a_pipe(tmp_path: pathlib.Path, source: pathlib.Path) -> None:
    result = aiostore("copy", str(source), str(tmp_path / "dest"), check=True)
    lines = result.stdout.splitlines()
    assert "━" not in result.stdout and "\x1b" not in result.stdout and "\r" not in result.stdout
    assert re.fullmatch(r"copied [\d,]+/[\d,]+\+? keys, .+ keys/s, .+/s", lines[0]), lines
    nbytes = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert lines[-1] == f"all done: 122 copied, 0 skipped, {nbytes:,} bytes copied"


def test_a_killed_copy_is_finished_with_if_exists_skip(tmp_path: pathlib.Path) -> None:
    keys = 30_000
    source = tmp_path / "big"
    DirectoryStore(str(source)).setitems({f"data/{i}": i.to_bytes(4, "little") * 8 for i in range(keys)})
    dest = tmp_path / "dest"
    process = subprocess.Popen(
        [*COMMAND, "copy", str(source), str(dest)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the first progress line: after the first batch is written
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    assert first.startswith("copied "), first
    assert process.returncode == -signal.SIGKILL
    written = sum(1 for _ in (dest / "data").iterdir() if not _.name.startswith(".aiostore-tmp"))
    assert 0 < written < keys  # killed part-way
    unfinished = aiostore("verify", str(source), str(dest))
    assert unfinished.returncode == 1 and "only in SRC: data/" in unfinished.stdout

    resumed = aiostore("copy", "--if-exists", "skip", str(source), str(dest), check=True)
    copied, skipped, _ = summary(resumed.stdout)
    assert copied + skipped == keys and skipped >= written
    assert aiostore("verify", str(source), str(dest), check=True).stdout.startswith(f"equal: {keys:,} keys")
