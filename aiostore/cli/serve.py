"""``aiostore serve URL``: any store over HTTP, until SIGINT or SIGTERM (:mod:`aiostore.http`).

.. code-block:: console

    $ aiostore serve lmdb://data/images.mdb --port 8000 --cors '*'
    Serving lmdb://data/images.mdb (read-only) at http://127.0.0.1:8000/

The line above goes to stdout once the server listens (with ``--port 0``, the port
the system picked); the request log and the servers' messages go to stderr, at
``--log-level``. The store is closed when the server has shut down.
``python -m aiostore.cli.serve`` runs this command alone.
"""

from __future__ import annotations

import logging
import sys

import anyio
import click

from aiostore.abc import Store
from aiostore.stores.cache import LRUStoreCache
from aiostore.stores.urls import open_store, parse_size

__all__ = ["serve"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
logger = logging.getLogger("aiostore.http")


async def _serve(
    url: str,
    *,
    host: str,
    port: int,
    read_only: bool,
    cors: str | None,
    cache_size: int | None,
    log_level: str,
) -> None:
    import aiostore.http

    try:
        store: Store = await open_store(url, mode="r" if read_only else "a")
    except FileNotFoundError as exc:
        raise click.ClickException(
            f"store {url!r} does not exist (serving read-only opens it with mode 'r')"
        ) from exc
    if not read_only and store.read_only:
        await store.aclose()
        raise click.ClickException(f"store {url!r} is read-only: it cannot be served with --writable")
    if cache_size is not None:
        store = LRUStoreCache(store, max_size=cache_size)
    try:
        application = aiostore.http.app(store, read_only=read_only, cors_origins=cors)
        mode = "read-only" if read_only else "writable"

        def ready(address: str) -> None:
            click.echo(f"Serving {url} ({mode}) at {address}")
            sys.stdout.flush()

        try:
            sock = aiostore.http.listen(host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        await aiostore.http.serve(application, sock=sock, log_level=log_level, ready=ready)
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
        logger.info("closed %s", url)


@click.command("serve")
@click.argument("url")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: a free port."
)
@click.option(
    "--read-only/--writable",
    default=True,
    show_default=True,
    help="--writable answers PUT and DELETE (the store is opened with mode 'a').",
)
@click.option(
    "--cors", metavar="ORIGINS", help="Origins browsers may read from: '*' or a comma-separated list."
)
@click.option("--cache", metavar="SIZE", help="An LRU cache of SIZE bytes in front (e.g. 256MiB).")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="info logs every request; warning only problems.",
)
@click.option(
    "--backend",
    type=click.Choice(["asyncio", "trio"]),
    default="asyncio",
    show_default=True,
    help="asyncio: served by uvicorn; trio: by hypercorn.",
)
def serve(
    url: str,
    host: str,
    port: int,
    read_only: bool,
    cors: str | None,
    cache: str | None,
    log_level: str,
    backend: str,
) -> None:
    """Serve the store at URL over HTTP: GET and HEAD of keys (with Range, ETag, CORS),
    a JSON listing at /?list&prefix=P&delimiter=/; PUT and DELETE only with --writable.

    Stops cleanly on Ctrl+C (SIGINT) or SIGTERM, closing the store.
    """
    try:
        cache_size = parse_size(cache) if cache is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cache") from None
    level = log_level.lower()
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiostore.http").setLevel(level.upper())
    anyio.run(
        lambda: _serve(
            url,
            host=host,
            port=port,
            read_only=read_only,
            cors=cors,
            cache_size=cache_size,
            log_level=level,
        ),
        backend=backend,
    )


if __name__ == "__main__":
    serve()
