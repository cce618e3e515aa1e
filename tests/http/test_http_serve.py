"""The real ``aiostore serve``, as a subprocess on ``--port 0``: it prints where it serves,
answers, logs each request, and exits 0 on SIGTERM and on SIGINT with its store closed."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from serving import STARTUP_SECONDS, running, serve_command

import aiostore.sync


def stop(proc: subprocess.Popen[str], sig: int) -> str:
    """Send ``sig``; the exit status must be 0. Returns stderr."""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


@pytest.fixture
def lmdb_path(tmp_path: Path) -> str:
    path = str(tmp_path / "data.mdb")
    store = aiostore.sync.LMDBStore(path)
    store.update({"arr/.zarray": b'{"zarr_format": 2}', "arr/0.0": bytes(range(100)), "arr/0.1": b"x"})
    store.close()
    return path


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_an_lmdb_store_then_stop_cleanly(lmdb_path: str, backend: str, sig: int) -> None:
    url = f"lmdb://{lmdb_path}"
    with running(url, "--backend", backend, "--log-level", "info") as (proc, base):
        assert base.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base, timeout=10) as client:
            whole = client.get("/arr/0.0")
            assert (whole.status_code, whole.content) == (200, bytes(range(100)))
            part = client.get("/arr/0.0", headers={"Range": "bytes=-10"})
            assert (part.status_code, part.content) == (206, bytes(range(90, 100)))
            assert client.get("/arr/0.0", headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
            assert client.get("/", params={"list": "", "prefix": "arr/"}).json()["keys"] == [
                "arr/.zarray",
                "arr/0.0",
                "arr/0.1",
            ]
            assert client.put("/arr/0.1", content=b"new").status_code == 405
            assert client.get("/arr/%2e%2e/%2e%2e/x").status_code == 400
        time.sleep(0.1)
        err = stop(proc, sig)
    assert '"GET /arr/0.0" 200 100' in err  # the request log
    assert f"closed {url}" in err
    reopened = aiostore.sync.LMDBStore(lmdb_path)
    reopened["after"] = b"1"  # nothing holds it
    assert reopened["arr/0.1"] == b"x"
    reopened.close()


def test_writable_with_cors_and_a_cache(tmp_path: Path) -> None:
    root = tmp_path / "data.zarr"
    root.mkdir()
    args = (str(root), "--writable", "--cors", "*", "--cache", "1MiB", "--log-level", "warning")
    with running(*args) as (proc, base), httpx.Client(base_url=base, timeout=10) as client:
        assert client.put("/a/b", content=b"written").status_code == 201
        reply = client.get("/a/b", headers={"Origin": "https://viewer.example"})
        assert reply.content == b"written"
        assert reply.headers["access-control-allow-origin"] == "*"
        assert client.delete("/a/b").status_code == 204
        assert client.put("/c", content=b"kept").status_code == 201
        err = stop(proc, signal.SIGTERM)
    assert '"PUT' not in err  # no request log at warning
    assert (root / "c").read_bytes() == b"kept" and not (root / "a" / "b").exists()


def test_a_missing_store_is_one_line_and_status_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*serve_command(), f"lmdb://{tmp_path / 'missing.mdb'}", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert proc.returncode == 1, proc.stderr
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "missing.mdb").exists()


def test_the_readme_serve_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's line, as it is, on a free port instead of 8000 (a later --port wins).
    from test_readme import readme_blocks

    [block] = [b for b in readme_blocks("sh") if "aiostore serve" in b.code]
    command = shlex.split(block.code.strip(), comments=True)
    assert command[:2] == ["aiostore", "serve"] and "--port" in command
    monkeypatch.chdir(tmp_path)
    store = aiostore.sync.LMDBStore("data/example.mdb")
    store["foo/bar/baz/0"] = b"chunk"
    store.close()
    with running(*command[2:]) as (proc, url):
        answer = httpx.get(url + "foo/bar/baz/0", headers={"Origin": "http://viewer.example"})
        assert answer.status_code == 200 and answer.content == b"chunk"
        assert answer.headers["access-control-allow-origin"] == "*"
        assert httpx.put(url + "foo/x", content=b"no").status_code == 405
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STARTUP_SECONDS) == 0
