"""Credentials never leak: not in ``repr``, not in any error's message or traceback.

The stores carry secrets in their ``config`` (``access_key_id``,
``secret_access_key``, ``token``) and, in the second case, in the URL's user info
too. Every text a user may see -- ``repr`` and ``location`` of the store, of its
sync twin and of a cache over it; the message, ``repr`` and whole formatted
traceback (causes included) of the errors for a missing key, a refused request,
a 5xx and an outage -- is searched for each secret.
"""

from __future__ import annotations

import datetime
import traceback
from typing import Any

import anyio
import pytest
from faultproxy import FaultProxy

import aiostore
import aiostore.sync

pytestmark = pytest.mark.anyio

KEY_ID = "AKIA-VERY-SECRET-ID"
SECRET = "VERY-SECRET-KEY"
TOKEN = "VERY-SECRET-SESSION-TOKEN"
URL_USER = "URLUSER-SECRET"
URL_PASSWORD = "URLPASS-SECRET"
SECRETS = [KEY_ID, SECRET, TOKEN, URL_USER, URL_PASSWORD]

NO_RETRIES = {"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=5)}


def secret_options(proxy: FaultProxy, moto_server: Any) -> dict[str, Any]:
    options = proxy.options(moto_server.options())
    config = {**options["config"], "access_key_id": KEY_ID, "secret_access_key": SECRET, "token": TOKEN}
    return {
        **options,
        "config": config,
        "retry_config": NO_RETRIES,
        "timeout": "500ms",
        "connect_timeout": "500ms",
    }


def assert_no_secret(text: str, what: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaks through {what}: {text}"
        assert secret.lower() not in text.lower(), f"{secret!r} (any case) leaks through {what}: {text}"


def assert_error_clean(exc: BaseException, what: str) -> None:
    assert_no_secret(str(exc), f"str() of the {what}")
    assert_no_secret(repr(exc), f"repr() of the {what}")
    assert_no_secret("".join(traceback.format_exception(exc)), f"the traceback of the {what}")


@pytest.fixture(params=["config", "config+url"])
def url(request: pytest.FixtureRequest, moto_server: Any, bucket: str) -> str:
    if request.param == "config":
        return f"s3://{bucket}/prefix"
    # obstore takes the bucket from the host and ignores the user info.
    return f"s3://{URL_USER}:{URL_PASSWORD}@{bucket}/prefix"


async def test_no_secret_in_repr(proxy: FaultProxy, moto_server: Any, url: str, bucket: str) -> None:
    store = aiostore.ObjectStore(url, **secret_options(proxy, moto_server))
    await store.set("a", b"1")  # the store works: the credentials were taken
    assert await store.get("a") == b"1"
    assert bucket in store.location and "prefix" in store.location
    twin = aiostore.sync.ObjectStore(url, **secret_options(proxy, moto_server))
    assert twin["a"] == b"1"
    for what, text in [
        ("repr(store)", repr(store)),
        ("str(store)", str(store)),
        ("store.location", store.location),
        ("repr(sync twin)", repr(twin)),
        ("str(sync twin)", str(twin)),
        ("repr(LRUStoreCache)", repr(aiostore.LRUStoreCache(store, max_size=None))),
        ("repr(sync LRUStoreCache)", repr(aiostore.sync.LRUStoreCache(store, max_size=None))),
    ]:
        assert_no_secret(text, what)


async def test_no_secret_in_missing_key_error(proxy: FaultProxy, moto_server: Any, url: str) -> None:
    store = aiostore.ObjectStore(url, **secret_options(proxy, moto_server))
    with pytest.raises(KeyError) as info:
        await store.get("missing/key")
    assert "missing/key" in str(info.value)
    assert_error_clean(info.value, "KeyError")
    twin = aiostore.sync.ObjectStore(url, **secret_options(proxy, moto_server))
    with pytest.raises(KeyError) as sync_info:
        twin["missing/key"]
    assert_error_clean(sync_info.value, "sync twin's KeyError")


async def test_no_secret_in_refused_error(proxy: FaultProxy, moto_server: Any, url: str) -> None:
    """The proxy answers 403 AccessDenied, as S3 does to bad credentials."""
    store = aiostore.ObjectStore(url, **secret_options(proxy, moto_server))
    proxy.refuse = True
    # (listdir raises a plain OSError when refused: see test_faults_refused.py)
    for call, key in [
        (lambda: store.get("a/b"), "a/b"),
        (lambda: store.set("a/c", b"x"), "a/c"),
        (lambda: store.listdir("a"), "a"),
    ]:
        with anyio.fail_after(30), pytest.raises(OSError) as info:
            await call()
        assert repr(key) in str(info.value) and store.location in str(info.value)
        assert_error_clean(info.value, f"PermissionError for {key!r}")
    assert proxy.count("GET") >= 2 and proxy.count("PUT") == 1  # each was refused by the server
    twin = aiostore.sync.ObjectStore(url, **secret_options(proxy, moto_server))
    with pytest.raises(PermissionError) as sync_info:
        twin["a/b"]
    assert_error_clean(sync_info.value, "sync twin's PermissionError")


async def test_no_secret_in_server_error(proxy: FaultProxy, moto_server: Any, url: str) -> None:
    """A 503 (no retries), then the server frozen (the timeouts end the request)."""
    store = aiostore.ObjectStore(url, **secret_options(proxy, moto_server))
    proxy.fail_next = 1
    with anyio.fail_after(30), pytest.raises(OSError) as info:
        await store.get("a/b")
    assert not isinstance(info.value, KeyError | PermissionError)
    assert_error_clean(info.value, "OSError for a 503")
    proxy.fail_next = 3
    with anyio.fail_after(30), pytest.raises(aiostore.BatchWriteError) as batch:
        await store.set_many({"a/x": b"1", "a/y": b"2", "a/z": b"3"})
    assert_error_clean(batch.value, "BatchWriteError")
    proxy.blackhole = True
    with anyio.fail_after(30), pytest.raises(OSError) as frozen:
        await store.get("a/b")
    assert_error_clean(frozen.value, "OSError for a frozen server")


def test_no_secret_in_outage_error(own_moto: Any) -> None:
    """The server stopped: the sync twin's connection error."""
    options = own_moto.options()
    config = {**options["config"], "access_key_id": KEY_ID, "secret_access_key": SECRET, "token": TOKEN}
    twin = aiostore.sync.ObjectStore(
        f"s3://{URL_USER}:{URL_PASSWORD}@{own_moto.bucket()}",
        **{**options, "config": config},
        retry_config=NO_RETRIES,
        timeout="500ms",
    )
    twin["k"] = b"v"
    own_moto.stop()
    with pytest.raises(OSError) as info:
        twin["k"]
    assert "'k'" in str(info.value)
    assert_error_clean(info.value, "OSError of a stopped server")
    assert_no_secret(repr(twin), "repr(sync twin)")
