"""Bucket names and object keys (pure), and the listing's prefix bound."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from invoker.objects.names import InvalidInput, check_bucket_name, check_key, prefix_upper_bound

# validation and the listing bound (pure)


@pytest.mark.parametrize("name", ["abc", "photos", "my-bucket.v2", "a" * 63, "1-2-3", "a.b.c"])
def test_good_bucket_names(name: str) -> None:
    assert check_bucket_name(name) == name


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "Abc", "a_b", "-ab", "ab-", ".ab", "a..b", "a.-b", "10.0.0.1", "a b"]
)
def test_bad_bucket_names(name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_bucket_name(name)
    assert exc.value.field == "bucket"


@pytest.mark.parametrize("key", ["a", "a/b/c.jpg", "..a", "a..", "a/.../b", "é" * 512, "k" * 1024])
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "/a", "..", "a/..", "../a", "a/../b", "a\x00b", "k" * 1025, "é" * 513, "\ud800"]
)
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_key(key)
    assert exc.value.field == "key"


EDGE_CHARS = st.sampled_from(["a", "z", "\x00", "\x7f", "\ud7ff", "\ue000", "\uffff", "\U0010ffff"])
KEYS = st.text(alphabet=st.one_of(EDGE_CHARS, st.characters(exclude_categories=["Cs"])), max_size=6)


@given(prefix=KEYS, key=KEYS)
@example(prefix="a\ud7ff", key="a\ud7ff")
@example(prefix="a\U0010ffff", key="a\U0010ffff\U0010ffff")
@example(prefix="\U0010ffff", key="\U0010ffff")
def test_prefix_bound_selects_exactly_the_keys_with_the_prefix(prefix: str, key: str) -> None:
    # SQLite compares keys as UTF-8 bytes: the bound must hold in that order.
    upper = prefix_upper_bound(prefix)
    in_range = key.encode() >= prefix.encode() and (upper is None or key.encode() < upper.encode())
    assert in_range == key.startswith(prefix)
