"""Invoking a function synchronously."""

from __future__ import annotations

import math

from aiohttp import web

from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.quotas import QUOTAS, backlog_full
from gateway.requests import json_object
from gateway.schemas import check_function_name
from invoker.api import InvokeRequest, Status, Throttled
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
    activation_id = request.app[PLATFORM].ids.next()
    try:
        result = await request.app[PLATFORM].ops.invoke(
            InvokeRequest(activation_id=activation_id, function=stored.spec, args=event)
        )
    except Throttled as exc:
        retry = max(1, math.ceil(exc.retry_after_s))
        raise ApiError(
            429, f"too many calls: {exc.reason}; retry later", type="throttled"
        ).with_headers({"Retry-After": str(retry)}) from None
    headers = {
        "X-Nimbus-Activation-Id": result.activation_id,
        "X-Nimbus-Cold-Start": "true" if result.cold_start else "false",
        "X-Nimbus-Duration-Ms": f"{result.duration_ms:.3f}",
        "X-Nimbus-Init-Ms": f"{result.init_ms:.3f}",
    }
    if result.status is Status.SUCCESS:
        return web.json_response(result.result, headers=headers)
    raise_status = ERROR_STATUS.get(result.status, 500)
    error = ApiError(
        raise_status,
        result.error or result.status.value,
        type=result.status.value,
        activation_id=result.activation_id,
    )
    return error.response(headers=headers)
