"""The argument checks of the store protocol: plain functions both sides call.

Every public method of :class:`aiostore.abc.Store` -- the async ones and their
``*_sync`` twins -- runs its arguments through these before a backend sees them,
so a backend's hooks always receive normalized keys, checked byte ranges and
flat byte buffers. Re-exported by :mod:`aiostore.abc`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import numpy as np
import sniffio

from aiostore._runtime.coalesce import Request
from aiostore.errors import BatchWriteError, ClosedStoreError, ReadOnlyError

if TYPE_CHECKING:
    from typing_extensions import Buffer as _BufferProtocol

    from aiostore._protocol.store import Store

__all__ = [
    "also_failed",
    "joined_values",
    "merged_values",
    "raise_write_failures",
    "check_rename",
    "collect",
    "Buffer",
    "BufferLike",
    "ByteRange",
    "Request",
    "as_buffer",
    "check_byte_range",
    "check_open",
    "check_writable",
    "child_name",
    "closing_scope",
    "slice_byte_range",
    "split_conflicts",
]

#: What a value may be when it is stored: anything with the buffer protocol
#: (bytes, bytearray, memoryview, numpy arrays, ``array.array``); a ``str`` is not.
BufferLike: TypeAlias = "_BufferProtocol | np.ndarray[Any, Any]"

#: ``(start, stop)``: ``stop=None`` reads to the end; ``start < 0`` (with
#: ``stop=None``) reads the last ``-start`` bytes.
ByteRange: TypeAlias = tuple[int, int | None]
#: What backends receive as a value: the caller's bytes, or a flat byte view.
Buffer: TypeAlias = bytes | memoryview


def as_buffer(value: object, key: str = "") -> Buffer:
    """Return ``value``'s raw bytes as ``bytes`` or a 1-d unsigned-byte view.

    Accepts anything with the buffer protocol (bytes, bytearray, memoryview,
    numpy arrays -- including datetime64/timedelta64 ones, whose raw bytes are
    their int64 values -- and ``array.array``); a C-contiguous buffer is not
    copied, others are copied in memory order. Raises :class:`TypeError` for
    anything else (``str``, lists, object arrays), naming the key.

    >>> as_buffer(b"ab")
    b'ab'
    >>> import numpy as np
    >>> bytes(as_buffer(np.arange(2, dtype="<u2")))
    b'\\x00\\x00\\x01\\x00'
    >>> as_buffer([1, 2], "k")
    Traceback (most recent call last):
    ...
    TypeError: value for key 'k' must be bytes-like (buffer protocol), not list
    """
    if type(value) is bytes or (
        type(value) is memoryview and value.format == "B" and value.ndim == 1 and value.c_contiguous
    ):
        return value  # as it is: what the checks below would give (an LMDB buffer, say)
    if isinstance(value, str) or (not hasattr(type(value), "__buffer__") and not _has_buffer(value)):
        raise TypeError(
            f"value for key {key!r} must be bytes-like (buffer protocol), not {type(value).__name__}"
        )
    try:
        view = memoryview(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, NotImplementedError) as exc:
        if getattr(getattr(value, "dtype", None), "kind", None) in ("m", "M"):
            # numpy exports no buffer for datetimes, yet zarr 2 passes such chunks
            # unencoded when there is no compressor: store their int64 bytes.
            return as_buffer(np.asarray(value).view(np.uint64), key)
        raise TypeError(
            f"value for key {key!r} must be bytes-like (buffer protocol), not {type(value).__name__}: {exc}"
        ) from None
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    if view.format == "O":
        # Raw bytes of an object array are pointers: meaningless once stored.
        raise TypeError(f"value for key {key!r} is an object array; encode it to bytes first")
    if view.nbytes == 0:
        return b""  # memoryview.cast refuses shapes with a zero in them
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(view.tobytes(order="A"))


def _has_buffer(value: object) -> bool:
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    except (ValueError, NotImplementedError):
        return True  # a buffer, but not a usable one: as_buffer names the problem
    return True


def check_byte_range(byte_range: object) -> ByteRange | None:
    """Validate a ``byte_range`` argument and return it as a tuple.

    >>> check_byte_range((2, None)), check_byte_range([0, 4]), check_byte_range(None)
    ((2, None), (0, 4), None)
    >>> check_byte_range((-4, 2))
    Traceback (most recent call last):
    ...
    ValueError: invalid byte_range (-4, 2): a suffix range (start < 0) must have stop=None
    """
    if byte_range is None:
        return None
    try:
        start: object
        stop: object
        start, stop = byte_range  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"byte_range must be a (start, stop) pair, not {byte_range!r}") from None
    if not isinstance(start, int) or isinstance(start, bool):
        raise TypeError(f"invalid byte_range {byte_range!r}: start must be an int")
    if stop is not None and (not isinstance(stop, int) or isinstance(stop, bool)):
        raise TypeError(f"invalid byte_range {byte_range!r}: stop must be an int or None")
    if start < 0 and stop is not None:
        raise ValueError(
            f"invalid byte_range {(start, stop)!r}: a suffix range (start < 0) must have stop=None"
        )
    if stop is not None and stop < start:
        raise ValueError(f"invalid byte_range {(start, stop)!r}: stop < start")
    return (start, stop)


def slice_byte_range(data: bytes, byte_range: ByteRange | None) -> bytes:
    """Apply a checked byte range to a whole value.

    >>> slice_byte_range(b"abcdef", (1, 3)), slice_byte_range(b"abcdef", (-2, None))
    (b'bc', b'ef')
    """
    if byte_range is None:
        return data
    start, stop = byte_range
    return data[start:stop]


def check_open(store: Store) -> None:
    """Raise :class:`~aiostore.ClosedStoreError` if ``store`` is closed."""
    if store.closed:
        raise ClosedStoreError(f"{store!r} is closed")


def check_writable(store: Store) -> None:
    """Raise if ``store`` is closed or read-only (:class:`~aiostore.ReadOnlyError`)."""
    if store.closed:
        raise ClosedStoreError(f"{store!r} is closed")
    if store.read_only:
        raise ReadOnlyError(f"{store!r} is read-only")


def closing_scope() -> contextlib.AbstractContextManager[Any]:
    """A scope that shields a store's closing from cancellation (nothing outside an event loop).

    A cancelled close would leave a store marked closed that still holds its
    files, environments or temporary directory; the close is short and its
    thread work cannot be interrupted anyway.

    >>> with closing_scope():
    ...     pass
    """
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return contextlib.nullcontext()
    return anyio.CancelScope(shield=True)


def child_name(prefix: str, key: str) -> str:
    """The first segment of ``key`` after ``prefix``.

    >>> child_name("a/", "a/b/c")
    'b'
    """
    return key[len(prefix) :].split("/", 1)[0]


def check_rename(src_path: object, dst_path: object, src: str, dst: str) -> bool:
    """Refuse a rename of the root or into itself; False if there is nothing to do.

    ``src``/``dst`` are the normalized forms of ``src_path``/``dst_path``.

    >>> check_rename("a", "a/b", "a", "a/b")
    Traceback (most recent call last):
    ...
    ValueError: cannot rename 'a' into itself ('a/b')
    """
    if not src or not dst:
        raise ValueError(f"cannot rename the store root ({src_path!r} -> {dst_path!r})")
    if src == dst:
        return False
    if dst.startswith(src + "/"):
        raise ValueError(f"cannot rename {src_path!r} into itself ({dst_path!r})")
    return True


@contextlib.contextmanager
def also_failed(failed: dict[str, BaseException]) -> Iterator[None]:
    """Report ``failed`` keys in the :class:`~aiostore.BatchWriteError` of the batch
    write inside the block, or in one of their own if it succeeds.

    A batch whose every failed key failed because the store was closed (a close
    raced the write) raises :class:`~aiostore.ClosedStoreError` instead, what a
    caller of a closed store catches; the batch error, naming the keys not
    written, is its ``__cause__``.

    >>> from aiostore.errors import ClosedStoreError
    >>> try:
    ...     with also_failed({}):
    ...         raise BatchWriteError({"a": ClosedStoreError("Store() is closed")})
    ... except ClosedStoreError as exc:
    ...     print(exc)
    Store() is closed (while this batch was written: 1 key(s) not written)
    """
    try:
        yield
    except BatchWriteError as exc:
        batch_error = BatchWriteError({**exc.failed, **failed}) if failed else exc
        errors = list(batch_error.failed.values())
        if errors and all(isinstance(error, ClosedStoreError) for error in errors):
            raise ClosedStoreError(
                f"{errors[0]} (while this batch was written: {len(errors)} key(s) not written)"
            ) from batch_error
        if not failed:
            raise
        raise batch_error from None
    if failed:
        raise BatchWriteError(failed)


async def collect(keys: AsyncIterator[str]) -> list[str]:
    """Every key of an async iterator, as a list."""
    return [key async for key in keys]


def split_conflicts(
    items: list[tuple[str, Buffer]],
) -> tuple[list[tuple[str, Buffer]], dict[str, BaseException]]:
    """Split off the keys of a batch that another key of the same batch would
    hold a value above ("x/y" when "x" is written too), with their errors.

    In a store where a name holds a value or other keys, never both, such a key
    could not stay written, whatever the order the batch is written in.

    >>> items, conflicts = split_conflicts([("x/y", b"2"), ("x", b"1")])
    >>> items, sorted(conflicts)
    ([('x', b'1')], ['x/y'])
    """
    keys = {key for key, _ in items}
    conflicts: dict[str, BaseException] = {}
    for key, _ in items:
        cut = key.rfind("/")
        while cut > 0:
            if key[:cut] in keys:
                conflicts[key] = KeyError(
                    f"cannot store {key!r}: {key[:cut]!r} is written in the same batch, "
                    "and a name holds a value or other keys, never both"
                )
                break
            cut = key.rfind("/", 0, cut)
    if conflicts:
        items = [(key, value) for key, value in items if key not in conflicts]
    return items, conflicts


# -- a batch's parts (see aiostore._runtime.offload_batch), put back together ----------------
def joined_values(parts: Sequence[tuple[Sequence[Any], Any]]) -> list[Any]:
    """The parts' result lists, joined in order; the first part's exception is raised."""
    joined: list[Any] = []
    for _, result in parts:
        if isinstance(result, BaseException):
            raise result
        joined.extend(result)
    return joined


def merged_values(parts: Sequence[tuple[Sequence[Any], Any]]) -> dict[str, bytes]:
    """The parts' ``{key: value}`` results, merged; the first part's exception is raised."""
    if len(parts) == 1 and not isinstance(parts[0][1], BaseException):
        return parts[0][1]  # type: ignore[no-any-return]
    merged: dict[str, bytes] = {}
    for _, result in parts:
        if isinstance(result, BaseException):
            raise result
        merged.update(result)
    return merged


def raise_write_failures(parts: Sequence[tuple[Sequence[Any], Any]]) -> None:
    """Raise one :class:`~aiostore.BatchWriteError` naming every key the parts failed to write."""
    failed: dict[str, BaseException] = {}
    for part, error in parts:
        if isinstance(error, BatchWriteError):
            failed.update(error.failed)
        elif isinstance(error, BaseException):
            failed.update({key: error for key, _ in part})
    if failed:
        raise BatchWriteError(failed)
