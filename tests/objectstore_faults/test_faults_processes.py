"""Pickle and fork: a store read in another process.

* **spawn**: the store is pickled, sent to a fresh process (``multiprocessing``'s
  spawn context) and read there under asyncio, under trio and through the
  blocking API; the child reads through the proxy, which counts its requests --
  so the pickle kept the endpoint and the options, not just the bucket.
* **fork**: in an ``os.fork()`` child the store's ``client`` is a new obstore
  store (not the parent's, whose connections the parent owns), and a read there
  returns the data; the child reports through a pipe and is bounded by an alarm.
"""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from faultchild import read_pickled
from faultproxy import FaultProxy

import aiostore
import aiostore.sync

DATA = {"p/0": b"zero", "p/1": os.urandom(5000), "p/2": b""}
KEYS = [*DATA, "p/missing"]


def run_spawned(blob: bytes, timeout: float = 60) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=read_pickled, args=(blob, KEYS, send), daemon=True)
    process.start()
    send.close()
    try:
        if not receive.poll(timeout):
            pytest.fail(f"the spawned child sent nothing within {timeout}s (exit code {process.exitcode})")
        status, payload = receive.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    assert status == "ok", f"the spawned child failed: {payload}"
    assert payload["pid"] != os.getpid()
    return dict(payload)


def test_pickled_store_reads_in_spawned_process(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    store = aiostore.ObjectStore(
        moto_server.url(bucket, "root"), read_only=False, **proxy.options(moto_server.options())
    )
    store.set_many_sync(DATA)
    proxy.reset()
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and repr(copy) == repr(store) and copy.client is not store.client
    out = run_spawned(pickle.dumps(store))
    assert out["type"] == "ObjectStore" and out["repr"] == repr(store)
    assert out["asyncio"] == DATA
    assert out["trio"] == DATA
    assert out["sync"] == DATA
    # The child's 3 x 4 reads went through this proxy: the pickle kept the endpoint.
    assert proxy.count("GET", "/root/p/1") == 3
    assert proxy.count("GET") == 3 * len(KEYS)


def test_pickled_sync_twin_reads_in_spawned_process(moto_server: Any, bucket: str) -> None:
    twin = aiostore.sync.ObjectStore(moto_server.url(bucket), read_only=True, **moto_server.options())
    writer = aiostore.sync.ObjectStore(moto_server.url(bucket), **moto_server.options())
    writer.setitems(DATA)
    out = run_spawned(pickle.dumps(twin))
    assert out["type"] == "ObjectStore" and out["repr"] == repr(twin)
    assert out["read_only"] is True
    assert out["sync"] == DATA


def run_forked(child: Callable[[], str], timeout: float) -> str | None:
    """Run ``child()`` in an ``os.fork()`` child; its answer, or None if it sent none within ``timeout``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            signal.alarm(int(timeout) + 1)  # a hung child ends (SIGALRM's default action)
            try:
                answer = child()
            except BaseException as exc:
                answer = f"error: {exc!r}"
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([read_end], [], [], left)
            if not ready:
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return b"".join(chunks).decode() if chunks else None


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available here")


@needs_fork
def test_a_child_forked_after_requests_gets_a_clear_error_not_a_hang(moto_server: Any, bucket: str) -> None:
    # obstore's runtime is process-wide and does not survive fork once it has run: a
    # request in such a child would block forever, so the store refuses at once.
    store = aiostore.ObjectStore(moto_server.url(bucket), **moto_server.options())
    store.set_many_sync(DATA)
    assert store.get_sync("p/0") == DATA["p/0"]  # this process has made requests

    def child() -> str:
        started = time.monotonic()
        try:
            anyio.run(store.get_many, KEYS)
        except RuntimeError as exc:
            return f"{type(exc).__name__} after {time.monotonic() - started:.1f}s: {exc}"
        return "no error"

    answer = run_forked(child, timeout=10)
    assert answer is not None, "the forked child hung"
    assert answer.startswith("RuntimeError after 0."), answer
    assert "spawn" in answer and "fork" in answer, answer
    assert store.get_sync("p/1") == DATA["p/1"]  # and the parent still reads


@needs_fork
def test_a_child_forked_before_any_request_uses_the_store(moto_server: Any, bucket: str) -> None:
    # A fresh interpreter, so that no request was made before the fork.
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parent.parent)!r})
        import aiostore
        from servers import S3_CREDENTIALS
        options = {{"config": {{"endpoint": {moto_server.endpoint!r}, **S3_CREDENTIALS}},
                    "client_options": {{"allow_http": True}}}}
        store = aiostore.ObjectStore({moto_server.url(bucket)!r}, **options)
        pid = os.fork()
        if pid == 0:
            store.set_sync("from-child", b"hello")
            os._exit(0 if store.get_sync("from-child") == b"hello" else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), store.get_sync("from-child"))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "child 0 b'hello'", result.stderr[-2000:]
