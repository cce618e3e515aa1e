"""The server goes away mid-test: a clear error within the configured time, and no hang.

Two ways a server goes away:

* **stopped**: a moto server of the test's own is stopped after the data is
  written (its port closes: connections are refused);
* **frozen**: the proxy in front of moto keeps accepting requests and never
  answers them (a hung server, or a black-holed network): only the timeouts
  end a request.

Either way ``get``, ``get_many``, ``set`` and ``listdir`` raise ``OSError`` -- not
``KeyError``: the key is not known to be missing -- naming the key and the
store's location, with obstore's error as the cause, within the bound computed
from the store's ``timeout``, ``connect_timeout`` and ``retry_config`` below.
``anyio.fail_after`` guards against a hang.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import obstore
import pytest
from faultproxy import FaultProxy

import aiostore

pytestmark = pytest.mark.anyio

TIMEOUT = 0.3
CONNECT_TIMEOUT = 0.3
MAX_RETRIES = 2
RETRY_TIMEOUT = 0.6
INIT_BACKOFF = 0.05
MAX_BACKOFF = 0.2
RETRY_CONFIG = {
    "max_retries": MAX_RETRIES,
    "retry_timeout": datetime.timedelta(seconds=RETRY_TIMEOUT),
    "backoff": {
        "init_backoff": datetime.timedelta(seconds=INIT_BACKOFF),
        "max_backoff": datetime.timedelta(seconds=MAX_BACKOFF),
        "base": 2,
    },
}
#: Scheduling noise allowed on top of the bound (moto and the proxy share this process's GIL).
SLACK = 1.5


def failure_bound() -> float:
    """Seconds within which one request to a dead or frozen server must fail.

    An attempt takes at most ``connect_timeout + timeout``. obstore makes at most
    ``max_retries + 1`` attempts, sleeping at most ``max_backoff`` between two;
    and it starts no retry once ``retry_timeout`` has passed since the first
    attempt, so the last attempt starts before ``retry_timeout + max_backoff``.
    Requests of one batch run concurrently (fewer than the network limit here),
    so a batch must fail within the same bound.
    """
    attempt = TIMEOUT + CONNECT_TIMEOUT
    by_count = (MAX_RETRIES + 1) * attempt + MAX_RETRIES * MAX_BACKOFF
    by_time = RETRY_TIMEOUT + MAX_BACKOFF + attempt
    return min(by_count, by_time) + SLACK


def make_store(url: str, options: dict[str, Any]) -> aiostore.ObjectStore:
    return aiostore.ObjectStore(
        url,
        timeout=f"{int(TIMEOUT * 1000)}ms",
        connect_timeout=f"{int(CONNECT_TIMEOUT * 1000)}ms",
        retry_config=RETRY_CONFIG,
        **options,
    )


DATA = {"k": b"value-k", "k2": b"value-k2", "k3": b"3", "k4": b"4", "dir/a": b"a", "dir/b": b"bb"}

#: Each operation, and the key its error must name.
OPS: dict[str, tuple[Callable[[aiostore.ObjectStore], Awaitable[Any]], str]] = {
    "get": (lambda store: store.get("k"), "k"),
    "get_many": (lambda store: store.get_many(["k", "k2", "k3", "k4", "dir/a", "dir/b"]), "k"),
    "set": (lambda store: store.set("new", b"new value"), "new"),
    "listdir": (lambda store: store.listdir("dir"), "dir"),
}


async def fails_clearly(store: aiostore.ObjectStore, op: str) -> OSError:
    """Run ``op`` against a dead server; check the error and the time it took; return the error."""
    call, key = OPS[op]
    bound = failure_bound()
    start = time.monotonic()
    with anyio.fail_after(bound + 5):  # the hang guard: a hang fails here, not in CI's timeout
        with pytest.raises(OSError) as info:
            await call(store)
    elapsed = time.monotonic() - start
    exc = info.value
    message = str(exc)
    assert not isinstance(exc, PermissionError), message  # nothing refused anything
    assert repr(key) in message, message
    assert store.location in message, message
    assert isinstance(exc.__cause__, obstore.exceptions.BaseError | OSError), repr(exc.__cause__)
    assert elapsed <= bound, f"{op} failed after {elapsed:.2f}s, over the bound of {bound:.2f}s"
    return exc


@pytest.mark.parametrize("op", list(OPS))
async def test_stopped_server(own_moto: Any, op: str) -> None:
    store = make_store(own_moto.url(own_moto.bucket()), own_moto.options())
    await store.set_many(DATA)
    assert await store.get("k") == DATA["k"]  # the store works (and holds pooled connections)
    own_moto.stop()
    await fails_clearly(store, op)


@pytest.mark.parametrize("op", list(OPS))
async def test_frozen_server(
    request: pytest.FixtureRequest,
    proxy: FaultProxy,
    bucket: str,
    moto_server: Any,
    op: str,
    anyio_backend: str,
) -> None:
    store = make_store(moto_server.url(bucket), proxy.options(moto_server.options()))
    await store.set_many(DATA)
    assert await store.get("k") == DATA["k"]
    proxy.blackhole = True
    proxy.reset()
    await fails_clearly(store, op)
    assert proxy.log or proxy.in_flight, "the requests never reached the frozen server"


async def test_server_back_after_outage(proxy: FaultProxy, bucket: str, moto_server: Any) -> None:
    """After the outage the same store works again: no poisoned connection or state."""
    store = make_store(moto_server.url(bucket), proxy.options(moto_server.options()))
    await store.set_many(DATA)
    proxy.blackhole = True
    await fails_clearly(store, "get")
    proxy.blackhole = False
    with anyio.fail_after(failure_bound() + 5):
        assert await store.get_many(list(DATA)) == DATA
        await store.set("after", b"outage")
        assert await store.get("after") == b"outage"
