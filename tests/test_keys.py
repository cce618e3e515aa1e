"""The key gate: normalization and the keys every store refuses."""

from __future__ import annotations

import pytest

from aiostore.keys import (
    join_key,
    key_to_fs_path,
    normalize_key,
    normalize_keys,
    normalize_path,
    parent_prefix,
)


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
    ],
)
def test_normalize_key(raw: str, expected: str) -> None:
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


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (5, "key must be str, not int: 5"),
        (b"a/b", "key must be str, not bytes: b'a/b'"),
        (None, "key must be str, not NoneType: None"),
        (["a"], "key must be str, not list: ['a']"),
    ],
)
def test_every_non_str_key_gets_one_message_form(bad: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        normalize_key(bad)
    assert str(info.value) == message
    with pytest.raises(TypeError, match="key must be str"):
        normalize_keys(["a", bad])


def test_paths_are_str_or_none() -> None:
    assert normalize_path(None) == ""
    with pytest.raises(TypeError, match=r"^path must be str, not bytes: b'a'$"):
        normalize_path(b"a")


@pytest.mark.parametrize("collection", ["ab", b"ab", bytearray(b"ab")])
def test_a_string_is_not_a_collection_of_keys(collection: object) -> None:
    with pytest.raises(TypeError, match="must be a collection of str keys"):
        normalize_keys(collection)  # type: ignore[arg-type]


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
