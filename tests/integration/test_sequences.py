"""Sequences: functions made of other functions of the same tenant, over HTTP on the real
Docker engine; sync, async and trigger-fired calls all run them step by step."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api

INC = "def handler(event):\n    return {'n': event['n'] + event.get('step', 1)}\n"
DOUBLE = "def handler(event):\n    return {'n': event['n'] * 2}\n"
BOOM = "def handler(event):\n    raise RuntimeError('boom at ' + str(event['n']))\n"


async def activation(api: Api, activation_id: str, key: str) -> dict[str, Any]:
    """The activation once it has finished."""
    for _ in range(300):
        status, act, _ = await api.call("GET", f"/v1/activations/{activation_id}", key=key)
        if status == 200 and act["status"] not in ("pending", "running"):
            return dict(act)
        await asyncio.sleep(0.1)
    raise AssertionError(f"activation {activation_id} never finished")


async def setup_steps(api: Api, key: str) -> None:
    await api.deploy("inc", INC, key=key, params={"step": 1})
    await api.deploy("double", DOUBLE, key=key)
    await api.deploy("boom", BOOM, key=key)


async def put_sequence(api: Api, name: str, key: str, **fields: Any) -> tuple[int, Any]:
    status, payload, _ = await api.call("PUT", f"/v1/functions/{name}", fields, key=key)
    return status, payload


async def test_a_sequence_runs_its_steps_one_after_another(api: Api) -> None:
    key = await api.tenant("seq-a")
    await setup_steps(api, key)
    status, calc = await put_sequence(api, "calc", key, sequence=["inc", "double", "inc"])
    assert status == 201, calc
    assert calc["sequence"] == ["inc", "double", "inc"] and calc["code_kind"] == "sequence"

    # (1 + 1) * 2 + 1: each step's result is the next one's input, under its own params.
    status, body, headers = await api.invoke("calc", {"n": 1}, key=key)
    assert (status, body) == (200, {"n": 5})
    act = await activation(api, headers["X-Nimbus-Activation-Id"], key)
    assert act["function"] == "calc" and act["status"] == "success"
    assert act["result"] == {"n": 5} and len(act["logs"]) == 3
    steps = [await activation(api, step_id, key) for step_id in act["logs"]]
    assert [s["function"] for s in steps] == ["inc", "double", "inc"]
    assert [s["result"] for s in steps] == [{"n": 2}, {"n": 4}, {"n": 5}]
    assert act["duration_ms"] >= sum(s["duration_ms"] for s in steps)

    # Each step is billed as a call; the sequence itself is not.
    _, bill, _ = await api.call("GET", "/v1/billing", key=key)
    assert bill["total"]["invocations"] == 3

    # The first error stops it: the step after never runs.
    await put_sequence(api, "broken", key, sequence=["inc", "boom", "double"])
    status, body, headers = await api.invoke("broken", {"n": 1}, key=key)
    assert status == 502 and "step 2 (boom)" in body["error"]["message"]
    act = await activation(api, headers["X-Nimbus-Activation-Id"], key)
    assert act["status"] == "application_error" and len(act["logs"]) == 2

    # A sequence can be a web function too (no API key).
    await put_sequence(api, "webcalc", key, sequence=["inc", "double"], web=True)
    async with api.session.post(f"{api.url}/web/seq-a/webcalc", json={"n": 1}) as resp:
        assert (resp.status, await resp.json()) == (200, {"n": 4})

    # Sequences nest: the inner one is an activation of its own, listing its steps.
    await put_sequence(api, "outer", key, sequence=["calc", "double"], params={"n": 0})
    status, body, headers = await api.invoke("outer", {}, key=key)
    assert (status, body) == (200, {"n": 6})  # params {"n": 0} go to the first step
    act = await activation(api, headers["X-Nimbus-Activation-Id"], key)
    inner = await activation(api, act["logs"][0], key)
    assert inner["function"] == "calc" and len(inner["logs"]) == 3


async def test_async_and_trigger_fired_calls_run_sequences(api: Api) -> None:
    key = await api.tenant("seq-b")
    await setup_steps(api, key)
    await put_sequence(api, "calc", key, sequence=["inc", "double"])
    status, queued, _ = await api.call(
        "POST", "/v1/functions/calc/invoke?async=true", {"n": 2}, key=key
    )
    assert status == 202, queued
    act = await activation(api, queued["activation_id"], key)
    assert act["status"] == "success" and act["result"] == {"n": 6} and len(act["logs"]) == 2

    status, _, _ = await api.call("PUT", "/v1/triggers/go", {"type": "http"}, key=key)
    assert status == 201
    rule = {"trigger": "go", "function": "calc"}
    status, _, _ = await api.call("PUT", "/v1/rules/go-calc", rule, key=key)
    assert status == 201
    status, fired, _ = await api.call("POST", "/v1/triggers/go/fire", {"n": 10}, key=key)
    assert status == 202, fired
    act = await activation(api, fired["activation_ids"][0], key)
    assert act["status"] == "success" and act["result"] == {"n": 22}
    assert act["trigger"] == "go"


async def test_a_cycle_or_a_missing_step_is_refused_at_deploy(api: Api) -> None:
    key = await api.tenant("seq-c")
    await setup_steps(api, key)
    status, payload = await put_sequence(api, "loop", key, sequence=["loop"])
    assert status == 400 and payload["error"]["field"] == "sequence"
    status, payload = await put_sequence(api, "s1", key, sequence=["inc"])
    assert status == 201
    status, payload = await put_sequence(api, "s2", key, sequence=["double", "s1"])
    assert status == 201
    status, payload = await put_sequence(api, "s1", key, sequence=["s2"])  # s1 -> s2 -> s1
    assert status == 400 and "cycle" in payload["error"]["message"]
    status, payload = await put_sequence(api, "s3", key, sequence=["inc", "nowhere"])
    assert status == 400 and "nowhere" in payload["error"]["message"]
    status, payload = await put_sequence(api, "s4", key, sequence=[])
    assert status == 400 and payload["error"]["field"] == "sequence"
    status, payload = await put_sequence(api, "s5", key, sequence=["inc"], handler="main.handler")
    assert status == 400 and payload["error"]["field"] == "handler"


async def test_another_tenants_functions_cannot_be_steps(api: Api) -> None:
    owner = await api.tenant("seq-owner")
    thief = await api.tenant("seq-thief")
    await api.deploy("inc", INC, key=owner)
    status, payload = await put_sequence(api, "steal", thief, sequence=["inc"])
    assert status == 400 and payload["error"]["field"] == "sequence"
    # Same name in both tenants: each sequence runs its own tenant's function.
    await api.deploy("inc", DOUBLE, key=thief)
    status, _ = await put_sequence(api, "mine", thief, sequence=["inc"])
    assert status == 201
    status, body, _ = await api.invoke("mine", {"n": 5}, key=thief)
    assert (status, body) == (200, {"n": 10})
