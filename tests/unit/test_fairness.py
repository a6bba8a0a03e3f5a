"""The fair claim order between tenants, and the token bucket: pure, no store, no clock."""

from __future__ import annotations

import pytest

from gateway.errors import ApiError
from gateway.ratelimit import RateLimiter, TokenBucket
from gateway.routes.limits import parse_limits
from invoker.fairness import Ready, claim_plan, fair_order
from invoker.tenant_limits import LimitDefaults, TenantLimits, resolve

T0 = 1_750_000_000.0


def flood(tenant: str, n: int, start: float = T0) -> list[Ready]:
    return [
        Ready(f"{tenant}{i:04d}", tenant, start + i * 0.001, start + i * 0.001) for i in range(n)
    ]


def ids(calls: list[Ready]) -> list[str]:
    return [c.activation_id for c in calls]


def test_a_late_tenant_goes_before_an_early_flood() -> None:
    late = Ready("b0", "bob", T0 + 5, T0 + 5)
    order = fair_order([*flood("ann", 1000), late], {})
    # FIFO would put bob's call 1001st; fair order puts it second (after ann's oldest).
    assert ids(order)[:3] == ["ann0000", "b0", "ann0001"]
    assert len(order) == 1001


def test_tenants_take_turns_oldest_first_within_each() -> None:
    order = fair_order([*flood("ann", 3), *flood("bob", 3, T0 + 1), *flood("cy", 1, T0 + 2)], {})
    assert ids(order) == [
        "ann0000",
        "bob0000",
        "cy0000",
        "ann0001",
        "bob0001",
        "ann0002",
        "bob0002",
    ]


def test_calls_already_running_count_against_their_tenant() -> None:
    # ann has 16 running (every slot of a gateway): bob's one call is next, though younger.
    order = fair_order([*flood("ann", 50), Ready("b0", "bob", T0 + 9, T0 + 9)], {"ann": 16})
    assert ids(order)[0] == "b0"
    # Claimed one at a time, as slots free up, bob's calls never wait behind ann's backlog.
    order = fair_order([*flood("ann", 50), *flood("bob", 2, T0 + 9)], {"ann": 16, "bob": 1})
    assert ids(order)[:2] == ["bob0000", "bob0001"]


def test_one_tenant_alone_is_served_oldest_first() -> None:
    calls = [Ready(aid, "ann", nb, T0) for aid, nb in (("c", T0 + 3), ("a", T0 + 1), ("b", T0 + 2))]
    assert ids(fair_order(calls, {"ann": 4})) == ["a", "b", "c"]
    assert fair_order([], {"ann": 1}) == []


def test_a_token_bucket_takes_a_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(rate_per_s=2.0, burst=3, now=T0)
    assert [bucket.take(T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(T0) == pytest.approx(0.5)  # one token in half a second
    assert bucket.take(T0 + 0.25) == pytest.approx(0.25)
    assert bucket.take(T0 + 0.5) == 0.0
    assert bucket.take(T0 + 100) == 0.0  # refills to the burst, never beyond
    assert bucket.tokens == pytest.approx(2.0)
    assert bucket.take(T0 + 50) == 0.0  # a clock that stepped back refills nothing
    assert bucket.tokens == pytest.approx(1.0)


def test_the_rate_limiter_keeps_tenants_apart_and_applies_new_limits_at_once() -> None:
    rates = RateLimiter()
    assert [rates.take("ann", 1.0, 2, T0) for _ in range(3)][-1] == pytest.approx(1.0)
    assert rates.take("bob", 1.0, 2, T0) == 0.0  # ann's bursts cost bob nothing
    assert all(rates.take("cy", None, None, T0) == 0.0 for _ in range(1000))  # unlimited
    # A raised burst does not hand out tokens the tenant never saved up...
    assert rates.take("ann", 1.0, 10, T0) > 0
    # ...but they accrue from now on, up to the new burst.
    assert [rates.take("ann", 1.0, 10, T0 + 20) for _ in range(11)].count(0.0) == 10


def test_limits_resolve_against_the_platform_defaults() -> None:
    defaults = LimitDefaults(concurrency=100, rate_per_s=None, backlog=1000)
    got = resolve(None, defaults)
    assert (got.concurrency, got.rate_per_s, got.burst, got.backlog) == (100, None, None, 1000)
    got = resolve(TenantLimits(rate_per_s=2.5, backlog=5), defaults)
    assert (got.concurrency, got.rate_per_s, got.burst, got.backlog) == (100, 2.5, 3, 5)
    got = resolve(TenantLimits(burst=7), LimitDefaults(rate_per_s=10.0))
    assert (got.rate_per_s, got.burst) == (10.0, 7)
    assert resolve(TenantLimits(burst=7), defaults).burst is None  # no rate: nothing to burst


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"backlog": "10"}, "backlog"),
        ({"backlog": -1}, "backlog"),
        ({"burst": 10**7}, "burst"),
        ({"rate_per_s": 0}, "rate_per_s"),
        ({"rate_per_s": float("nan")}, "rate_per_s"),
        ({"rate_per_s": float("inf")}, "rate_per_s"),
        ({"rate_per_s": [1]}, "rate_per_s"),
        ({"backlog": 5, "admin": True}, "admin"),
    ],
)
def test_bad_limits_name_their_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_limits(body)
    assert caught.value.status == 400 and caught.value.field == field


def test_good_limits_parse_and_null_means_the_default() -> None:
    assert parse_limits({}) == TenantLimits()
    got = parse_limits({"concurrency": 4, "rate_per_s": 2, "burst": None, "backlog": 10})
    assert got == TenantLimits(concurrency=4, rate_per_s=2.0, burst=None, backlog=10)
    assert isinstance(got.rate_per_s, float)


def test_a_gateway_keeps_its_last_free_slot_for_a_tenant_with_nothing_running_there() -> None:
    assert claim_plan(16, 16, {}) == (15, frozenset())
    assert claim_plan(2, 16, {"ann": 14}) == (1, frozenset())
    assert claim_plan(1, 16, {"ann": 14, "bob": 1, "cy": 0}) == (1, {"ann", "bob"})
    assert claim_plan(0, 16, {"ann": 16}) == (0, frozenset())
    assert claim_plan(1, 1, {"ann": 0}) == (1, frozenset())  # one slot in all: nothing kept


def test_skipped_tenants_get_nothing() -> None:
    order = fair_order([*flood("ann", 3), Ready("b0", "bob", T0 + 9, T0 + 9)], {}, {"ann"})
    assert ids(order) == ["b0"]
