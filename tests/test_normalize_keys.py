"""keys.normalize_keys: the batch key gate agrees with normalize_key on every batch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiostore.keys import normalize_key, normalize_keys

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
