"""Key rules: the single gate every store passes keys and paths through.

Keys follow zarr 2's storage-path normalization (backslashes become ``/``,
leading, trailing and repeated slashes are dropped) and are then validated:
a key with a ``.`` or ``..`` segment, a NUL character, or nothing left after
normalization is refused with :class:`ValueError` naming the key. Because every
segment of a normalized key is a plain name, joining one onto a directory store's
root can never leave that root.

Examples
--------
>>> normalize_key("/foo//bar/")
'foo/bar'
>>> normalize_key("foo\\\\bar")
'foo/bar'
>>> normalize_path(None)
''
>>> normalize_key("../etc/passwd")
Traceback (most recent call last):
...
ValueError: invalid key '../etc/passwd': '.' and '..' segments are not allowed
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import NamedTuple, cast

__all__ = [
    "KeyLimits",
    "check_key_collection",
    "check_key_limits",
    "is_key_path",
    "normalize_key",
    "normalize_keys",
    "normalize_path",
    "join_key",
    "key_to_fs_path",
    "parent_prefix",
]


def _as_text(key: object, what: str) -> str:
    if isinstance(key, str):
        return key
    # bytes too: a key is text, and a silently decoded b"a" would be a second
    # spelling of "a" that only some callers use.
    raise TypeError(f"{what} must be str, not {type(key).__name__}: {key!r}")


class KeyLimits(NamedTuple):
    """What a backend can store, beyond the key rules: None (or False) is no limit.

    ``max_key_bytes``: the longest key, in UTF-8 bytes (an LMDB key, a file path);
    ``max_segment_bytes``: the longest segment (a file name); ``utf8``: keys must be
    valid Unicode (a Zip entry name or an object key cannot hold a lone surrogate);
    ``bad_segment``: a regular expression no segment may match in full, for the
    reason given in ``bad_segment_reason``.
    """

    max_key_bytes: int | None = None
    max_segment_bytes: int | None = None
    utf8: bool = False
    bad_segment: str | None = None
    bad_segment_reason: str = ""

    def __bool__(self) -> bool:
        """False if there is no limit at all."""
        return any(self)


def check_key_limits(keys: list[str], limits: KeyLimits) -> None:
    """ValueError naming the first key of ``keys`` (normalized) beyond ``limits``.

    The usual batch costs a few C-level passes: keys are checked one by one only
    where a limit could be reached.

    >>> check_key_limits(["a/b", "b/" + "c" * 9], KeyLimits(max_segment_bytes=8))
    Traceback (most recent call last):
    ...
    ValueError: invalid key 'b/ccccccccc': a segment of 9 bytes; this store's names are at most 8 bytes
    """
    if limits.utf8:
        try:
            "\x00".join(keys).encode("utf-8")
        except UnicodeEncodeError:
            for key in keys:
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"invalid key {key!r}: it is not valid Unicode (a lone surrogate), "
                        "which this store cannot store"
                    ) from None
    if limits.bad_segment:
        bad = re.compile(limits.bad_segment)
        for key in keys:
            for segment in key.split("/"):
                if bad.fullmatch(segment):
                    raise ValueError(f"invalid key {key!r}: {limits.bad_segment_reason} ({segment!r})")
    longest = max(map(len, keys), default=0) * 4  # a character is at most 4 UTF-8 bytes
    max_key, max_segment = limits.max_key_bytes, limits.max_segment_bytes
    if (max_key is None or longest <= max_key) and (max_segment is None or longest <= max_segment):
        return
    for key in keys:
        encoded = key.encode("utf-8", "surrogateescape")
        if max_key is not None and len(encoded) > max_key:
            raise ValueError(
                f"invalid key {key!r}: {len(encoded)} bytes long; this store's keys are at most "
                f"{max_key} bytes"
            )
        if max_segment is not None and len(encoded) > max_segment:
            for name in encoded.split(b"/"):
                if len(name) > max_segment:
                    raise ValueError(
                        f"invalid key {key!r}: a segment of {len(name)} bytes; this store's "
                        f"names are at most {max_segment} bytes"
                    )


def check_key_collection(keys: object, what: str = "keys") -> None:
    """Refuse a ``str`` or ``bytes`` where a collection of keys is expected.

    Both are iterable, so ``get_many("ab")`` would otherwise read the keys
    ``"a"`` and ``"b"``.

    >>> check_key_collection(["a", "b"])
    >>> check_key_collection("ab")
    Traceback (most recent call last):
    ...
    TypeError: keys must be a collection of str keys, not str: 'ab'
    """
    if isinstance(keys, str | bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be a collection of str keys, not {type(keys).__name__}: {keys!r}")


def normalize_path(
    path: object, *, lower: bool = False, what: str = "path", limits: KeyLimits | None = None
) -> str:
    """Normalize a storage path; the empty path (the root) is allowed, any other is
    checked against a backend's ``limits`` (:func:`check_key_limits`) if given.

    Parameters
    ----------
    path : str or None
        ``None`` and ``""`` both mean the root.
    lower : bool
        Lower-case the result (a store's ``normalize_keys=True``).

    Examples
    --------
    >>> normalize_path("a/b/")
    'a/b'
    >>> normalize_path("/")
    ''
    """
    if path is None:
        return ""
    if type(path) is str and _is_normal(path):  # the usual path: already normal
        normalized = path.lower() if lower else path
        if limits is not None and not _fits(normalized, limits):
            check_key_limits([normalized], limits)
        return normalized
    text = _as_text(path, what)
    if "\x00" in text:
        raise ValueError(f"invalid key {text!r}: NUL characters are not allowed")
    if "\\" in text:
        text = text.replace("\\", "/")
    segments = [s for s in text.split("/") if s]
    for segment in segments:
        if segment in (".", ".."):
            raise ValueError(f"invalid key {path!r}: '.' and '..' segments are not allowed")
    normalized = "/".join(segments)
    if lower:
        normalized = normalized.lower()
    if limits and normalized:
        check_key_limits([normalized], limits)
    return normalized


def is_key_path(path: str, limits: KeyLimits | None = None) -> bool:
    """True if ``path`` is already normal (and within ``limits``), so that a key can start with it.

    >>> is_key_path("a/b"), is_key_path("./x"), is_key_path("a//b")
    (True, False, False)
    """
    try:
        return normalize_path(path, limits=limits) == path
    except ValueError:
        return False


def normalize_key(key: object, *, lower: bool = False, limits: KeyLimits | None = None) -> str:
    """Normalize a key that names a value: like :func:`normalize_path`, but not empty,
    and within a backend's ``limits`` (:func:`check_key_limits`) if given.

    Examples
    --------
    >>> normalize_key("a/0.0")
    'a/0.0'
    >>> normalize_key("//")
    Traceback (most recent call last):
    ...
    ValueError: invalid key '//': a key must name something below the root
    """
    if type(key) is str:
        # The usual key is already normal: a few C-level scans decide, with no split
        # into segments (this runs once per chunk a zarr read gets).
        if _is_normal(key):
            normalized = key.lower() if lower else key
            if limits is not None and not _fits(normalized, limits):
                check_key_limits([normalized], limits)
            return normalized
    elif key is None:
        raise TypeError("key must be str, not NoneType: None")
    normalized = normalize_path(key, lower=lower, what="key")
    if not normalized:
        raise ValueError(f"invalid key {key!r}: a key must name something below the root")
    if limits:
        check_key_limits([normalized], limits)
    return normalized


def _is_normal(key: str) -> bool:
    """True if ``key`` is a non-empty key that normalization leaves unchanged.

    With a ``/`` added at both ends, every segment lies between two slashes, so an
    empty, ``.`` or ``..`` segment shows as ``//``, ``/./`` or ``/../``: five
    C-level scans decide, with no false answer either way.

    >>> _is_normal("a/.zarray"), _is_normal("a/../b"), _is_normal("a//b"), _is_normal("")
    (True, False, False, False)
    """
    flat = f"/{key}/"
    return (
        "//" not in flat
        and "/./" not in flat
        and "/../" not in flat
        and "\\" not in key
        and "\x00" not in key
    )


def _fits(key: str, limits: KeyLimits) -> bool:
    """True if ``key`` is surely within ``limits`` without counting its bytes: an ASCII
    key's UTF-8 bytes are its characters (and valid Unicode), and no segment is longer
    than the key. False means "count them" (:func:`check_key_limits`), not "too long".

    >>> _fits("a/b", KeyLimits(max_segment_bytes=3)), _fits("a/bcd", KeyLimits(max_segment_bytes=3))
    (True, False)
    """
    if limits.bad_segment or not key.isascii():
        return False
    max_key, max_segment = limits.max_key_bytes, limits.max_segment_bytes
    size = len(key)
    return (max_key is None or size <= max_key) and (max_segment is None or size <= max_segment)


def normalize_keys(
    keys: Iterable[object], *, lower: bool = False, limits: KeyLimits | None = None
) -> list[str]:
    """:func:`normalize_key` of every key of a batch, duplicates dropped (first kept).

    A batch is usually zarr chunk keys that are already normal. Those are
    checked all at once, with a few C-level scans of the joined batch, instead
    of one Python call per key (100,000 keys: ~10 ms instead of ~150 ms). Any
    other batch takes the per-key path, with the same errors.

    >>> normalize_keys(["a/0.0", "a/0.1", "a/0.0"])
    ['a/0.0', 'a/0.1']
    >>> normalize_keys(["/a//b/", "a/b", "a/.zarray"])
    ['a/b', 'a/.zarray']
    >>> normalize_keys(["a/0", "a/../b"])
    Traceback (most recent call last):
    ...
    ValueError: invalid key 'a/../b': '.' and '..' segments are not allowed
    """
    check_key_collection(keys)
    batch = list(keys)
    if _already_normal(batch):
        normal = cast("list[str]", batch)
        unique = normal if len(set(normal)) == len(normal) else list(dict.fromkeys(normal))
    else:
        unique = list(dict.fromkeys(normalize_key(k) for k in batch))
    if lower:
        unique = list(dict.fromkeys(k.lower() for k in unique))
    if limits:
        check_key_limits(unique, limits)
    return unique


def _already_normal(batch: list[object]) -> bool:
    try:
        joined = "\x00".join(batch)  # type: ignore[arg-type]
    except TypeError:
        return False  # not all str: the per-key path names the bad key
    if joined.count("\x00") != len(batch) - 1 or "\\" in joined:
        return False  # a key holds a NUL of its own, or a backslash
    # Every key boundary (NUL) becomes a "/", and a "/" goes at both ends: then every
    # segment of every key lies between two slashes, and an empty key or segment, a
    # "." or a ".." shows as "//", "/./" or "/../" (see _is_normal).
    flat = f"/{joined.replace(chr(0), '/')}/"
    return "//" not in flat and "/./" not in flat and "/../" not in flat


def join_key(path: str, name: str) -> str:
    """Join an already normalized path and a name with ``/``.

    >>> join_key("", "a"), join_key("a", "b")
    ('a', 'a/b')
    """
    return f"{path}/{name}" if path else name


def parent_prefix(path: str) -> str:
    """The listing prefix of everything below a normalized path.

    >>> parent_prefix(""), parent_prefix("a/b")
    ('', 'a/b/')
    """
    return f"{path}/" if path else ""


def key_to_fs_path(root: str, key: str) -> str:
    """File-system path of a *normalized* key below ``root``.

    A normalized key's segments are plain names (no ``.``, ``..``, separators or
    NUL), so the result is always inside ``root``. The checks here are a second
    line of defence for a key that skipped :func:`normalize_key`, not the gate.

    >>> key_to_fs_path("/data/x.zarr", "a/0.0")
    '/data/x.zarr/a/0.0'
    >>> key_to_fs_path("/data/x.zarr", "../x")
    Traceback (most recent call last):
    ...
    ValueError: invalid key '../x': it would leave the store root '/data/x.zarr'
    """
    segments = key.split("/")
    if any(s in ("", ".", "..") or "\x00" in s for s in segments):
        raise ValueError(f"invalid key {key!r}: it would leave the store root {root!r}")
    if os.sep != "/" and os.sep in key:  # pragma: no cover - Windows only
        raise ValueError(f"invalid key {key!r}: contains the separator {os.sep!r}")
    return os.path.join(root, *segments)
