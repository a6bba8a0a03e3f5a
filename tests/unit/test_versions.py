"""Which version a call runs: qualifiers, alias names, splits and the weighted choice."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from invoker.versions import (
    MAX_SPLIT_VERSIONS,
    Qualifier,
    SplitCounter,
    VersionError,
    check_alias_name,
    choose,
    parse_qualifier,
    pick_at,
    point_of,
    qualifier_of,
    split_from_body,
    split_json,
    split_target,
)


def test_a_target_splits_at_its_first_colon() -> None:
    assert split_target("resize") == ("resize", None)
    assert split_target("resize:3") == ("resize", "3")
    assert split_target("resize:prod") == ("resize", "prod")
    assert split_target("resize:") == ("resize", "")


def test_a_qualifier_is_a_version_an_alias_or_the_latest() -> None:
    assert parse_qualifier("3") == Qualifier(version=3)
    assert parse_qualifier("prod") == Qualifier(alias="prod")
    assert parse_qualifier("latest").latest and parse_qualifier("LATEST").latest
    assert qualifier_of(None, None, None).latest
    assert qualifier_of(None, "7", None) == Qualifier(version=7)
    assert qualifier_of(None, None, "canary") == Qualifier(alias="canary")
    for bad in ("0", "", "a b", "x" * 65):
        with pytest.raises(VersionError):
            parse_qualifier(bad)


def test_only_one_spelling_of_a_qualifier_at_once() -> None:
    with pytest.raises(VersionError) as both:
        qualifier_of("3", "4", None)
    assert both.value.field == "version"
    with pytest.raises(VersionError) as alias:
        qualifier_of(None, "4", "prod")
    assert alias.value.field == "alias"
    with pytest.raises(VersionError):
        qualifier_of(None, "three", None)


@pytest.mark.parametrize("name", ["3", "007", "latest", "Latest", "", "a.b", "x" * 65, "a:b"])
def test_alias_names_never_read_as_versions(name: str) -> None:
    with pytest.raises(VersionError) as refused:
        check_alias_name(name)
    assert refused.value.field == "alias"


def test_alias_names_may_hold_digits() -> None:
    for name in ("prod", "v3", "3a", "blue_green-2", "x" * 64):
        assert check_alias_name(name) == name


def test_an_alias_body_names_one_version_or_a_split() -> None:
    assert split_from_body({"version": 3}) == ((3, 1.0),)
    split = split_from_body({"versions": {"4": 0.1, "3": 0.9}})
    assert split == ((3, 0.9), (4, 0.1))
    assert split_json(split) == {"version": None, "versions": {"3": 0.9, "4": 0.1}}
    assert split_json(((3, 1.0),)) == {"version": 3, "versions": {"3": 1.0}}
    thirds = {"1": 0.3333333333, "2": 0.3333333333, "3": 0.3333333334}
    assert len(split_from_body({"versions": thirds})) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "version"),
        ({"version": 3, "versions": {"3": 1}}, "version"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"version": "3"}, "version"),
        ({"versions": {}}, "versions"),
        ({"versions": [3, 4]}, "versions"),
        ({"versions": {"3": 0.9, "4": 0.2}}, "versions"),
        ({"versions": {"3": 0.5, "4": 0.4}}, "versions"),
        ({"versions": {"3": 1.0, "4": 0.0}}, "versions"),
        ({"versions": {"3": -0.5, "4": 1.5}}, "versions"),
        ({"versions": {"x": 1.0}}, "versions"),
        ({"versions": {str(v): 0.2 for v in range(1, 6)}}, "versions"),
        ({"version": 3, "weight": 1}, "weight"),
    ],
)
def test_bad_alias_bodies_name_their_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(VersionError) as refused:
        split_from_body(body)
    assert refused.value.field == field


def test_at_most_max_split_versions() -> None:
    even = {str(v): 1 / MAX_SPLIT_VERSIONS for v in range(1, MAX_SPLIT_VERSIONS + 1)}
    assert len(split_from_body({"versions": even})) == MAX_SPLIT_VERSIONS


def test_the_counter_deals_a_split_out_exactly() -> None:
    counter = SplitCounter()
    split = ((3, 0.9), (4, 0.1))
    picks = [counter.next("prod", split) for _ in range(200)]
    assert Counter(picks) == {3: 180, 4: 20}
    # Within one call of the exact share after every call, not only at the end.
    for n in range(1, 201):
        assert abs(picks[:n].count(4) - n * 0.1) < 1


def test_the_counter_is_exact_for_uneven_splits_too() -> None:
    counter = SplitCounter()
    split = ((1, 0.5), (2, 0.3), (5, 0.2))
    assert Counter(counter.next("ab", split) for _ in range(1000)) == {1: 500, 2: 300, 5: 200}
    canary = ((7, 0.99), (8, 0.01))
    assert Counter(counter.next("canary", canary) for _ in range(300))[8] == 3


def test_each_alias_has_its_own_count_and_a_new_split_starts_over() -> None:
    counter = SplitCounter()
    half = ((1, 0.5), (2, 0.5))
    assert [counter.next("a", half) for _ in range(2)] == [1, 2]
    assert counter.next("b", half) == 1  # b's first call, whatever a did
    assert counter.next("a", ((1, 0.5), (3, 0.5))) == 1  # moved: a starts over
    assert counter.next("solo", ((4, 1.0),)) == 4


def test_the_counter_forgets_the_alias_used_longest_ago() -> None:
    counter = SplitCounter(capacity=2)
    half = ((1, 0.5), (2, 0.5))
    counter.next("a", half)
    counter.next("b", half)
    counter.next("c", half)  # a is forgotten: it starts over
    assert counter.next("a", half) == 1
    assert counter.next("c", half) == 2


def test_a_request_id_always_picks_the_same_version() -> None:
    counter = SplitCounter()
    split = ((3, 0.9), (4, 0.1))
    first = choose(counter, "prod", split, "order-1234")
    assert all(choose(counter, "prod", split, "order-1234") == first for _ in range(20))
    assert 0 <= point_of("order-1234") < 1


def test_request_ids_spread_by_the_weights() -> None:
    split = ((3, 0.9), (4, 0.1))
    ids = [str(uuid.UUID(int=i)) for i in range(4000)]  # fixed: the same every run
    picks = Counter(pick_at(split, point_of(i)) for i in ids)
    assert 0.08 < picks[4] / len(ids) < 0.12


def test_a_point_falls_in_its_band_of_the_cumulative_weights() -> None:
    split = ((1, 0.25), (2, 0.5), (3, 0.25))
    assert [pick_at(split, p) for p in (0.0, 0.2499, 0.25, 0.7499, 0.75, 0.9999)] == [
        1,
        1,
        2,
        2,
        3,
        3,
    ]
