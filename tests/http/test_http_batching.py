"""Concurrent requests for different keys reach the store as batches: a blocking store
coalesces concurrent gets into ``get_many``-like batch reads, one thread hop each.

Observed as in tests/test_ranged_coalescing.py: the backend records every batch it
is handed; N concurrent requests must arrive in fewer than N batches.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
import httpx
import pytest
from http_helpers import BatchCountingStore, Burst
from serving import in_process

import aiostore.http

pytestmark = pytest.mark.anyio

N = 64
DATA = {f"arr/{i}.0": i.to_bytes(2, "big") * 100 for i in range(N)}


async def fetch_all(client: httpx.AsyncClient) -> dict[str, bytes]:
    found: dict[str, bytes] = {}

    async def fetch(key: str) -> None:
        reply = await client.get("/" + key)
        assert reply.status_code == 200
        found[key] = reply.content

    async with anyio.create_task_group() as tg:
        for key in DATA:
            tg.start_soon(fetch, key)
    return found


async def test_concurrent_requests_are_coalesced_into_batches() -> None:
    store = BatchCountingStore(dict(DATA))
    transport = httpx.ASGITransport(app=aiostore.http.app(store))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert await fetch_all(client) == DATA
    assert sum(store.batches) == N
    assert len(store.batches) < N / 4, store.batches


async def test_through_a_real_server_on_loopback() -> None:
    # uvicorn under asyncio, hypercorn under trio: a task per connection, each request
    # read from its own socket. Requests that arrive together are read together: the
    # client opens every connection, then sends every request while the server's event
    # loop is held (the sends are made in its thread), so that all of them are there at
    # its next look (a client in the same process sending at its own pace makes batches
    # of 1-3 here: each request arrives alone).
    store = BatchCountingStore(dict(DATA))
    async with in_process(aiostore.http.app(store)) as url:
        client = Burst(url, ["/" + key for key in DATA])
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(client.connect)
            await anyio.sleep(0.2)  # the server accepts them
            client.send()
            replies = await anyio.to_thread.run_sync(client.receive)
    assert replies == [(200, value) for value in DATA.values()]
    assert sum(store.batches) == N
    assert len(store.batches) < N / 4, store.batches
