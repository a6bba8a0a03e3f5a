"""The official OpenWhisk npm client (`openwhisk`) against a running gateway, on real
Docker: actions, invocations, activations, triggers and rules, a sequence and a web action
(tests/openwhisk_client)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Api

CLIENT = Path(__file__).resolve().parents[1] / "openwhisk_client"
NODE = shutil.which("node")
STEPS = (
    "namespaces.list",
    "actions.create",
    "actions.update",
    "actions.get",
    "actions.list",
    "actions.invoke blocking",
    "actions.invoke result only",
    "actions.invoke non-blocking",
    "activations.get",
    "activations.list",
    "activations.logs",
    "activations.result",
    "triggers.create",
    "rules.create",
    "triggers.invoke (fire)",
    "rules.disable",
    "rules.delete and triggers.delete",
    "sequence create and invoke",
    "web action fetched with plain HTTP",
    "actions.delete",
)

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (Debian's nodejs package)"),
    pytest.mark.skipif(
        not (CLIENT / "node_modules" / "openwhisk").is_dir(),
        reason="the npm client is not installed: run `npm ci --prefix tests/openwhisk_client`",
    ),
]


async def test_the_official_npm_client_drives_the_api(api: Api) -> None:
    status, created, _ = await api.call("POST", "/v1/tenants", {"name": "npmclient"})
    assert status == 201, created
    env = {
        **os.environ,
        "OW_APIHOST": api.url,
        "OW_AUTH": created["openwhisk"]["auth"],
        "OW_NAMESPACE": "npmclient",
    }
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        "client.js",
        cwd=CLIENT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    report = out.decode() + err.decode()
    assert proc.returncode == 0, report
    done = {line.removeprefix("ok ") for line in out.decode().splitlines()}
    assert set(STEPS) <= done, report
