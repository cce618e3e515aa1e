"""keys.normalize_keys: the batch key gate agrees with normalize_key on every batch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiostore.keys import (
    KeyLimits,
    check_key_limits,
    is_key_path,
    normalize_key,
    normalize_keys,
    normalize_path,
)

# Characters that matter to the gate, plus ordinary ones.
KEY_TEXT = st.text(alphabet=st.sampled_from(list("ab0./\\\x00Ä")), max_size=8)
KEYS = st.lists(st.one_of(KEY_TEXT, KEY_TEXT.map(str.encode), st.integers(0, 3)), max_size=6)


def per_key(batch: list[object], lower: bool) -> list[str] | type[Exception]:
    try:
        return list(dict.fromkeys(normalize_key(k, lower=lower) for k in batch))
    except (TypeError, ValueError) as exc:
        return type(exc)


@given(KEYS, st.booleans())
def test_batch_gate_matches_the_per_key_gate(batch: list[object], lower: bool) -> None:
    expected = per_key(batch, lower)
    if isinstance(expected, list):
        assert normalize_keys(batch, lower=lower) == expected
        assert normalize_keys(iter(batch), lower=lower) == expected
    else:
        with pytest.raises(expected):
            normalize_keys(batch, lower=lower)


@pytest.mark.parametrize(
    "batch",
    [["a", ""], ["a", "b\x00c"], ["a", "b/../c"], ["./a"], ["a", "b/."], ["a", "//"]],
)
def test_fast_path_never_lets_a_bad_key_through(batch: list[str]) -> None:
    with pytest.raises(ValueError):
        normalize_keys(batch)


def test_normal_chunk_keys_pass_unchanged_and_deduplicated() -> None:
    keys = [f"arr/{i}.{j}" for i in range(30) for j in range(30)]
    assert normalize_keys(keys + keys[:10]) == keys
    assert normalize_keys(["A/B", "a/b"], lower=True) == ["a/b"]
    assert normalize_keys(["a/", "/b", "c//d", "e\\f"]) == ["a", "b", "c/d", "e/f"]


def reference_key(key: str, lower: bool) -> str:
    """The key rules written out plainly: the gate's fast paths must agree with this."""
    if "\x00" in key:
        raise ValueError("NUL")
    segments = [s for s in key.replace("\\", "/").split("/") if s]
    if any(s in (".", "..") for s in segments) or not segments:
        raise ValueError("bad segment or empty")
    normalized = "/".join(segments)
    return normalized.lower() if lower else normalized


@given(KEY_TEXT, st.booleans())
def test_single_key_gate_matches_the_rules(key: str, lower: bool) -> None:
    try:
        expected: str | type[Exception] = reference_key(key, lower)
    except ValueError:
        expected = ValueError
    if isinstance(expected, str):
        assert normalize_key(key, lower=lower) == expected
        assert normalize_path(key, lower=lower) == expected
        assert is_key_path(key) == (key == reference_key(key, False))
    else:
        with pytest.raises(ValueError, match="invalid key"):
            normalize_key(key, lower=lower)


LIMITS = st.builds(
    KeyLimits,
    max_key_bytes=st.one_of(st.none(), st.integers(1, 12)),
    max_segment_bytes=st.one_of(st.none(), st.integers(1, 6)),
    utf8=st.booleans(),
    bad_segment=st.sampled_from([None, "a+", r".*\d"]),
    bad_segment_reason=st.just("reserved"),
)


@given(st.text(alphabet=st.sampled_from(list("ab0/.Ä\ud800")), max_size=14), LIMITS)
def test_the_limits_fast_path_refuses_what_counting_refuses(key: str, limits: KeyLimits) -> None:
    try:
        normal = reference_key(key, False)
    except ValueError:
        return
    try:
        check_key_limits([normal], limits)
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            normalize_key(key, limits=limits)
        assert str(info.value) == str(exc)
        with pytest.raises(ValueError):
            normalize_path(key, limits=limits)
    else:
        assert normalize_key(key, limits=limits) == normal
        assert normalize_path(key, limits=limits) == normal


def test_keys_that_look_odd_but_are_normal_take_the_fast_path_unchanged() -> None:
    for key in ["a/.zarray", "..a/b..", "a/.../b", "zarr.json", "c/0/0", "ä/ö", "x" * 300]:
        assert normalize_key(key) is key
    assert normalize_keys(["a/.zarray", "a/0.0", "..x/y."]) == ["a/.zarray", "a/0.0", "..x/y."]
