"""Nothing a loaded gateway answered is lost: `nimbus serve` on real Docker, 16 clients at
once, and every answered call has its activation and its usage row, is billed once and
counted once by /metrics, before and after a restart. Records of synchronous calls are
committed behind their answers, in batches, by the event loop or the store's thread
(invoker/store/sqlite/loop_writes.py); with two workers both write the same file."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY
from tests.integration.test_workers import owned_name, running
from tests.integration.test_workers_metrics import samples, scrape
from tests.served import Served, get

pytestmark = pytest.mark.timeout(180)
CLIENTS = 16
CALLS_PER_CLIENT = 40
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
ECHO = "def handler(event):\n    return {'n': event['n']}\n"


def calls_of(served: Served, names: list[str], client: int) -> list[str]:
    """One client's calls over one kept-alive connection: the activation ids answered."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    ids = []
    try:
        for k in range(CALLS_PER_CLIENT):
            n = client * CALLS_PER_CLIENT + k
            body = json.dumps({"n": n})
            connection.request("POST", f"/v1/functions/{names[n % 2]}/invoke", body, HEADERS)
            answer = connection.getresponse()
            assert (answer.status, json.loads(answer.read())) == (200, {"n": n})
            ids.append(answer.getheader("X-Nimbus-Activation-Id", ""))
    finally:
        connection.close()
    return ids


def stored(data_dir: Path) -> tuple[list[str], list[str]]:
    """Activation ids and usage rows' activation ids in the file, as the CLI would read."""
    with contextlib.closing(
        sqlite3.connect(f"file:{data_dir / 'nimbus.db'}?mode=ro", uri=True)
    ) as db:
        acts = [r[0] for r in db.execute("SELECT id FROM activations")]
        usage = [r[0] for r in db.execute("SELECT activation_id FROM usage")]
    return sorted(acts), sorted(usage)


def counted_by_metrics(served: Served, names: list[str]) -> int:
    """nimbus_invocations_total over the functions, as one scrape reports it."""
    found = samples(scrape(served), "nimbus_invocations_total")
    return int(sum(value for labels, value in found if labels.get("function") in names))


@pytest.mark.parametrize("workers", [1, 2])
def test_every_call_a_loaded_gateway_answered_is_recorded_billed_and_counted_once(
    runtime_images: dict[str, str], tmp_path: Path, workers: int
) -> None:
    names = [owned_name("tally", 0), owned_name("tally", 1)]  # with two workers, one each
    with running(tmp_path / "data", workers) as served:
        for name in names:
            spec = {"handler": "main.handler", "code": {"source": ECHO}, "concurrency": CLIENTS}
            status, body = served.call("PUT", f"/v1/functions/{name}", spec)
            assert status in (200, 201), body
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            each = pool.map(lambda client: calls_of(served, names, client), range(CLIENTS))
            answered = sorted(aid for ids in each for aid in ids)
        assert len(set(answered)) == CLIENTS * CALLS_PER_CLIENT
        bill = get(f"{served.url}/v1/billing?group_by=function")  # a read: queues commit
        billed = sum(line["invocations"] for line in bill["lines"] if line["key"] in names)
        assert billed == len(answered)
        assert stored(served.data_dir) == (answered, answered)  # each once, none more
        assert counted_by_metrics(served, names) == len(answered)
        served.stop()  # a clean stop commits what is queued: nothing is lost across it
        assert stored(served.data_dir) == (answered, answered)
