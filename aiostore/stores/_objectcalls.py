"""Small pure helpers of :mod:`aiostore.stores.objectstore`: obstore's import, URLs,
range options and error texts.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from aiostore.abc import ByteRange
from aiostore.keys import KeyLimits

__all__ = [
    "LOCAL_KEY_LIMITS",
    "first_line",
    "get_options",
    "obstore_module",
    "public_url",
    "not_a_directory",
    "range_failed",
    "range_not_satisfiable",
    "refused",
]


def obstore_module() -> Any:
    """obstore, imported on first use (an optional dependency)."""
    try:
        import obstore
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("aiostore.ObjectStore needs obstore: pip install 'aiostore[objectstore]'") from None
    return obstore


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (where credentials may hide).

    >>> public_url("s3://key:secret@bucket/x?token=t"), public_url("memory:///")
    ('s3://bucket/x', 'memory:///')
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def get_options(byte_range: ByteRange) -> dict[str, Any]:
    start, stop = byte_range
    if start < 0:
        return {"range": {"suffix": -start}}
    if stop is None:
        return {"range": {"offset": start}}
    return {"range": (start, stop)}


def first_line(exc: BaseException) -> str:
    """The first line of obstore's message (the rest is a debug dump of its internals)."""
    return str(exc).strip().split("\n", 1)[0]


def range_not_satisfiable(exc: BaseException) -> bool:
    """A ranged read whose start lies past the end of the object (HTTP 416, or
    obstore's in-memory and local stores' "Wanted range starting at")."""
    text = str(exc)
    return any(
        s in text for s in ("416", "Range Not Satisfiable", "InvalidRange", "Wanted range starting at")
    )


def range_failed(exc: BaseException) -> bool:
    """A ranged read that failed because of its range, not because of the key:
    past the end, refused (Azure has no suffix ranges) or ignored (a server
    answering 200 with the whole body). Missing keys and refused access are not.
    """
    if isinstance(exc, FileNotFoundError | PermissionError) or type(exc).__name__ in (
        "NotFoundError",
        "PermissionDeniedError",
        "UnauthenticatedError",
    ):
        return False
    text = str(exc)
    return range_not_satisfiable(exc) or any(
        s in text for s in ("range", "Range", "non-partial", "NotSupported")
    )


def refused(exc: BaseException) -> bool:
    """An error whose HTTP status says access was refused (401, 403).

    >>> refused(OSError("... Server returned non-2xx status code: 403 Forbidden: ..."))
    True
    """
    text = first_line(exc)
    return "403 Forbidden" in text or "401 Unauthorized" in text


def not_a_directory(exc: BaseException) -> bool:
    """A local store's error for a path below a file (ENOTDIR)."""
    return isinstance(exc, NotADirectoryError) or "Not a directory (os error 20)" in str(exc)


#: Object keys are UTF-8. On a local file system names are at most 255 bytes and
#: paths 4095 (3800 are left to keys: the root takes the rest, up to 295 bytes);
#: obstore's LocalStore refuses control characters and names ending like "#1" (its own
#: suffix for multipart uploads), and fails to write (leaving a folder behind) a
#: name that ends like a URL scheme or a drive ("C:").
LOCAL_KEY_LIMITS = KeyLimits(
    max_key_bytes=3800,
    max_segment_bytes=255,
    utf8=True,
    bad_segment=r"[A-Za-z][A-Za-z0-9+.-]*:|.*[\x00-\x1f\x7f].*|.*#\d+",
    bad_segment_reason=(
        "obstore's LocalStore cannot store a name with a control character, "
        "a name ending like '#1', or one that ends like a URL scheme or a drive"
    ),
)
