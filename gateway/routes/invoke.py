"""Invoking a function synchronously."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.quotas import QUOTAS, backlog_full
from gateway.requests import json_object
from gateway.schemas import check_function_name
from invoker.api import FunctionSpec, InvokeRequest, InvokeResult, Status, Throttled
from invoker.dispatcher import BacklogFull
from invoker.sequences import SequenceRunner, sequence_activation

routes = web.RouteTableDef()

ERROR_STATUS = {
    Status.APPLICATION_ERROR: 502,
    Status.TIMEOUT: 504,
    Status.PLATFORM_ERROR: 503,
}


def _is_async(request: web.Request) -> bool:
    raw = request.query.get("async", request.query.get("blocking"))
    if raw is None:
        return False
    value = raw.lower()
    if value not in ("true", "false", "1", "0"):
        raise bad_request("async must be true or false", "async")
    truthy = value in ("true", "1")
    # `?blocking=false` (OpenWhisk's spelling) means async too.
    return truthy if "async" in request.query else not truthy


@routes.post("/v1/functions/{name}/invoke")
async def invoke(request: web.Request) -> web.Response:
    """Run the function on the JSON event in the body and answer with its result."""
    who = caller(request)
    name = check_function_name(request.match_info["name"])
    request.app[QUOTAS].check_rate(who.tenant)  # 429 past the tenant's rate: sync and async
    # Capped at max_event_bytes (gateway/requests.py BODY_LIMITS), strict JSON.
    event = await json_object(request, empty_ok=True)
    stored = await request.app[PLATFORM].function(who.tenant, name)
    if stored is None:
        raise not_found(f"function {name!r}")
    if _is_async(request):
        try:
            activation_id = await request.app[PLATFORM].ops.submit(stored.spec, event)
        except BacklogFull as exc:
            raise backlog_full(exc) from None
        return web.json_response(
            {"activation_id": activation_id, "status": "pending"},
            status=202,
            headers={
                "X-Nimbus-Activation-Id": activation_id,
                "Location": f"/v1/activations/{activation_id}",
            },
        )
    result = await run_now(request.app, stored.spec, event)
    return result_response(result)


def call_runner(app: web.Application) -> SequenceRunner:
    """Runs calls now for this gateway: params merged, sequences step by step, every
    activation recorded (a sequence's own without usage: its steps are billed)."""
    platform = app[PLATFORM]

    async def record(request: InvokeRequest, result: InvokeResult) -> None:
        await platform.store.save_activation(sequence_activation(request, result), wait=False)

    return SequenceRunner(
        lookup=platform.function,
        invoke=platform.ops.invoke,
        record=record,
        new_id=platform.ids.next,
    )


async def run_now(
    app: web.Application, spec: FunctionSpec, event: Mapping[str, Any]
) -> InvokeResult:
    """Run a function (or sequence) on an event now; 429 when it cannot start."""
    request = InvokeRequest(activation_id=app[PLATFORM].ids.next(), function=spec, args=event)
    try:
        return await call_runner(app).call(request)
    except Throttled as exc:
        retry = max(1, math.ceil(exc.retry_after_s))
        raise ApiError(
            429, f"too many calls: {exc.reason}; retry later", type="throttled"
        ).with_headers({"Retry-After": str(retry)}) from None


def result_headers(result: InvokeResult) -> dict[str, str]:
    """The `X-Nimbus-*` headers of a finished call."""
    return {
        "X-Nimbus-Activation-Id": result.activation_id,
        "X-Nimbus-Cold-Start": "true" if result.cold_start else "false",
        "X-Nimbus-Duration-Ms": f"{result.duration_ms:.3f}",
        "X-Nimbus-Init-Ms": f"{result.init_ms:.3f}",
    }


def failure(result: InvokeResult) -> ApiError:
    """The error answer of a call that did not succeed (502, 504 or 503)."""
    return ApiError(
        ERROR_STATUS.get(result.status, 500),
        result.error or result.status.value,
        type=result.status.value,
        activation_id=result.activation_id,
    )


def result_response(result: InvokeResult) -> web.Response:
    """A finished call as the invoke route answers it: its result, or its failure."""
    headers = result_headers(result)
    if result.status is Status.SUCCESS:
        return web.json_response(result.result, headers=headers)
    return failure(result).response(headers=headers)
