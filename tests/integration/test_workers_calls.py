"""`nimbus serve --workers 2` on real Docker: a function's calls reach its owner's warm
container whichever URL they come by (native web functions and OpenWhisk web actions),
not only `/v1/functions/{name}/invoke` (which routes name a call: tests/unit/test_call_owner.py)."""

from __future__ import annotations

import concurrent.futures
import urllib.request

import docker
import pytest

from gateway.workers import owner_of
from tests.integration import test_workers
from tests.integration.test_workers import (
    CLIENTS,
    WORKERS,
    containers,
    owned_name,
    owners_of,
    recorded,
)
from tests.served import Served

pytestmark = pytest.mark.timeout(120)
served = test_workers.served  # the fixture: this module's own supervisor and two workers
PAGE = "def handler(e):\n    return {'statusCode': 200, 'body': 'ok'}\n"


def fetch(url: str) -> int:
    """A GET on a new connection, as a browser would make it (no key); its status."""
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() is not None
        return int(answer.status)


def test_web_calls_on_any_worker_reach_the_owners_one_warm_container(
    served: Served, docker_client: docker.DockerClient
) -> None:
    name = owned_name("page", 1)
    # One container takes every client at once: a second would be a cold start by design.
    body = {
        "handler": "main.handler",
        "code": {"source": PAGE},
        "web": True,
        "concurrency": CLIENTS,
    }
    status, answer = served.call("PUT", f"/v1/functions/{name}", body)
    assert status == 201, answer
    native = f"{served.url}/web/admin/{name}"
    status, answer = served.call("POST", f"/v1/functions/{name}/invoke", {})
    assert status == 200, answer  # warm before the web calls
    openwhisk = f"{served.url}/api/v1/web/admin/default/{name}.http"
    urls = [native, f"{native}/a/path", openwhisk] * 14
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(fetch, urls))
    assert statuses == [200] * len(urls)
    # The listing lands on either worker and sees every call already answered.
    acts = recorded(served, name, 1 + len(urls))
    assert all(a["status"] == "success" for a in acts)
    assert sum(bool(a["cold_start"]) for a in acts) == 1
    owners = owners_of(served)
    running = containers(docker_client, set(owners.values()), name)
    labels = [c["Labels"]["io.nimbus.managed"] for c in running]
    assert labels == [owners[owner_of(name, WORKERS)]], labels
