"""Running the app: uvicorn under asyncio, hypercorn under trio, until SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import anyio
import sniffio
from starlette.types import ASGIApp

__all__ = ["listen", "serve", "socket_url"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (``port=0``: a free port the system picks).

    >>> sock = listen("127.0.0.1", 0)
    >>> socket_url(sock).startswith("http://127.0.0.1:")
    True
    >>> sock.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def socket_url(sock: socket.socket) -> str:
    """The ``http://host:port/`` URL a listening socket answers at."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if sock.family == socket.AF_INET6 else f"http://{host}:{port}/"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def serve(
    application: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    sock: socket.socket | None = None,
    log_level: str = "info",
    ready: Callable[[str], Any] | None = None,
    stop: anyio.Event | None = None,
    graceful_timeout: float = 5.0,
) -> None:
    """Serve an ASGI app until SIGINT or SIGTERM (in the main thread) or ``stop`` is set,
    then shut down cleanly: in-flight requests finish (for up to ``graceful_timeout``
    seconds), the app's lifespan ends, and this returns.

    Under asyncio the server is uvicorn, under trio hypercorn. It listens on ``sock`` if
    given, else on ``host``:``port`` (0: a free port); ``ready(url)`` is called once the
    socket listens (with the URL it answers at). The server's own request log is off:
    the app logs each request to the ``aiostore.http`` logger, at INFO.

    Examples
    --------
    >>> import anyio, httpx, aiostore, aiostore.http
    >>> async def main():
    ...     stop = anyio.Event()
    ...     started = anyio.Event()
    ...     urls = []
    ...     def ready(url):
    ...         urls.append(url)
    ...         started.set()
    ...     store = aiostore.MemoryStore()
    ...     await store.set("a/b", b"value")
    ...     async with anyio.create_task_group() as tg:
    ...         application = aiostore.http.app(store)
    ...         tg.start_soon(lambda: serve(application, port=0, ready=ready, stop=stop, log_level="warning"))
    ...         await started.wait()
    ...         async with httpx.AsyncClient(base_url=urls[0]) as client:
    ...             reply = await client.get("/a/b")
    ...         stop.set()
    ...     return reply.status_code, reply.content
    >>> anyio.run(main)
    (200, b'value')
    """
    sock = sock if sock is not None else listen(host, port)
    url = socket_url(sock)

    def on_ready() -> None:
        if ready is not None:
            ready(url)

    try:
        if sniffio.current_async_library() == "trio":
            await _serve_hypercorn(application, sock, log_level, stop, graceful_timeout, on_ready)
        else:
            await _serve_uvicorn(application, sock, log_level, stop, graceful_timeout, on_ready)
    finally:
        sock.close()


@contextlib.contextmanager
def _signals_to(handler: Callable[[int, Any], Any]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` inside (in the main thread; elsewhere nothing)."""
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


async def _serve_uvicorn(
    application: ASGIApp,
    sock: socket.socket,
    log_level: str,
    stop: anyio.Event | None,
    graceful: float,
    ready: Callable[[], None],
) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Installed by serve() before the socket is announced instead: uvicorn's own
            # also raises the signal again once shut down, and the process would die of
            # it. A clean shutdown here is a normal exit.
            yield

    config = uvicorn.Config(
        application,
        log_config=None,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(graceful)),
        backlog=2048,
    )
    server = Server(config)

    async def stop_when_set(event: anyio.Event) -> None:
        await event.wait()
        server.should_exit = True

    with _signals_to(server.handle_exit):
        ready()
        async with anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(stop_when_set, stop)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()


async def _serve_hypercorn(
    application: ASGIApp,
    sock: socket.socket,
    log_level: str,
    stop: anyio.Event | None,
    graceful: float,
    ready: Callable[[], None],
) -> None:
    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn takes the descriptor over
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.loglevel = log_level.upper()
    config.graceful_timeout = graceful
    config.backlog = 2048

    with contextlib.ExitStack() as stack:
        signals = stack.enter_context(anyio.open_signal_receiver(*_SIGNALS)) if _in_main_thread() else None

        async def shutdown_trigger() -> None:
            async with anyio.create_task_group() as tg:

                async def on_signal() -> None:
                    assert signals is not None
                    async for _ in signals:
                        break
                    tg.cancel_scope.cancel()

                async def on_stop(event: anyio.Event) -> None:
                    await event.wait()
                    tg.cancel_scope.cancel()

                if signals is not None:
                    tg.start_soon(on_signal)
                if stop is not None:
                    tg.start_soon(on_stop, stop)
                await anyio.sleep_forever()

        ready()
        await hypercorn.trio.serve(cast("Any", application), config, shutdown_trigger=shutdown_trigger)
