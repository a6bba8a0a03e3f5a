"""The Node.js runtime image on the real Docker engine, started by the real Docker driver.

Each test starts a `nodejs:18` container with `DockerDriver.create` (the production
lock-down: read-only root, no network, uid 10001, no capabilities) and speaks /init and
/run to its proxy through `RuntimeClient`, as the invoker does.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from aiohttp import web

from invoker.drivers.base import MANAGED_LABEL, ContainerHandle, ContainerSpec
from invoker.drivers.docker import DockerDriver
from invoker.images import alias_tag, image_tag
from invoker.runtime_client import RunResponse, RuntimeClient, RunTimeout

pytestmark = pytest.mark.docker

RUNTIME = "nodejs:18"
OWNER = "nodejs-runtime-test"


class Node:
    """One started Node.js container and the client that speaks to it."""

    def __init__(self, driver: DockerDriver, client: RuntimeClient, handle: ContainerHandle):
        self.driver = driver
        self.client = client
        self.handle = handle

    async def init(
        self, code: str | bytes, main: str, *, env: dict[str, str] | None = None
    ) -> RunResponse:
        return await self.client.init(
            self.handle.address,
            code=code,
            binary=isinstance(code, bytes),
            main=main,
            env=env or {},
            timeout=10,
        )

    async def run(self, value: Any = None, *, timeout: float = 10, **extra: Any) -> RunResponse:
        payload = {
            "value": {} if value is None else value,
            "activation_id": uuid.uuid4().hex,
            "deadline": int((time.time() + timeout) * 1000),
            "function_name": "fn",
            "function_version": "3",
            "memory_limit_mb": 128,
            **extra,
        }
        return await self.client.run(self.handle.address, payload, timeout)


StartNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_node(runtime_images: dict[str, str]) -> AsyncIterator[StartNode]:
    """Starts Node.js containers with the Docker driver; all are removed afterwards."""
    assert RUNTIME in runtime_images, runtime_images
    # A short directory: unix socket paths are limited to 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix="nbjs-"))
    driver = DockerDriver(run_dir, runtime_images.__getitem__)
    client = RuntimeClient()

    async def start(api_socket_dir: str | None = None) -> Node:
        spec = ContainerSpec(
            name=f"nimbus-nodejs-test-{uuid.uuid4().hex[:10]}",
            runtime=RUNTIME,
            memory_mb=128,
            labels={MANAGED_LABEL: OWNER},
            api_socket_dir=api_socket_dir,
        )
        handle = await driver.create(spec)
        client.trust(handle.address, handle.token)
        return Node(driver, client, handle)

    yield start
    await client.close()
    await driver.close()
    shutil.rmtree(run_dir, ignore_errors=True)


def test_image_is_debian_node_18_as_uid_10001(
    docker_client: docker.DockerClient, runtime_images: dict[str, str]
) -> None:
    tag = runtime_images[RUNTIME]
    assert tag == image_tag(RUNTIME)
    image = docker_client.images.get(tag)
    assert alias_tag(RUNTIME) in image.tags
    assert image.labels["io.nimbus.runtime"] == RUNTIME
    assert image.attrs["Config"]["User"] == "10001"
    version = docker_client.containers.run(
        tag, ["--version"], entrypoint="node", remove=True, network_mode="none"
    )
    assert version.decode().strip().startswith("v18."), version
    print(f"\n{RUNTIME} runs node {version.decode().strip()}")


PROBE = """
const fs = require('fs');
const net = require('net');

