"""Usage records for the billing tests, and hypothesis strategies for records and prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import strategies as st

from gateway.billing import MONEY_QUANTUM
from gateway.pricebook import PriceBook
from invoker.metering import UsageRecord, gb_seconds

MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
APRIL_1 = datetime(2024, 4, 1, tzinfo=UTC).timestamp()
DAY = 86_400.0
QUANTUM = Fraction(MONEY_QUANTUM)


def usage_record(
    start: float,
    billed: int = 100,
    memory: int = 128,
    tenant: str = "acme",
    function: str = "f",
    node: str | None = "n1",
    status: str = "success",
    activation_id: str | None = None,
) -> UsageRecord:
    """One metered call of `billed` ms at `memory` MB, starting at `start`."""
    return UsageRecord(
        tenant=tenant,
        function=function,
        version=1,
        activation_id=activation_id or f"{tenant}-{function}-{start}-{billed}",
        node=node,
        start=start,
        end=start + billed / 1000,
        duration_ms=float(billed),
        billed_ms=billed,
        memory_mb=memory,
        gb_seconds=gb_seconds(billed, memory),
        peak_memory_mb=None,
        cpu_seconds=None,
        cold_start=False,
        init_ms=0.0,
        wait_ms=0.0,
        status=status,
    )


records_st = st.lists(
    st.builds(
        usage_record,
        start=st.floats(min_value=MARCH_1, max_value=APRIL_1 - 0.001),
        billed=st.integers(min_value=1, max_value=900_000),
        memory=st.sampled_from([128, 256, 512, 1024, 3008, 4096]),
        tenant=st.sampled_from(["acme", "globex"]),
        function=st.sampled_from(["resize", "thumb", "hello"]),
        node=st.sampled_from(["n1", "n2", None]),
        status=st.sampled_from(["success", "application_error", "timeout", "platform_error"]),
        activation_id=st.uuids().map(str),
    ),
    max_size=60,
)
prices_st = st.builds(
    PriceBook,
    price_per_million_requests=st.decimals(min_value=0, max_value=5, places=4),
    price_per_gb_second=st.decimals(min_value=0, max_value=Decimal("0.001"), places=10),
    free_tier_requests=st.integers(min_value=0, max_value=20),
    free_tier_gb_seconds=st.decimals(min_value=0, max_value=500, places=3),
)
group_by_st = st.sampled_from(["function", "day"])
