"""A small HTTP proxy in front of moto's S3 server that misbehaves on demand.

It listens on 127.0.0.1 (port 0), forwards every request to its upstream, and
records what it saw: each request, the 5xx it answered itself, and the most
requests it held at once. Tests switch its faults on and off between calls:

* ``fail_next = n``: answer the next ``n`` requests with ``fail_status`` (503,
  with S3's ``SlowDown`` error body) instead of forwarding them;
* ``fail_for(seconds)``: answer every request that way for a while;
* ``refuse = True``: answer every request with 403 ``AccessDenied``;
* ``blackhole = True``: accept requests and never answer (a frozen server);
* ``latency``: seconds added to every forwarded request.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import threading
import time
from typing import Any

__all__ = ["FaultProxy"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}

_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>faultproxy</RequestId></Error>"
)
_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
    b"<RequestId>faultproxy</RequestId></Error>"
)


class FaultProxy:
    """A threaded HTTP/1.1 proxy to ``127.0.0.1:upstream_port`` with switchable faults."""

    def __init__(self, upstream_port: int, *, latency: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.latency = latency
        self.fail_next = 0
        self.fail_status = 503
        self.fail_until = 0.0
        self.refuse = False
        self.blackhole = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.reset()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="faultproxy", daemon=True
        )
        self._thread.start()

    # -- what it saw -------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the requests seen so far (the faults stay as they are)."""
        with self._lock:
            #: ``(method, path, status)`` of every request answered, in order.
            self.log: list[tuple[str, str, int]] = []
            #: Requests answered with ``fail_status`` by the proxy itself.
            self.failed = 0
            #: Requests held by the proxy now; the most held at once (forwarding, or failing).
            self.in_flight: int = getattr(self, "in_flight", 0)
            self.max_in_flight = self.in_flight

    def count(self, method: str, path_suffix: str = "") -> int:
        """Requests seen with ``method`` whose path (without query) ends with ``path_suffix``."""
        with self._lock:
            return sum(1 for m, p, _ in self.log if m == method and p.split("?")[0].endswith(path_suffix))

    def gets_by_path(self) -> collections.Counter[str]:
        """How many GETs each object path (query excluded) received."""
        with self._lock:
            return collections.Counter(p.split("?")[0] for m, p, _ in self.log if m == "GET")

    def fail_for(self, seconds: float) -> None:
        """Answer every request with ``fail_status`` for the next ``seconds``."""
        self.fail_until = time.monotonic() + seconds

    def options(self, template: dict[str, Any], **client_options: Any) -> dict[str, Any]:
        """``template`` (``MotoS3.options()``: ObjectStore's keyword arguments) aimed at this proxy."""
        config = {**template["config"], "endpoint": self.endpoint}
        return {
            **template,
            "config": config,
            "client_options": {**template["client_options"], **client_options},
        }

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- serving -----------------------------------------------------------------------
    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fail = self.fail_next > 0 or time.monotonic() < self.fail_until
            if fail:
                self.fail_next = max(0, self.fail_next - 1)
                self.failed += 1
        status = 0  # no answer: held, then dropped
        answer: tuple[list[tuple[str, str]], bytes] | None = None
        try:
            if self.blackhole:
                self._stopped.wait(60)  # hold the request unanswered until the proxy stops
                handler.close_connection = True
                return
            if self.latency:
                time.sleep(self.latency)
            if self.refuse:
                status, answer = 403, ([("Content-Type", "application/xml")], _ACCESS_DENIED)
            elif fail:
                status, answer = self.fail_status, ([("Content-Type", "application/xml")], _SLOW_DOWN)
            else:
                status, headers, payload = self._forward(handler, body)
                answer = (headers, payload)
        finally:
            # Counted out and logged before the answer is sent: a client that has
            # its answer finds the request logged, and never sees it still in flight.
            with self._lock:
                self.in_flight -= 1
                self.log.append((handler.command, handler.path, status))
        if answer is not None:
            _respond(handler, status, *answer)

    def _forward(
        self, handler: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        # One upstream connection per client connection, kept on the handler.
        conn: http.client.HTTPConnection | None = getattr(handler, "_upstream", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
            handler._upstream = conn  # type: ignore[attr-defined]
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or handler.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        try:
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            response = conn.getresponse()
        except (ConnectionError, http.client.HTTPException):
            conn.close()
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            response = conn.getresponse()
        payload = response.read()
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        if handler.command == "HEAD":
            length = response.getheader("Content-Length")
            if length is not None:
                out.append(("Content-Length", length))
        return response.status, out, payload


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _respond(
    handler: http.server.BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], payload: bytes
) -> None:
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    if handler.command != "HEAD":
        handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    if handler.command != "HEAD" and payload:
        handler.wfile.write(payload)