function main(params) {
  let rootWritable = true;
  try { fs.writeFileSync('/opt/nimbus/written', 'x'); } catch (e) { rootWritable = false; }
  fs.writeFileSync('/tmp/scratch', 'ok');
  console.log('probe', JSON.stringify(params));
  console.error('to stderr');
  return new Promise((resolve) => {
    const s = net.connect({ host: '10.255.255.1', port: 80 });
    const done = (network) => { s.destroy(); resolve({
      uid: process.getuid(), euid: process.geteuid(), rootWritable, network,
      echo: params, greeting: process.env.GREETING, node: process.version,
    }); };
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}
module.exports.main = main;
"""


async def test_openwhisk_main_runs_locked_down_as_non_root(start_node: StartNode) -> None:
    node = await start_node()
    init = await node.init(PROBE, "probe.main", env={"GREETING": "hi"})
    assert init.status == 200, init.body
    resp = await node.run({"q": [1, "two"]})
    assert resp.status == 200, resp.body
    result = resp.body["result"]
    assert result["uid"] == 10001 and result["euid"] == 10001
    assert result["rootWritable"] is False
    assert result["network"] is False
    assert result["echo"] == {"q": [1, "two"]}
    assert result["greeting"] == "hi"
    assert result["node"].startswith("v18.")
    assert resp.body["logs"] == ['probe {"q":[1,"two"]}', "to stderr"]


LAMBDA = """
exports.handler = async (event, context) => {
  await new Promise((r) => setTimeout(r, 5));
  return {
    id: context.awsRequestId,
    name: context.functionName,
    version: context.functionVersion,
    memory: context.memoryLimitInMB,
    remaining: context.getRemainingTimeInMillis(),
    sum: event.a + event.b,
  };
};
"""


async def test_lambda_async_handler_gets_event_and_context(start_node: StartNode) -> None:
    node = await start_node()
    assert (await node.init(LAMBDA, "index.handler")).status == 200
    activation = uuid.uuid4().hex
    resp = await node.run({"a": 2, "b": 3}, activation_id=activation)
    assert resp.status == 200, resp.body
    result = resp.body["result"]
    assert result["sum"] == 5
    assert (result["id"], result["name"], result["version"]) == (activation, "fn", "3")
    assert result["memory"] == 128
    assert 0 < result["remaining"] <= 10_000


ERRORS = """
const cases = {
  reject: async (params) => {
    console.log('before the rejection');
    await null;
    throw new RangeError(`value ${params.n} out of range`);
  },
  plain: () => Promise.reject('plain reason'),
  thrown: (params) => { console.log('about to throw'); return params.missing.field; },
  exit: () => { process.exit(3); },
  timer: () => {
    setTimeout(() => { throw new Error('thrown from a timer'); }, 5);
    return new Promise(() => {});
  },
  ok: () => ({ still: 'alive' }),
};
exports.main = (params) => cases[params.kind](params);
"""


async def test_rejections_and_throws_are_the_functions_errors(start_node: StartNode) -> None:
    node = await start_node()
    assert (await node.init(ERRORS, "main.main")).status == 200
    resp = await node.run({"kind": "reject", "n": 7})
    assert resp.status == 502
    assert resp.body["error"] == "RangeError: value 7 out of range"
    assert resp.body["logs"] == ["before the rejection"]
    assert "RangeError: value 7 out of range" in resp.body["traceback"]
    resp = await node.run({"kind": "plain"})
    assert (resp.status, resp.body["error"]) == (502, "Error: plain reason")
    resp = await node.run({"kind": "thrown"})
    assert resp.status == 502
    assert resp.body["error"].startswith("TypeError: Cannot read properties of undefined")
    assert resp.body["logs"] == ["about to throw"]
    resp = await node.run({"kind": "exit"})
    assert (resp.status, resp.body["error"]) == (
        502,
        "Error: process.exit(3) called by the function",
    )
    resp = await node.run({"kind": "timer"})  # an uncaught exception fails its own call
    assert (resp.status, resp.body["error"]) == (502, "Error: thrown from a timer")
    # None of it took the proxy down.
    assert (await node.run({"kind": "ok"})).body["result"] == {"still": "alive"}


async def test_init_errors_are_reported_and_init_is_accepted_once(start_node: StartNode) -> None:
    node = await start_node()
    missing = await node.init("exports.other = () => 1;", "main.main")
    assert missing.status == 502
    assert missing.body["error"] == 'handler "main.main" not found: module "main" exports no "main"'
    again = await node.init("exports.main = () => 1;", "main.main")
    assert again.status == 403
    broken = await start_node()
    resp = await broken.init("exports.main = () => {", "main.main")
    assert resp.status == 502 and "SyntaxError" in resp.body["error"], resp.body
    assert (await broken.run()).status == 403


INTERLEAVED = """
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
exports.main = async (params) => {
  for (let i = 0; i < 5; i++) {
    console.log(`${params.id} line ${i}`);
    process.stderr.write(`${params.id} err ${i}\\n`);
    await sleep(Math.random() * 10);
  }
  return { id: params.id };
};
"""


async def test_logs_stay_with_their_activation_when_calls_overlap(start_node: StartNode) -> None:
    node = await start_node()
    assert (await node.init(INTERLEAVED, "main.main")).status == 200
    replies = await asyncio.gather(*(node.run({"id": f"call{n}"}) for n in range(12)))
    for n, resp in enumerate(replies):
        assert resp.status == 200, resp.body
        own = f"call{n}"
        expected = [f"{own} {kind} {i}" for i in range(5) for kind in ("line", "err")]
        assert resp.body["logs"] == expected
        assert resp.body["result"] == {"id": own}


def _package_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(
            "package.json", json.dumps({"name": "app", "main": "lib/app.js"}), zipfile.ZIP_STORED
        )
        archive.writestr(
            "lib/app.js",
            "const shout = require('shouty');\n"
            "module.exports.main = (params) => ({ text: shout(params.text), "
            "from: require('shouty/package.json').version });\n",
            zipfile.ZIP_DEFLATED,
        )
        archive.writestr(
            "node_modules/shouty/package.json",
            json.dumps({"name": "shouty", "version": "1.2.3", "main": "src/shout.js"}),
            zipfile.ZIP_DEFLATED,
        )
        archive.writestr(
            "node_modules/shouty/src/shout.js",
            "module.exports = (s) => s.toUpperCase() + '!'.repeat(3);\n" + "// pad\n" * 200,
            zipfile.ZIP_DEFLATED,
        )
    return buf.getvalue()


async def test_zip_with_package_main_and_node_modules(start_node: StartNode) -> None:
    zipped = _package_zip()
    node = await start_node()
    init = await node.init(zipped, "main")  # a bare name: an export of package.json's main
    assert init.status == 200, init.body
    resp = await node.run({"text": "hello"})
    assert resp.status == 200, resp.body
    assert resp.body["result"] == {"text": "HELLO!!!", "from": "1.2.3"}
    by_path = await start_node()
    init = await by_path.init(zipped, "lib.app.main")  # module.function, dots for slashes
    assert init.status == 200, init.body
    assert (await by_path.run({"text": "a"})).body["result"]["text"] == "A!!!"
    bad = await start_node()
    resp = await bad.init(b"not a zip at all", "main")
    assert resp.status == 400 and "not a zip" in resp.body["error"], resp.body


HANGS = """
exports.spin = () => { for (;;) {} };
exports.never = () => new Promise(() => {});
"""


async def test_a_call_past_its_timeout_is_given_up_and_the_container_removed(
    start_node: StartNode, docker_client: docker.DockerClient
) -> None:
    spinning, waiting = await asyncio.gather(start_node(), start_node())
    assert (await spinning.init(HANGS, "main.spin")).status == 200
    assert (await waiting.init(HANGS, "main.never")).status == 200
    for node in (spinning, waiting):
        started = time.monotonic()
        with pytest.raises(RunTimeout):
            await node.run(timeout=1.0)
        assert time.monotonic() - started < 3
    # As with Python, the proxy enforces nothing: the invoker gives up and removes the
    # container. A spinning event loop must not make that removal slow.
    started = time.monotonic()
    await spinning.driver.destroy(spinning.handle)
    assert time.monotonic() - started < 5
    assert docker_client.api.containers(all=True, filters={"id": spinning.handle.id}) == []


async def test_sigterm_stops_the_container_at_once(
    start_node: StartNode, docker_client: docker.DockerClient
) -> None:
    node = await start_node()
    assert (await node.init(HANGS, "main.never")).status == 200
    container = docker_client.containers.get(node.handle.id)
    await asyncio.to_thread(container.stop, timeout=10)  # SIGKILL (137) if it is ignored
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0


CALLS_API = """
const http = require('http');
exports.main = (params, context) => new Promise((resolve, reject) => {
  const headers = { Authorization: `Bearer ${context.apiToken}` };
  http.get(`${process.env.NIMBUS_API_URL}/v1/whoami`, { headers }, (res) => {
    let body = '';
    res.on('data', (chunk) => { body += chunk; });
    res.on('end', () => resolve({
      status: res.statusCode, body: JSON.parse(body), envToken: process.env.NIMBUS_API_TOKEN,
    }));
  }).on('error', reject);
});
"""


@pytest.fixture
def api_dir() -> Iterator[Path]:
    """A directory for a stand-in API socket, which the container's uid can enter."""
    path = Path(tempfile.mkdtemp(prefix="nbapi-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_the_function_reaches_the_api_socket_with_its_token(
    start_node: StartNode, api_dir: Path
) -> None:
    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers.get("Authorization")})

    app = web.Application()
    app.router.add_get("/v1/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.UnixSite(runner, str(api_dir / "api.sock")).start()
        os.chmod(api_dir / "api.sock", 0o666)  # the function runs as uid 10001
        node = await start_node(api_socket_dir=str(api_dir))
        assert (await node.init(CALLS_API, "main.main")).status == 200
        resp = await node.run(api_token="tok-123")
        assert resp.status == 200, resp.body
        assert resp.body["result"] == {
            "status": 200,
            "body": {"auth": "Bearer tok-123"},
            "envToken": "tok-123",
        }
    finally:
        await runner.cleanup()
