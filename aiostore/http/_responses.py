"""Sending answers over ASGI: a few plain messages, no response objects (this is the hot path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["PLAIN_TEXT", "Headers", "Send", "header", "send_response", "send_text"]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_NOSNIFF = (b"x-content-type-options", b"nosniff")
#: A short answer's headers (an error's reason).
PLAIN_TEXT = ((b"content-type", b"text/plain; charset=utf-8"), _NOSNIFF)


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The value of the request header ``name`` (lower case), or None; repeats joined by ``,``.

    >>> header({"headers": [(b"range", b"bytes=0-1")]}, b"range")
    'bytes=0-1'
    """
    found = [value for key, value in scope["headers"] if key == name]
    if not found:
        return None
    return b",".join(found).decode("latin-1")


async def send_response(
    send: Send,
    status: int,
    headers: Headers,
    body: bytes | memoryview = b"",
    *,
    length: int | None = None,
    head: bool = False,
) -> None:
    """Send a whole response. ``Content-Length`` is ``length`` if given (a HEAD request's
    value, not sent), else the body's; with ``head`` the body is left out."""
    size = len(body) if length is None else length
    if status not in (204, 304):  # neither has a body, nor may say it has one
        headers.append((b"content-length", str(size).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if head or not body or status in (204, 304):
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": body if type(body) is bytes else bytes(body)})


async def send_text(
    send: Send,
    status: int,
    text: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    *,
    head: bool = False,
) -> None:
    """Send a short plain-text answer (an error's reason)."""
    headers = [*PLAIN_TEXT, *extra]
    await send_response(send, status, headers, (text + "\n").encode("utf-8", "replace"), head=head)
