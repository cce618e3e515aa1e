"""Refused access is a ``PermissionError`` naming the key and the store, whatever the call.

The proxy answers every request with S3's ``403 AccessDenied``. Each call raises
``PermissionError`` (not a bare ``OSError``, not ``KeyError``, and ``contains``
does not answer False), naming the key and the store's location.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from faultproxy import FaultProxy

import aiostore

pytestmark = pytest.mark.anyio


async def _listed(store: aiostore.ObjectStore) -> list[str]:
    return [key async for key in store.list("a/")]


#: Each call, and the key its error must name (listings too: obstore reports a refused
#: listing as a generic error, which the store recognises by its status).
CALLS: dict[str, tuple[Callable[[aiostore.ObjectStore], Awaitable[Any]], str]] = {
    "get": (lambda store: store.get("a/b"), "a/b"),
    "get range": (lambda store: store.get("a/b", byte_range=(1, 3)), "a/b"),
    "get_many": (lambda store: store.get_many(["a/b", "a/c"]), "a/"),
    "set": (lambda store: store.set("a/new", b"x"), "a/new"),
    "contains": (lambda store: store.contains("a/b"), "a/b"),
    "getsize": (lambda store: store.getsize("a/b"), "a/b"),
    "delete": (lambda store: store.delete("a/b"), "a/b"),
    "listdir": (lambda store: store.listdir("a"), "a"),
    "list": (_listed, "a"),
    "rmdir": (lambda store: store.rmdir("a"), "a"),
}


@pytest.mark.parametrize("call", list(CALLS))
async def test_refused_is_permission_error(
    request: pytest.FixtureRequest, proxy: FaultProxy, moto_server: Any, bucket: str, call: str
) -> None:
    run, key = CALLS[call]
    store = aiostore.ObjectStore(
        moto_server.url(bucket, "root"),
        retry_config={"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=5)},
        **proxy.options(moto_server.options()),
    )
    await store.set_many({"a/b": b"value", "a/c": b"other"})
    proxy.reset()
    proxy.refuse = True
    with anyio.fail_after(30), pytest.raises(OSError) as info:
        await run(store)
    exc = info.value
    assert isinstance(exc, PermissionError), f"{call}: {type(exc).__name__}: {exc}"
    assert key in str(exc) and store.location in str(exc), str(exc)
    assert proxy.log and all(status == 403 for _, _, status in proxy.log)
