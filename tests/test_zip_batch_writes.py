"""ZipStore's batch writes (aiostore.stores._zipwrite): many entries packed and
written at once, and the central directory written in one go, with the bytes
``zipfile`` writes; failures part-way; appending to existing archives."""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiostore import ZipStore
from aiostore.errors import BatchWriteError
from aiostore.stores import _zipwrite
from aiostore.stores._zipwrite import central_directory, close_zip, write_entries

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "store.zip")


def value_of(key: str, size: int) -> bytes:
    raw = key.encode()
    return (raw * (size // len(raw) + 1))[:size]


def entries(path: str) -> list[tuple[str, bytes]]:
    """What a fresh ``zipfile`` reader sees in the file (every CRC checked first)."""
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def mixed_batch(count: int, tag: str = "") -> list[tuple[str, Any]]:
    """ASCII and non-ASCII keys, empty values, bytes, bytearrays, memoryviews, numpy arrays."""
    items: list[tuple[str, Any]] = []
    for i in range(count):
        key = f"a{tag}/{i // 100}.{i % 100}" if i % 3 else f"ü{tag}/数据/{i}"
        raw = value_of(key, (i * 37) % 300)
        kind = i % 5
        value: Any = raw
        if kind == 1:
            value = bytearray(raw)
        elif kind == 2:
            value = memoryview(raw)
        elif kind == 3:
            value = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4")
        items.append((key, value))
    return items


def as_bytes(value: Any) -> bytes:
    return bytes(memoryview(value).cast("B")) if len(memoryview(value)) else b""


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_big_batch_reads_back_everywhere(path: str, compression: int) -> None:
    first = mixed_batch(3000)
    again = [(key, b"again " + as_bytes(value)) for key, value in first[::7]]
    # A key twice in one batch is stored once (the later value, at the first's place),
    # and a key stored before is appended again: zipfile warns, reads see the newest.
    second = mixed_batch(2000, tag="x") + again[:50] + [("a/0.1", b""), ("a/0.2", b""), ("a/0.1", b"last")]
    store = ZipStore(path, mode="w", compression=compression)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.set_many_sync(first)
        store.set_many_sync(second)
        store.set_many_sync(again[50:])  # across batches
    duplicates = len(again) + 2
    assert [str(w.message).startswith("Duplicate name") for w in caught] == [True] * duplicates
    batches = [dict(first), dict(second), dict(again[50:])]
    expected_order = [(k, as_bytes(v)) for batch in batches for k, v in batch.items()]
    newest = dict(expected_order)
    assert store.get_many_sync(list(newest)) == newest  # before close, this process
    assert store.get_sync("a/0.1") == b"last"
    store.close_sync()
    assert entries(path) == expected_order
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("ü/数据/0")
        assert info.flag_bits & 0x800 and info.external_attr == 0o644 << 16
        assert {i.compress_type for i in zf.infolist()} == {compression}
    reopened = ZipStore(path, mode="r")
    assert reopened.get_many_sync(list(newest)) == newest
    assert sorted(reopened.list_sync()) == sorted(newest)
    reopened.close_sync()


def test_the_file_is_byte_for_byte_what_zipfile_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.localtime()
    monkeypatch.setattr(time, "localtime", lambda *_: now)
    date_time = (now.tm_year, now.tm_mon, now.tm_mday, now.tm_hour, now.tm_min, now.tm_sec)
    for compression in COMPRESSIONS:
        items = [(k, as_bytes(v)) for k, v in mixed_batch(500)] + [("a/0.1", b"dup"), ("e", b"")]
        ours = tmp_path / f"ours{compression}.zip"
        with zipfile.ZipFile(ours, "w") as zf:
            written: list[zipfile.ZipInfo] = []
            write_entries(zf, items, compression, True, written, {})
            assert zf.infolist() == written
            assert [zf.read(info) for info in written] == [v for _, v in items]  # before close
        theirs = tmp_path / f"theirs{compression}.zip"
        with zipfile.ZipFile(theirs, "w") as zf:
            for key, value in items:
                info = zipfile.ZipInfo(key, date_time)
                info.compress_type = compression
                info.external_attr = 0o644 << 16
                zf.writestr(info, value)
        assert ours.read_bytes() == theirs.read_bytes()


def zip_with_odd_entries() -> zipfile.ZipFile:
    """A ZipFile (in memory) with what other tools put in archives: comments, extras,
    other compressions, directories, UTF-8 names, sizes and offsets that need ZIP64."""
    zf = zipfile.ZipFile(io.BytesIO(), "w")
    write_entries(zf, [("plain", b"x" * 100), ("naïve", b"y")], zipfile.ZIP_STORED, True, [], {})
    zf.writestr("bz", b"z" * 1000, compress_type=zipfile.ZIP_BZIP2)
    zf.writestr("xz", b"z" * 1000, compress_type=zipfile.ZIP_LZMA)
    info = zipfile.ZipInfo("commented", (2001, 2, 3, 4, 5, 6))
    info.comment = b"a comment"
    info.extra = struct.pack("<HH2s", 0x5455, 2, b"ab")
    zf.writestr(info, b"c")
    zf.mkdir("dir")
    zf.comment = b"the archive's comment"
    # Past 2 GiB (the central directory does not look at the data): ZIP64 extras.
    big = zipfile.ZipInfo("big", (2020, 1, 1, 0, 0, 0))
    big.file_size = big.compress_size = 3 << 30
    big.header_offset = 5 << 30
    big.extra = struct.pack("<HHQ", 1, 8, 123) + struct.pack("<HH2s", 0x5455, 2, b"cd")
    far = zipfile.ZipInfo("far", (2020, 1, 1, 0, 0, 0))
    far.header_offset = 1 << 32
    big.CRC = far.CRC = 0
    zf.filelist += [big, far]
    return zf


@pytest.mark.parametrize("many", [False, True])
def test_the_central_directory_is_byte_for_byte_zipfiles(many: bool) -> None:
    zf = zip_with_odd_entries()
    if many:  # past 65535 entries: the ZIP64 end records
        write_entries(zf, [(f"k{i}", b"") for i in range(70_000)], zipfile.ZIP_STORED, True, [], {})
    assert isinstance(zf.fp, io.BytesIO)
    buffer = zf.fp
    start = zf.start_dir
    ours = central_directory(zf, True)
    assert ours is not None
    zf.close()
    assert buffer.getvalue()[start:] == ours


def test_what_it_cannot_list_is_left_to_zipfile(path: str) -> None:
    zf = zip_with_odd_entries()
    zf.filelist[-2].extra = b"\x01\x00\x10"  # not a list of fields: zipfile's versions differ
    assert central_directory(zf, True) is None
    zf.filelist[-2].extra = b""
    assert central_directory(zf, True) is not None
    assert central_directory(zf, False) is not None  # entries' ZIP64 extras are not refused
    write_entries(zf, [(f"k{i}", b"") for i in range(70_000)], zipfile.ZIP_STORED, True, [], {})
    assert central_directory(zf, False) is None  # past 65535 entries zipfile raises LargeZipFile
    zf.close()
    with zipfile.ZipFile(path, "w") as plain:
        plain.writestr("a", b"1")
        close_zip(plain, modified=False, allowZip64=True)  # zipfile's own close
    assert entries(path) == [("a", b"1")]


def test_zipfiles_own_close_lists_the_entries_too(path: str) -> None:
    """What close_zip leaves to zf.close() (or a ZipFile dropped unclosed) lists them too:
    the archive is marked modified, as writestr marks it."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("first", b"1")
    with zipfile.ZipFile(path, "a") as zf:  # opened for appending: not modified yet
        write_entries(zf, [("second", b"2"), ("third", b"")], zipfile.ZIP_STORED, True, [], {})
    assert entries(path) == [("first", b"1"), ("second", b"2"), ("third", b"")]


def test_mode_a_appends_to_an_archive_written_elsewhere(path: str) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("old", b"old value")
        zf.writestr("grüße", b"hello")
        zf.comment = b"kept"
    batch = [(f"new/{i}", value_of(str(i), i % 200)) for i in range(2000)] + [("old", b"new value")]
    store = ZipStore(path, mode="a")
    store.set_many_sync(batch)
    assert store.get_many_sync(["old", "grüße"]) == {"old": b"new value", "grüße": b"hello"}
    store.flush_sync()  # central directory written, file opened again for appending
    store.set_many_sync([("after/flush", b"1"), ("new/5", b"5")])
    store.close_sync()
    expected = [("old", b"old value"), ("grüße", b"hello"), *batch, ("after/flush", b"1"), ("new/5", b"5")]
    assert entries(path) == expected
    with zipfile.ZipFile(path) as zf:
        assert zf.comment == b"kept"
    store = ZipStore(path, mode="r")
    assert store.get_many_sync([k for k, _ in expected]) == dict(expected)
    store.close_sync()


def test_big_values_and_other_compressions_go_through_zipfile(path: str) -> None:
    big = os.urandom(_zipwrite.MAX_FAST_VALUE + 1)
    store = ZipStore(path, mode="w", compression=zipfile.ZIP_BZIP2)
    store.set_many_sync([("a", b"1"), ("big", big), ("c", b"")])
    assert store.get_sync("big") == big
    store.close_sync()
    assert entries(path) == [("a", b"1"), ("big", big), ("c", b"")]


class _FailingFile:
    """Wraps the writer's file: writes at most ``chunk`` bytes a call (a short write), and
    fails with ENOSPC (after writing half) once ``budget`` bytes are written, ``times`` times."""

    def __init__(self, fp: Any, budget: int, times: int = 10**9, chunk: int = 10**12) -> None:
        self._fp, self._budget, self._times, self._chunk = fp, budget, times, chunk

    def write(self, data: Any) -> int:
        data = memoryview(data)[: self._chunk]
        if len(data) > self._budget and self._times > 0:
            self._times -= 1
            self._fp.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        self._budget -= len(data)
        return int(self._fp.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


@pytest.mark.parametrize("times", [1, 10**9])  # a passing hiccup; a full disk
def test_a_failure_mid_batch_keeps_everything_written_before(
    path: str, monkeypatch: pytest.MonkeyPatch, times: int
) -> None:
    monkeypatch.setattr(_zipwrite, "RUN_BYTES", 20_000)  # a run is ~20 entries
    store = ZipStore(path, mode="w")
    store.set_many_sync({"before": b"kept", "dup": b"old"})
    assert store._share is not None
    zf = store._share.zf
    real = zf.fp
    zf.fp = _FailingFile(real, budget=30_000, times=times)  # type: ignore[assignment]
    batch = [(f"k/{i}", value_of(f"k/{i}", 1000)) for i in range(100)] + [("dup", b"new")]
    with pytest.raises(BatchWriteError) as caught:
        store.set_many_sync(batch)
    zf.fp = real
    failed = set(caught.value.failed)
    stored = [(k, v) for k, v in batch if k not in failed]
    # The first run (k/0 to k/19) fit, the second did not; then the disk had room again, or not.
    assert failed == ({f"k/{i}" for i in range(20, 40)} if times == 1 else {f"k/{i}" for i in range(20, 100)})
    assert store.get_many_sync([k for k, _ in batch]) == dict(stored)
    store.set_many_sync({"later": b"fine"})
    store.close_sync()
    assert entries(path) == [("before", b"kept"), ("dup", b"old"), *stored, ("later", b"fine")]
    reopened = ZipStore(path, mode="r")
    assert reopened.get_many_sync(["later", "dup"]) == {
        "later": b"fine",
        "dup": dict(stored).get("dup", b"old"),
    }
    reopened.close_sync()


def test_short_writes_are_finished(path: str) -> None:
    store = ZipStore(path, mode="w")
    assert store._share is not None
    zf = store._share.zf
    real = zf.fp
    zf.fp = _FailingFile(real, budget=10**12, chunk=777)  # type: ignore[assignment]
    batch = {f"k/{i}": value_of(f"k/{i}", 300) for i in range(300)}
    store.set_many_sync(batch)
    zf.fp = real
    store.close_sync()
    assert entries(path) == list(batch.items())


def test_an_interrupt_mid_batch_leaves_a_valid_archive(path: str) -> None:
    class Interrupting(_FailingFile):
        def write(self, data: Any) -> int:
            if len(memoryview(data)) > 5000:
                self._fp.write(memoryview(data)[:100])
                raise KeyboardInterrupt
            return int(self._fp.write(data))

    store = ZipStore(path, mode="w")
    store.set_many_sync({"a": b"1"})
    assert store._share is not None
    zf = store._share.zf
    real = zf.fp
    zf.fp = Interrupting(real, budget=0)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        store.set_many_sync({f"k/{i}": b"x" * 100 for i in range(100)})
    zf.fp = real
    assert not store.contains_sync("k/0")
    store.close_sync()
    assert entries(path) == [("a", b"1")]


def test_without_zip64_the_entry_limit_is_zipfiles(path: str) -> None:
    limit = zipfile.ZIP_FILECOUNT_LIMIT
    store = ZipStore(path, mode="w", allowZip64=False)
    with pytest.raises(BatchWriteError) as caught:
        store.set_many_sync({f"{i}": b"" for i in range(limit + 2)})
    assert sorted(caught.value.failed) == [str(limit), str(limit + 1)]
    assert all(isinstance(e, zipfile.LargeZipFile) for e in caught.value.failed.values())
    store.close_sync()
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == limit
