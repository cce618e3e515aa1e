"""Helpers for the HTTP tests: an ASGI driver that sends raw paths, stores that record calls,
and a client that sends many requests at once."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiostore.abc import BlockingStore, Buffer, ByteRange, Store, slice_byte_range


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def asgi_request(
    app: Any,
    method: str,
    target: bytes | str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Reply:
    """Send one request to an ASGI app with the request target exactly as given (no client
    normalizes it first: ``/a/../b`` and ``%2F`` arrive as they are)."""
    raw = target.encode("latin-1") if isinstance(target, str) else target
    raw_path, _, query = raw.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": urllib.parse.unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        + [(b"host", b"test")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    sent = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    return Reply(
        start["status"],
        {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]},
        b"".join(bytes(m.get("body", b"")) for m in messages if m["type"] == "http.response.body"),
    )


class RecordingStore(Store):
    """A natively async store over a dict that records every hook call: (hook, key, range)."""

    def __init__(self, data: dict[str, bytes] | None = None, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.data = dict(data or {})
        self.calls: list[tuple[str, str, Any]] = []

    async def _get(self, key: str, byte_range: ByteRange | None) -> bytes:
        self.calls.append(("get", key, byte_range))
        return slice_byte_range(self.data[key], byte_range)

    async def _set(self, key: str, value: Buffer) -> None:
        self.calls.append(("set", key, None))
        self.data[key] = bytes(value)

    async def _delete(self, key: str) -> None:
        self.calls.append(("delete", key, None))
        del self.data[key]

    async def _contains(self, key: str) -> bool:
        self.calls.append(("contains", key, None))
        return key in self.data

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        self.calls.append(("list", prefix, None))
        for key in list(self.data):
            if key.startswith(prefix):
                yield key

    async def _getsize(self, path: str) -> int:
        # What a real backend does (the fallback would read the value to measure it).
        self.calls.append(("getsize", path, None))
        if path in self.data:
            return len(self.data[path])
        prefix = f"{path}/" if path else ""
        children = [k for k in self.data if k.startswith(prefix) and "/" not in k[len(prefix) :]]
        return sum(len(self.data[k]) for k in children)


class BatchCountingStore(BlockingStore):
    """A blocking dict backend (its work offloaded to threads, concurrent gets coalesced)
    that records the size of every batch of reads; each batch takes ``delay`` seconds
    (a disk's latency: requests that arrive meanwhile form the next batch)."""

    def __init__(self, data: dict[str, bytes], delay: float = 0.0) -> None:
        super().__init__()
        self.data = data
        self.delay = delay
        self.lock = threading.Lock()
        self.batches: list[int] = []

    def _get_blocking(self, requests: Sequence[tuple[str, ByteRange | None]]) -> list[bytes | None]:
        with self.lock:
            self.batches.append(len(requests))
        if self.delay:
            time.sleep(self.delay)
        return [
            None if key not in self.data else slice_byte_range(self.data[key], byte_range)
            for key, byte_range in requests
        ]

    def _set_blocking(self, items: Sequence[tuple[str, Buffer]]) -> None:
        self.data.update((key, bytes(value)) for key, value in items)

    def _delete_blocking(self, keys: Sequence[str]) -> list[str]:
        return [key for key in keys if self.data.pop(key, None) is None]

    def _contains_blocking(self, key: str) -> bool:
        return key in self.data

    def _list_blocking(self, prefix: str) -> list[str]:
        return [key for key in list(self.data) if key.startswith(prefix)]


class Burst:
    """GET every target over its own connection, all requests sent at once: :meth:`connect`
    opens every connection, :meth:`send` writes every request in one tight loop (a few
    hundred bytes to fresh sockets: it never blocks for long), :meth:`receive` reads the
    answers (blocking sockets: call it in a thread)."""

    def __init__(self, url: str, targets: Sequence[str], timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.targets = list(targets)
        self.timeout = timeout
        self.socks: list[socket.socket] = []

    def connect(self) -> None:
        self.socks = [socket.create_connection(self.address, timeout=self.timeout) for _ in self.targets]

    def send(self) -> None:
        for sock, target in zip(self.socks, self.targets, strict=True):
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))

    def receive(self) -> list[tuple[int, bytes]]:
        """(status, body) of each answer, in order; every connection closed."""
        replies = []
        try:
            for sock in self.socks:
                data = bytearray()
                while chunk := sock.recv(65536):
                    data += chunk
                head, _, body = bytes(data).partition(b"\r\n\r\n")
                replies.append((int(head.split(b" ", 2)[1]), body))
        finally:
            for sock in self.socks:
                sock.close()
        return replies
