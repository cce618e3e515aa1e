"""ObjectStore on Google Cloud Storage, as far as a machine without GCS (or an emulator) allows.

The store builds from a ``gs://`` URL and obstore's options, keeps credentials
out of its repr, pickles, and -- pointed (``base_url``) at a local endpoint that
accepts connections and never answers -- fails within its configured timeout
with an :class:`OSError` that names the key and the store. Nothing here leaves
127.0.0.1: every store that makes a request has a ``base_url`` there and a
static bearer token (so obstore never asks a metadata server for one).
"""

from __future__ import annotations

import datetime
import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import aiostore
import aiostore.sync

pytestmark = pytest.mark.anyio
pytest.importorskip("obstore")

SECRET = "not-a-real-token-5ecr3t"
#: One retry, quickly: a request to the silent endpoint fails after 2 x the timeout.
RETRY = {
    "max_retries": 1,
    "retry_timeout": datetime.timedelta(seconds=10),
    "backoff": {
        "init_backoff": datetime.timedelta(milliseconds=10),
        "max_backoff": datetime.timedelta(milliseconds=20),
        "base": 2,
    },
}


@pytest.fixture(scope="module")
def silent_endpoint() -> Iterator[str]:
    """A port on 127.0.0.1 whose connections the kernel accepts and nobody answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def closed_endpoint() -> str:
    """A port on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "config": {"base_url": endpoint, "bearer_token": SECRET},
        "allow_http": True,
        "retry_config": RETRY,
        **extra,
    }


def test_builds_from_a_url() -> None:
    store = aiostore.ObjectStore("gs://bucket/data.zarr")  # no credentials needed until a request
    assert repr(store) == "ObjectStore('gs://bucket/data.zarr')"
    assert store.location == "gs://bucket/data.zarr"
    assert not store.read_only and store.supports_listing and store.supports_deletes
    assert aiostore.ObjectStore("gs://bucket/data.zarr", read_only=True).read_only
    twin = aiostore.sync.ObjectStore("gs://bucket/data.zarr", timeout="2s")
    assert twin.async_store.location == "gs://bucket/data.zarr"
    twin.close()


def test_repr_and_errors_hide_credentials() -> None:
    store = aiostore.ObjectStore(
        f"gs://user:{SECRET}@bucket/data.zarr?token={SECRET}#{SECRET}",
        config={"bearer_token": SECRET},
    )
    assert repr(store) == "ObjectStore('gs://bucket/data.zarr')"
    assert SECRET not in repr(store) and SECRET not in store.location
    assert SECRET not in str(aiostore.ObjectStore("gs://bucket/x", config={"bearer_token": SECRET}))


def test_pickles_without_a_request() -> None:
    store = aiostore.ObjectStore("gs://bucket/data.zarr", config={"bearer_token": SECRET}, timeout="2s")
    clone = pickle.loads(pickle.dumps(store))
    assert isinstance(clone, aiostore.ObjectStore) and clone == store
    assert repr(clone) == "ObjectStore('gs://bucket/data.zarr')"


async def test_unreachable_endpoint_fails_within_the_timeout(
    silent_endpoint: str, anyio_backend: str
) -> None:
    """``timeout="2s"`` and one retry: each call fails in about 4 s, an OSError naming key and store.

    The store and its ``open_store`` twin run their calls concurrently, so the
    test takes one round of timeouts, not one per call.
    """
    store = aiostore.ObjectStore("gs://bucket/data.zarr", timeout="2s", **_options(silent_endpoint))
    opened = await aiostore.open_store("gs://bucket/opened", timeout="2s", **_options(silent_endpoint))
    assert isinstance(opened, aiostore.ObjectStore)
    calls = {
        ("data.zarr", "a/0"): lambda: store.get("a/0"),
        ("data.zarr", "a/1"): lambda: store.get("a/1", byte_range=(0, 4)),
        ("data.zarr", "a/2"): lambda: store.contains("a/2"),
        ("data.zarr", "a/3"): lambda: store.set("a/3", b"x"),
        ("opened", "b/0"): lambda: opened.get("b/0"),
        ("opened", "b/1"): lambda: opened.get_many(["b/1"]),
    }
    errors: dict[tuple[str, str], BaseException] = {}

    async def run(name: tuple[str, str]) -> None:
        try:
            await calls[name]()
        except Exception as exc:
            errors[name] = exc

    start = time.monotonic()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for name in calls:
                tg.start_soon(run, name)
    elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 20, elapsed  # the timeout applied: neither at once nor obstore's 30 s default
    assert set(errors) == set(calls)
    for (where, key), error in errors.items():
        assert isinstance(error, OSError), (key, error)
        assert not isinstance(error, (KeyError, PermissionError)), (key, error)
        assert repr(key) in str(error) and f"gs://bucket/{where}" in str(error), str(error)
        assert SECRET not in str(error)
    await store.aclose()
    await opened.aclose()


async def test_refused_connection_is_an_os_error(closed_endpoint: str, anyio_backend: str) -> None:
    async with aiostore.ObjectStore(
        "gs://bucket/data.zarr", connect_timeout="2s", **_options(closed_endpoint)
    ) as s:
        with pytest.raises(OSError, match=r"'a/0' in gs://bucket/data\.zarr") as info:
            await s.get("a/0")
        assert not isinstance(info.value, KeyError)
        with pytest.raises(OSError, match="'x'"):
            await s.listdir("x")


def test_sync_twin_names_the_key(closed_endpoint: str) -> None:
    with aiostore.sync.ObjectStore("gs://bucket/d", timeout="2s", **_options(closed_endpoint)) as store:
        with pytest.raises(OSError, match=r"'k' in gs://bucket/d"):
            store["k"]
        with pytest.raises(OSError, match=r"'k'"):
            store.getitems(["k"])
    opened = aiostore.sync.open_store("gs://bucket/d", timeout="2s", **_options(closed_endpoint))
    with opened, pytest.raises(OSError, match=r"'k' in gs://bucket/d"):
        opened["k"]
