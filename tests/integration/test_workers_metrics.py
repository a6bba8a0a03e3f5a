"""`nimbus serve --workers 2` on real Docker: /metrics and tenants' rates count every worker.

Calls go over new connections, so the kernel (SO_REUSEPORT) spreads them, and the scrapes,
over both workers; the functions are owned one by each worker, so both run calls.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import socket
import time
from collections.abc import Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.workers import handover_socket
from invoker.assemble import run_dir_for
from tests.conftest import ADMIN_KEY
from tests.integration import test_workers
from tests.integration.test_workers import CLIENTS, WORKERS, deploy, invoke, owned_name
from tests.served import Served

pytestmark = pytest.mark.timeout(120)
QUOTAS_REFRESH_S = 5.0  # how often a worker reloads tenants' limits (gateway/quotas.py)
served = test_workers.served  # the fixture: this module's own supervisor and two workers


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket: a worker's own handover socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def scrape(served: Served, worker: int | None = None) -> str:
    """GET /metrics on the port (any worker answers), or on one worker's handover socket."""
    if worker is None:  # a new connection each time
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    else:
        connection = _UnixConnection(str(handover_socket(run_dir_for(served.data_dir), worker)))
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        answer = connection.getresponse()
        assert answer.status == 200
        return answer.read().decode()
    finally:
        connection.close()


def samples(text: str, name: str) -> Iterable[tuple[dict[str, str], float]]:
    """Every sample called `name` in a text exposition: (labels, value)."""
    for family in text_string_to_metric_families(text):
        yield from ((s.labels, s.value) for s in family.samples if s.name == name)


def invocations(text: str, functions: set[str]) -> float:
    """The invocation counter summed over these functions."""
    found = samples(text, "nimbus_invocations_total")
    return sum(value for labels, value in found if labels["function"] in functions)


def test_metrics_count_the_calls_of_every_worker_whichever_answers(served: Served) -> None:
    names = [owned_name("metered-a", 0), owned_name("metered-b", 1)]
    for name in names:
        deploy(served, name, concurrency=CLIENTS)
    calls = [(names[k % len(names)], k) for k in range(60)]
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda call: invoke(served, *call), calls))
    # Each worker counted only the calls it ran: neither has them all.
    own = [invocations(scrape(served, worker), set(names)) for worker in range(WORKERS)]
    assert sum(own) == len(calls) and all(0 < n < len(calls) for n in own), own
    for _ in range(8):  # new connections: the scrape lands on either worker
        text = scrape(served)
        assert invocations(text, set(names)) == len(calls)
        counts = samples(text, "nimbus_invocation_duration_seconds_count")
        assert sum(v for labels, v in counts if labels["function"] in names) == len(calls)
        # Gauges stay per worker: each worker's containers under its own label.
        states = {labels["worker"] for labels, _ in samples(text, "nimbus_containers")}
        assert states == {str(worker) for worker in range(WORKERS)}


def test_a_tenant_rate_holds_across_workers(served: Served) -> None:
    rate, burst = 4.0, 4
    status, tenant = served.call("POST", "/v1/tenants", {"name": "ratelimited"})
    assert status == 201, tenant
    key = tenant["api_key"]
    limits = {"rate_per_s": rate, "burst": burst}
    status, answer = served.call("PUT", "/v1/tenants/ratelimited/limits", limits)
    assert status == 200, answer
    applied = time.monotonic()
    names = [owned_name("paced-a", 0), owned_name("paced-b", 1)]  # checked in each worker
    for name in names:
        body = {"handler": "main.handler", "code": {"source": "def handler(e):\n  return 1\n"}}
        status, answer = served.call("PUT", f"/v1/functions/{name}", body, key=key)
        assert status == 201, answer
        status, answer = served.call("POST", f"/v1/functions/{name}/invoke", {}, key=key)
        assert status == 200, answer  # warm, so the paced calls below are quick
    # The other worker takes the new limits within its 5 s reload; the bucket refills.
    time.sleep(max(0.0, applied + QUOTAS_REFRESH_S + 0.5 - time.monotonic(), burst / rate))
    seconds = 2.5
    start = time.monotonic()

    def hammer(worker: int) -> list[int]:
        statuses: list[int] = []
        while time.monotonic() - start < seconds:
            name = names[len(statuses) % len(names)]
            status, answer = served.call("POST", f"/v1/functions/{name}/invoke", {}, key=key)
            assert status in (200, 429), answer
            if status == 429:
                assert answer["error"]["limit"] == "rate"
            statuses.append(status)
        return statuses

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = [s for part in pool.map(hammer, range(4)) for s in part]
    elapsed = time.monotonic() - start
    admitted = answers.count(200)
    # One bucket for both workers: the burst and the rate once (a bucket per worker would
    # have let through about twice as many).
    assert admitted <= burst + rate * elapsed + 1, (admitted, elapsed)
    assert admitted >= burst + rate * (elapsed - 1), (admitted, elapsed)
    assert answers.count(429) > admitted
