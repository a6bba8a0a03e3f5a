"""Which queued async calls to claim next: fair between tenants, not first-come-first-served.

The rule, stated once for both store dialects: a tenant's k-th ready call (oldest first)
goes at position `running + k`, where `running` is how many of the tenant's calls already
run; the claim takes the lowest positions, ties going to the older call. So a tenant with
nothing running is served before one with a thousand calls queued and sixteen running,
and tenants with ready work take turns (round robin) as slots free up. A gateway also
keeps its last free slot for a tenant with nothing running there (`claim_plan`).

The stores fetch the candidates (each tenant's oldest ready calls: `candidates_sql`, with
each dialect's placeholders) and the running counts (`running_sql`), and order them with
`fair_order`; what they then claim, under their leases, is unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True)
class Ready:
    """A call that could be claimed now (queued and due, or its lease ran out)."""

    activation_id: str
    tenant: str
    not_before: float
    created: float


def fair_order(
    ready: Iterable[Ready], running: Mapping[str, int], skip: Collection[str] = ()
) -> list[Ready]:
    """Every ready call (but `skip`'s tenants'), in the order to claim them (the rule above)."""

    def age(call: Ready) -> tuple[float, float, str]:
        return call.not_before, call.created, call.activation_id

    ranked: list[tuple[int, tuple[float, float, str], Ready]] = []
    by_tenant = sorted((c for c in ready if c.tenant not in skip), key=lambda c: (c.tenant, age(c)))
    for tenant, calls in groupby(by_tenant, key=lambda c: c.tenant):
        base = running.get(tenant, 0)
        ranked += [(base + k, age(call), call) for k, call in enumerate(calls, start=1)]
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [call for _, _, call in ranked]


def claim_plan(
    free: int, max_in_flight: int, held: Mapping[str, int]
) -> tuple[int, frozenset[str]]:
    """How many calls a gateway claims with `free` slots, and which tenants it skips.

    The last free slot is kept for a tenant with nothing running on this gateway (`held`:
    its calls running here, by tenant): however many calls one tenant queues, another
    tenant's call finds a slot at once instead of waiting for one of them to finish.
    """
    if free <= 0:
        return 0, frozenset()
    if max_in_flight < 2:
        return free, frozenset()  # one slot in all: none to keep
    if free >= 2:
        return free - 1, frozenset()
    return 1, frozenset(tenant for tenant, n in held.items() if n > 0)


def candidates_sql(now: str, per_tenant: str, *, lateral: bool, claimable: str = "1 = 1") -> str:
    """Each tenant's `per_tenant` oldest ready calls, and calls whose lease ran out, of
    the calls this claimant may take (`claimable`: a condition on a `queue` row).

    Both dialects' text, given their placeholders (`?1` / `$1::float8`) and whether the
    database joins a LATERAL subquery. The cost grows with the number of tenants with
    queued work, not with their calls: a recursive walk finds each next tenant through the
    `queue_fair` index (state, tenant, not_before, created), and each tenant's oldest calls
    come from the same index, limited.
    """
    oldest = (
        "SELECT activation_id, tenant, not_before, created FROM queue "
        f"WHERE state = 'queued' AND tenant = t.tenant AND not_before <= {now} "
        f"AND ({claimable}) ORDER BY not_before, created LIMIT {per_tenant}"
    )
    if lateral:  # PostgreSQL would run a correlated IN once per (tenant, call) pair
        per_tenant_oldest = f"SELECT q.* FROM t CROSS JOIN LATERAL ({oldest}) AS q"
    else:  # SQLite has no LATERAL, and runs a correlated IN once per tenant
        per_tenant_oldest = (
            "SELECT q.activation_id, q.tenant, q.not_before, q.created FROM t "
            f"JOIN queue q ON q.activation_id IN (SELECT activation_id FROM ({oldest}))"
        )
    return (
        "WITH RECURSIVE t(tenant) AS ("
        "SELECT min(tenant) FROM queue WHERE state = 'queued' "
        "UNION ALL SELECT (SELECT min(tenant) FROM queue "
        "WHERE state = 'queued' AND tenant > t.tenant) FROM t WHERE t.tenant IS NOT NULL) "
        f"{per_tenant_oldest} "
        "UNION ALL SELECT activation_id, tenant, not_before, created FROM queue "
        f"WHERE state = 'running' AND lease_until < {now} AND ({claimable})"
    )


def running_sql(now: str) -> str:
    """How many calls each tenant has running under a live lease (both dialects)."""
    return (
        "SELECT tenant, count(*) AS n FROM queue "
        f"WHERE state = 'running' AND lease_until >= {now} GROUP BY tenant"
    )


def candidates_per_tenant(limit: int) -> int:
    """How many of each tenant's calls to consider for a claim of `limit`.

    More than `limit`, so that calls another gateway is claiming at the same moment
    (skipped, not waited for) leave enough behind them to fill the claim.
    """
    return max(1, 2 * limit)
