"""`nimbus serve --workers N` on real Docker: a tenant's limits hold for the whole gateway.

A tenant's concurrency cap counts its calls in flight in every worker, so a tenant whose
functions are owned by both workers still gets its cap, not twice it; and a function
bigger than its owner's share of the machine is refused when it is deployed.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from invoker.api import MEMORY_MB_RANGE
from invoker.ownership import owner_of
from invoker.providers.local import host_memory_mb
from invoker.share import POOL_FRACTION, split
from tests.conftest import OWNERS
from tests.integration.test_workers import owned_name, served, worker_owner
from tests.served import Served

__all__ = ["served"]  # the module's platform: two workers (tests/integration/test_workers.py)

CAP = 2
RELOAD_S = 5.5
SLOW = "import time\ndef handler(e):\n    time.sleep(3)\n    return e.get('i')\n"
pytestmark = pytest.mark.timeout(180)


def tenant(served: Served, name: str) -> str:
    """A new tenant; its API key."""
    status, made = served.call("POST", "/v1/tenants", {"name": name})
    assert status == 201, made
    return str(made["api_key"])


def deploy(served: Served, key: str, name: str, memory_mb: int = 128) -> tuple[int, Any]:
    body = {"handler": "main.handler", "code": {"source": SLOW}, "memory_mb": memory_mb}
    status, answer = served.call("PUT", f"/v1/functions/{name}", body, key=key)
    return status, answer


def invoke(served: Served, key: str, name: str, i: int) -> tuple[int, object]:
    return served.call("POST", f"/v1/functions/{name}/invoke", {"i": i}, key=key, timeout=90)


def test_a_tenants_cap_holds_for_both_workers_together(served: Served) -> None:
    key = tenant(served, "capped")
    status, _ = served.call("PUT", "/v1/tenants/capped/limits", {"concurrency": CAP})
    assert status == 200
    time.sleep(RELOAD_S)  # the worker that did not take the PUT reloads limits every 5 s
    names = [owned_name("slow", 0), owned_name("slow", 1)]  # one function per worker
    for name in names:
        assert deploy(served, key, name)[0] == 201
    calls = [(name, i) for i in range(3) for name in names]
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda call: invoke(served, key, *call), calls))
    statuses = Counter(status for status, _ in answers)
    # Each worker alone would let CAP calls in: 2 * CAP together.
    assert statuses == {200: CAP, 429: len(calls) - CAP}, answers
    refused = [body for status, body in answers if status == 429]
    assert all("in-flight quota" in str(body) for body in refused), refused
    # The places come back when the calls end, whichever worker ran them.
    for i, name in enumerate(names):
        assert invoke(served, key, name, i) == (200, i)


def workers_too_small_for(memory_mb: int) -> int | None:
    """The fewest workers (at most 8) whose pool shares are each under `memory_mb`."""
    budget = host_memory_mb() * POOL_FRACTION[0] // POOL_FRACTION[1]
    return next((n for n in range(2, 9) if split(budget, 0, n) < memory_mb), None)


@pytest.fixture(scope="module")
def crowded(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, int]]:
    """As many workers as it takes for the largest function to outgrow one's share."""
    count = workers_too_small_for(MEMORY_MB_RANGE[1])
    if count is None:
        pytest.skip("this machine's workers all hold the largest function")
    data: Path = tmp_path_factory.mktemp("crowded") / "data"
    OWNERS.update(worker_owner(data, index) for index in range(count))
    flags = ("--workers", str(count), "--vm-provider", "none", "--stem-cells", "0")
    platform = Served(data, *flags, "--stem-cells", "nodejs:18=0").start(timeout=90)
    try:
        yield platform, count
    finally:
        platform.stop()


def test_a_function_bigger_than_its_workers_share_is_refused_at_deploy(
    crowded: tuple[Served, int],
) -> None:
    served, count = crowded
    key = tenant(served, "big")
    largest = MEMORY_MB_RANGE[1]
    status, answer = deploy(served, key, "huge", largest)
    assert status == 400, answer
    error = answer["error"]
    budget = host_memory_mb() * POOL_FRACTION[0] // POOL_FRACTION[1]
    share = split(budget, owner_of("huge", count), count)
    assert error["field"] == "memory_mb"
    assert f"memory_mb {largest} " in error["message"] and f"({share} MB)" in error["message"]
    assert served.call("GET", "/v1/functions/huge", key=key)[0] == 404  # nothing stored
    assert deploy(served, key, "huge", 128)[0] == 201
