"""Invoking a function synchronously."""

from __future__ import annotations

import math
from collections.abc import Mapping

from aiohttp import web

from gateway.errors import ApiError, bad_request
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.quotas import QUOTAS, backlog_full
from gateway.requests import json_object
from gateway.routes.versions import resolve_call
from invoker.api import InvokeRequest, InvokeResult, Status, Throttled
from invoker.dispatcher import BacklogFull

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
    """Run the function on the JSON event in the body and answer with its result.

    `{name}` may name a version or an alias (`name:3`, `name:prod`, or `?version=` /
    `?alias=`); the version is resolved here, before the call is run or queued, so an
    accepted async call keeps it though the alias moves.
    """
    who = caller(request)
    request.app[QUOTAS].check_rate(who.tenant)  # 429 past the tenant's rate: sync and async
    # Capped at max_event_bytes (gateway/requests.py BODY_LIMITS), strict JSON.
    event = await json_object(request, empty_ok=True)
    resolved = await resolve_call(request, who.tenant)
    spec = resolved.function.spec
    chosen = {"X-Nimbus-Function-Version": str(spec.version)}
    if resolved.alias is not None:
        chosen["X-Nimbus-Alias"] = resolved.alias
    if _is_async(request):
        try:
            activation_id = await request.app[PLATFORM].ops.submit(spec, event)
        except BacklogFull as exc:
            raise backlog_full(exc) from None
        return web.json_response(
            {"activation_id": activation_id, "status": "pending", "version": spec.version},
            status=202,
            headers={
                "X-Nimbus-Activation-Id": activation_id,
                "Location": f"/v1/activations/{activation_id}",
                **chosen,
            },
        )
    call = InvokeRequest(activation_id=request.app[PLATFORM].ids.next(), function=spec, args=event)
    try:
        result = await request.app[PLATFORM].ops.invoke(call)  # params, sequences: invoker's
    except Throttled as exc:
        retry = max(1, math.ceil(exc.retry_after_s))
        raise ApiError(
            429, f"too many calls: {exc.reason}; retry later", type="throttled"
        ).with_headers({"Retry-After": str(retry)}) from None
    return result_response(result, chosen)


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


def result_response(result: InvokeResult, extra: Mapping[str, str] | None = None) -> web.Response:
    """A finished call as the invoke route answers it: its result, or its failure."""
    headers = {**result_headers(result), **(extra or {})}
    if result.status is Status.SUCCESS:
        return web.json_response(result.result, headers=headers)
    return failure(result).response(headers=headers)
