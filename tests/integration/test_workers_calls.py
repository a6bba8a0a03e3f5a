"""`nimbus serve --workers 2` on real Docker: a function's calls reach its owner's warm
container whichever URL they come by (native web functions and OpenWhisk web actions),
not only `/v1/functions/{name}/invoke` (which routes name a call: tests/unit/test_call_owner.py)."""

from __future__ import annotations

import concurrent.futures
import urllib.request
from collections.abc import Iterator

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


SIZE = "def handler(e):\n    return {'statusCode': 200, 'body': str(len(e['__ow_body']))}\n"


def post(url: str, body: bytes, *, chunked: bool) -> str:
    """A POST of `body` on a new connection (sent chunked: no Content-Length); the answer."""
    data: bytes | Iterator[bytes] = body
    if chunked:
        data = iter([body[at : at + 65536] for at in range(0, len(body), 65536)])
    headers = {"Content-Type": "text/plain"}
    sent = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(sent, timeout=60) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def test_large_bodies_reach_the_owner_whole_from_any_worker(served: Served) -> None:
    name = owned_name("sizer", 0)
    body = {"handler": "main.handler", "code": {"source": SIZE}, "web": True}
    status, answer = served.call("PUT", f"/v1/functions/{name}", body)
    assert status == 201, answer
    text = b"x" * (2 * 2**20)
    url = f"{served.url}/web/admin/{name}"
    # New connections land on either worker: about half are handed over to the owner.
    cases = [False, True] * 6
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(lambda chunked: post(url, text, chunked=chunked), cases))
    assert sizes == [str(len(text))] * len(cases)
