"""The key gate: normalization and the keys every store refuses."""

from __future__ import annotations

import pytest

from aiostore.keys import join_key, key_to_fs_path, normalize_key, normalize_path, parent_prefix


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a", "a"),
        ("a/b/c", "a/b/c"),
        ("/a/b", "a/b"),
        ("a/b/", "a/b"),
        ("a//b///c", "a/b/c"),
        ("a\\b\\c", "a/b/c"),
        ("foo/.zarray", "foo/.zarray"),
        ("a/..b/c..", "a/..b/c.."),  # dots inside a name are just characters
        (b"a/b", "a/b"),
    ],
)
def test_normalize_key(raw: str | bytes, expected: str) -> None:
    assert normalize_key(raw) == expected


def test_normalize_key_lower() -> None:
    assert normalize_key("A/Bc", lower=True) == "a/bc"
    assert normalize_key("A/Bc") == "A/Bc"


@pytest.mark.parametrize(
    "bad",
    ["..", "../x", "a/../b", "a/..", "/..", ".", "./a", "a/./b", "a\\..\\b", "a\x00b", "", "/", "//"],
)
def test_bad_keys_are_refused_naming_the_key(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid key") as info:
        normalize_key(bad)
    assert repr(bad) in str(info.value)


def test_non_ascii_bytes_and_other_types() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        normalize_key("é".encode())
    with pytest.raises(TypeError, match="must be str"):
        normalize_key(1)
    with pytest.raises(TypeError, match="must be str"):
        normalize_path(["a"])


def test_paths_allow_the_root() -> None:
    assert normalize_path(None) == ""
    assert normalize_path("") == ""
    assert normalize_path("/") == ""
    assert normalize_path("a/b/") == "a/b"
    with pytest.raises(ValueError):
        normalize_path("a/../..")


def test_join_and_prefix() -> None:
    assert join_key("", "x") == "x"
    assert join_key("a/b", "x") == "a/b/x"
    assert parent_prefix("") == ""
    assert parent_prefix("a") == "a/"


def test_key_to_fs_path() -> None:
    assert key_to_fs_path("/srv/store", "a/b") == "/srv/store/a/b"
    assert key_to_fs_path("rel", "a/.zarray") == "rel/a/.zarray"


@pytest.mark.parametrize("raw", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/\x00"])
def test_key_to_fs_path_refuses_unnormalized_keys(raw: str) -> None:
    # A key that skipped normalize_key is still refused by this second line of defence.
    with pytest.raises(ValueError, match="leave the store root"):
        key_to_fs_path("/srv/store", raw)
