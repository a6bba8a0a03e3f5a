"""The one strict JSON parser and the per-route body caps (gateway/requests.py), and bearer
parsing: pure functions, no server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth import bearer_token
from gateway.config import MAX_BODY_BYTES, MAX_EVENT_BYTES, MAX_OBJECT_BYTES, Config
from gateway.errors import ApiError
from gateway.requests import (
    MAX_JSON_DEPTH,
    SMALL_BODY_BYTES,
    body_limit_for,
    check_depth,
    parse_json,
)


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as exc:
        parse_json(raw)
    assert exc.value.status == 400 and exc.value.field == "body"
    return exc.value


def test_nesting_up_to_the_limit_is_fine_and_deeper_is_refused() -> None:
    ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(ok) is not None
    deeper = b'{"a":' * MAX_JSON_DEPTH + b"[]" + b"}" * MAX_JSON_DEPTH
    assert "deeper than" in refused(deeper).message


def test_absurd_nesting_is_refused_without_recursion() -> None:
    # A recursive check would hit RecursionError (or the C stack) long before these depths.
    for raw in (b"[" * 1_000_000, b'{"a":' * 200_000, b"[" * 10_000 + b"]" * 10_000):
        assert "deeper than" in refused(raw).message


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ax,:'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\k'), inner, max_size=4)
    ),
    max_leaves=40,
)


@given(JSON, st.integers(min_value=0, max_value=6))
def test_the_depth_scan_agrees_with_the_real_depth(value: Any, limit: int) -> None:
    text = json.dumps(value)
    if _depth(value) <= limit:
        check_depth(text, limit)
    else:
        with pytest.raises(ApiError):
            check_depth(text, limit)


ADVERSARIAL: list[Callable[[int], str]] = [
    lambda n: ("[" * 64 + "]" * 64) * n,  # depth 64, many times: accepted
    lambda n: '"' + '\\"[' * (25 * n),  # an unterminated string full of escaped quotes
    lambda n: '["\\"' * (25 * n),
    lambda n: "[" + ",".join(["[]"] * (25 * n)) + "]",
]


def _scan_s(text: str) -> float:
    """The best of three scans (a busy machine only ever adds time)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        try:
            check_depth(text)
        except ApiError:
            pass
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("make", ADVERSARIAL)
def test_adversarial_bodies_are_scanned_in_linear_time(make: Callable[[int], str]) -> None:
    # Linear: 4x the input takes about 4x the time; a quadratic scan would take 16x.
    # A ratio within one run, not a wall-clock bound, so a loaded machine cannot fail it.
    small, large = _scan_s(make(10_000)), _scan_s(make(40_000))
    assert large < 9 * small + 0.02, (small, large)


def test_a_deep_body_among_shallow_ones_is_found() -> None:
    with pytest.raises(ApiError):
        check_depth("[" + ("[" * 64 + "]" * 64) * 1000 + "]")


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"s": "' + "[{" * 500 + '\\"[[[", "t": ["]]]"]}'
    check_depth(text)  # depth 2
    assert parse_json(text.encode())["t"] == ["]]]"]


@pytest.mark.parametrize(
    "raw",
    [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b"[1e999999]", b'{"a": -1e400}'],
)
def test_non_finite_numbers_are_refused(raw: bytes) -> None:
    refused(raw)


def test_large_finite_numbers_are_fine() -> None:
    assert parse_json(b"[1e308, -1.5e-300, 12345678901234567890]") == [
        1e308,
        -1.5e-300,
        12345678901234567890,
    ]
    refused(b"[" + b"9" * 5000 + b"]")  # past Python's int-parsing limit: still a 400


def test_text_must_be_utf8_without_lone_surrogates() -> None:
    assert "UTF-8" in refused(b'{"a": "\xff"}').message
    refused('{"a": "é"}'.encode("latin-1"))
    refused(b'{"a": "\\ud800"}')
    refused(b'{"\\udc00": 1}')
    assert parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}  # a pair is fine
    assert parse_json('{"a": "é"}'.encode()) == {"a": "é"}


def test_malformed_json_and_empty_bodies_are_400() -> None:
    for raw in (b"{not json", b"", b"\xef\xbb\xbf{}", b"[1,]"):
        refused(raw)


def test_body_caps_by_route() -> None:
    config = Config(data_dir=__import__("pathlib").Path("/nonexistent"))
    assert body_limit_for("POST", "/v1/functions/{name}/invoke", config) == MAX_EVENT_BYTES
    assert body_limit_for("POST", "/v1/triggers/{name}/fire", config) == MAX_EVENT_BYTES
    assert body_limit_for("POST", "/v1/hooks/{token}", config) == MAX_EVENT_BYTES
    assert body_limit_for("PUT", "/v1/functions/{name}", config) == MAX_BODY_BYTES
    assert body_limit_for("PUT", "/v1/buckets/{bucket}/objects/{key}", config) == MAX_OBJECT_BYTES
    assert body_limit_for("POST", "/v1/tenants", config) == SMALL_BODY_BYTES == 2**20
    assert body_limit_for("GET", "/v1/functions/{name}", config) == SMALL_BODY_BYTES


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nmb_é",
        "Bearer nmb_\udcc3\udca9",  # how aiohttp hands over undecodable header bytes
        "Bearer nmb_\x00x",
        "Bearer a b",
        "Bearer " + "x" * 5000,
        "Bearer ",
        "Basic abc",
    ],
)
def test_malformed_bearer_tokens_are_no_key(header: str) -> None:
    assert bearer_token(header) is None


def test_wellformed_bearer_tokens_pass() -> None:
    assert bearer_token("Bearer nmb_abc-_~+/=") == "nmb_abc-_~+/="
    assert bearer_token("bearer  nmb_act_eyJ.abc ") == "nmb_act_eyJ.abc"
