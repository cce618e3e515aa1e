"""The server answers 5xx for a while: the request is retried and the data is intact.

The proxy in front of moto answers ``503 SlowDown`` (S3's own body) to the first
requests, or to every request for a while, then forwards. Through it, ``get``,
``get_many`` and ``set_many`` succeed -- obstore retries under the store's
``retry_config`` -- the proxy did answer 503 (it counts them), and the bytes read
back (through the proxy, and straight from moto) are the bytes written. The same
store with ``max_retries: 0`` fails with ``OSError``: the retries are what made it
pass.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import anyio
import pytest
from faultproxy import FaultProxy

import aiostore

pytestmark = pytest.mark.anyio

BACKOFF = {
    "init_backoff": datetime.timedelta(milliseconds=10),
    "max_backoff": datetime.timedelta(milliseconds=100),
    "base": 2,
}
RETRYING = {"max_retries": 10, "retry_timeout": datetime.timedelta(seconds=20), "backoff": BACKOFF}
NOT_RETRYING = {"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=20), "backoff": BACKOFF}

#: Random bytes (a corrupt or truncated body shows), in a few sizes.
DATA = {
    f"data/{i}": os.urandom(size) for i, size in enumerate([1, 100, 4096, 65536, 300_000, 7, 0, 12, 999, 5])
}


def stores(proxy: FaultProxy, moto_server: Any, bucket: str) -> tuple[aiostore.ObjectStore, ...]:
    """A retrying and a non-retrying store through the proxy, and one straight to moto."""
    url = moto_server.url(bucket)
    through = proxy.options(moto_server.options())
    return (
        aiostore.ObjectStore(url, retry_config=RETRYING, **through),
        aiostore.ObjectStore(url, retry_config=NOT_RETRYING, **through),
        aiostore.ObjectStore(url, **moto_server.options()),
    )


async def test_get_is_retried(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    retrying, plain, direct = stores(proxy, moto_server, bucket)
    await direct.set_many(DATA)
    proxy.fail_next = 3
    with anyio.fail_after(30):
        assert await retrying.get("data/3") == DATA["data/3"]
    assert proxy.failed == 3
    assert proxy.count("GET", "/data/3") == 4  # three 503s, then the answer

    proxy.reset()
    proxy.fail_next = 1
    with anyio.fail_after(30), pytest.raises(OSError) as info:
        await plain.get("data/3")
    assert not isinstance(info.value, KeyError | PermissionError)
    assert "'data/3'" in str(info.value) and plain.location in str(info.value)
    assert proxy.failed == 1 and proxy.count("GET", "/data/3") == 1  # no retry at all


async def test_get_many_is_retried(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    retrying, plain, direct = stores(proxy, moto_server, bucket)
    await direct.set_many(DATA)
    proxy.fail_next = 7
    with anyio.fail_after(30):
        found = await retrying.get_many([*DATA, "data/missing"])
    assert found == DATA
    assert proxy.failed == 7
    assert len(proxy.log) == len(DATA) + 1 + 7  # every key once, plus one retry per 503

    proxy.reset()
    proxy.fail_next = 1
    with anyio.fail_after(30), pytest.raises(OSError) as info:
        await plain.get_many(list(DATA))
    assert not isinstance(info.value, KeyError | PermissionError)
    assert plain.location in str(info.value)
    assert proxy.failed == 1


async def test_set_many_is_retried(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    retrying, plain, direct = stores(proxy, moto_server, bucket)
    proxy.fail_next = 6
    with anyio.fail_after(30):
        await retrying.set_many(DATA)
    assert proxy.failed == 6
    assert proxy.count("PUT") == len(DATA) + 6
    assert await direct.get_many(list(DATA)) == DATA  # what moto holds: every byte

    proxy.reset()
    proxy.fail_next = 2
    with anyio.fail_after(30), pytest.raises(OSError) as info:
        await plain.set_many({"other/a": b"a", "other/b": b"b", "other/c": b"c"})
    assert isinstance(info.value, aiostore.BatchWriteError)
    assert len(info.value.failed) == 2
    for key, error in info.value.failed.items():
        assert isinstance(error, OSError) and repr(key) in str(error) and plain.location in str(error)
    assert proxy.count("PUT") == 3  # no retry
    written = await direct.get_many(["other/a", "other/b", "other/c"])
    assert set(written) == {"other/a", "other/b", "other/c"} - set(info.value.failed)


#: obstore sleeps at least ``init_backoff`` before each retry (more, with jitter, up to
#: ``max_backoff``): ten retries outlast 10 x 50 ms, whatever the jitter.
PATIENT = {
    "max_retries": 10,
    "retry_timeout": datetime.timedelta(seconds=20),
    "backoff": {
        "init_backoff": datetime.timedelta(milliseconds=50),
        "max_backoff": datetime.timedelta(milliseconds=200),
    },
}


async def test_5xx_for_a_while(proxy: FaultProxy, moto_server: Any, bucket: str) -> None:
    """Every request fails for 0.3 s: shorter than ten retries' backoff (at least 0.5 s)."""
    _, _, direct = stores(proxy, moto_server, bucket)
    retrying = aiostore.ObjectStore(
        moto_server.url(bucket), retry_config=PATIENT, **proxy.options(moto_server.options())
    )
    await direct.set_many(DATA)
    proxy.fail_for(0.3)
    with anyio.fail_after(30):
        assert await retrying.get_many(list(DATA)) == DATA
    assert proxy.failed >= 1 and proxy.log[0][2] == 503  # the first answers were 503s
    proxy.reset()
    proxy.fail_for(0.3)
    with anyio.fail_after(30):
        await retrying.set_many({f"late/{key}": value for key, value in DATA.items()})
    assert proxy.failed >= 1 and proxy.log[0][2] == 503
    assert await direct.get_many([f"late/{key}" for key in DATA]) == {f"late/{k}": v for k, v in DATA.items()}
