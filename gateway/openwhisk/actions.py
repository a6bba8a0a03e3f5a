"""`/api/v1/namespaces/{ns}/actions`: create, update, read, list, delete and invoke.

A PUT is translated into the native deploy body (`translation.py`) and deployed exactly
as `PUT /v1/functions/{name}` does: the same validator, memory check and operation. An
invoke is the native call: blocking runs it through `Operations.invoke` (default
parameters merged and sequences run step by step, in the invoker) and waits at most the
blocking window (`timeout`, 60 s at most, as OpenWhisk) before answering 202 with the id
while the call runs on; non-blocking queues it durably (`Operations.submit`).
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Mapping

from aiohttp import web

from gateway import schemas
from gateway.deploy_memory import memory_refusal
from gateway.errors import ApiError, bad_request
from gateway.keys import CONFIG, PLATFORM
from gateway.middleware import caller
from gateway.openwhisk.auth import resolve_namespace
from gateway.openwhisk.common import ACTIVATION_HEADER, BACKGROUND, facts_of, tenant_of
from gateway.openwhisk.documents import action_document
from gateway.openwhisk.errors import conflict, existing, not_found
from gateway.openwhisk.params import flag, integer, window
from gateway.openwhisk.records import SUCCESS, WHISK_ERROR, record
from gateway.openwhisk.translation import Existing, native_body
from gateway.quotas import QUOTAS, backlog_full
from gateway.requests import json_body, json_object
from invoker.api import ImageRejected, InvokeRequest, InvokeResult, Throttled
from invoker.dispatcher import BacklogFull
from invoker.records import activation_from
from invoker.store.base import StoredFunction

routes = web.RouteTableDef()

ACTIONS = "/api/v1/namespaces/{namespace}/actions"
ACTION = ACTIONS + "/{name}"
MAX_BLOCKING_MS = 60_000


async def _existing(request: web.Request, stored: StoredFunction) -> Existing:
    spec = stored.spec
    code = None if spec.sequence else await request.app[PLATFORM].store.get_code(spec.code_sha256)
    return Existing(
        native=stored.to_json(),
        code=code or b"",
        params=spec.params,
        secret_params=spec.secret_params,
        web_secret=spec.web_secret_hash is not None,
    )


def _code_text(stored: StoredFunction, code: bytes) -> str:
    if stored.spec.code_kind == "zip":
        return base64.b64encode(code).decode()
    return code.decode("utf-8", errors="replace")


@routes.put(ACTION)
async def put_action(request: web.Request) -> web.Response:
    """Create, or with `overwrite=true` update, an action: 200 with the action."""
    tenant = tenant_of(request)
    name = schemas.check_function_name(request.match_info["name"])
    platform = request.app[PLATFORM]
    stored = await platform.store.get_function(tenant, name)
    if stored is not None and not flag(request.query, "overwrite"):
        raise conflict()
    doc = await json_body(request)
    old = await _existing(request, stored) if stored is not None else None

    def namespace_ok(namespace: str) -> str:
        return resolve_namespace(namespace, caller(request))

    # Off the loop: a zip is decoded, copied and checked, source parsed.
    body = await asyncio.to_thread(native_body, doc, old, schemas.FUNCTION_FIELDS, namespace_ok)
    draft = await asyncio.to_thread(
        schemas.function_draft,
        tenant,
        name,
        body,
        max_code_bytes=request.app[CONFIG].max_code_bytes,
    )
    config = request.app[CONFIG]
    refusal = memory_refusal(config, platform.ops, name, draft.memory_mb, "limits.memory")
    if refusal is not None:
        raise bad_request(refusal, "limits.memory")
    try:
        saved, _ = await platform.ops.deploy(draft, time.time())
    except ImageRejected as exc:
        raise bad_request(str(exc), "exec.image") from None
    return web.json_response(action_document(saved.to_json(), tenant))


@routes.get(ACTIONS)
async def list_actions(request: web.Request) -> web.Response:
    """The namespace's actions, by name: `limit`, `skip`, `count`."""
    tenant = tenant_of(request)
    paging = window(request.query)
    found = await request.app[PLATFORM].store.list_functions(tenant)
    if paging.count:
        return web.json_response({"actions": paging.counted(found)})
    docs = [action_document(f.to_json(), tenant, brief=True) for f in paging.page(found)]
    return web.json_response(docs)


async def _stored(request: web.Request, tenant: str) -> StoredFunction:
    name = schemas.check_function_name(request.match_info["name"])
    return existing(await request.app[PLATFORM].store.get_function(tenant, name))


@routes.get(ACTION)
async def get_action(request: web.Request) -> web.Response:
    """One action, with its code unless `code=false`."""
    tenant = tenant_of(request)
    stored = await _stored(request, tenant)
    text = None
    if flag(request.query, "code", default=True) and not stored.spec.sequence:
        code = await request.app[PLATFORM].store.get_code(stored.spec.code_sha256)
        text = await asyncio.to_thread(_code_text, stored, code or b"")
    return web.json_response(action_document(stored.to_json(), tenant, text))


@routes.delete(ACTION)
async def delete_action(request: web.Request) -> web.Response:
    """Delete an action: 200 with what it was."""
    tenant = tenant_of(request)
    stored = await _stored(request, tenant)
    if not await request.app[PLATFORM].ops.delete(tenant, stored.spec.name):
        raise not_found()
    return web.json_response(action_document(stored.to_json(), tenant))


def _blocking_window(query: Mapping[str, str]) -> float:
    timeout = integer(query, "timeout", MAX_BLOCKING_MS)
    if timeout is None or not 0 < timeout <= MAX_BLOCKING_MS:
        raise ApiError(400, f"The timeout must be between 1 and {MAX_BLOCKING_MS} ms.")
    return timeout / 1000


def _accepted(activation_id: str) -> web.Response:
    return web.json_response(
        {"activationId": activation_id},
        status=202,
        headers={ACTIVATION_HEADER: activation_id},
    )


def _throttled(exc: Throttled) -> ApiError:
    retry = max(1, math.ceil(exc.retry_after_s))
    return ApiError(429, f"Too many requests: {exc.reason}.").with_headers(
        {"Retry-After": str(retry)}
    )


def blocking_answer(
    request: InvokeRequest, result: InvokeResult, stored: StoredFunction, result_only: bool
) -> web.Response:
    """A finished blocking call as OpenWhisk answers it: 200, 502 for the action's
    errors (application and developer), 500 for the platform's."""
    doc = record(activation_from(request, result), facts_of(stored))
    code = doc["response"]["statusCode"]
    status = 200 if code == SUCCESS else 500 if code == WHISK_ERROR else 502
    payload = doc["response"]["result"] if result_only else doc
    return web.json_response(
        payload, status=status, headers={ACTIVATION_HEADER: result.activation_id}
    )


@routes.post(ACTION)
async def invoke_action(request: web.Request) -> web.Response:
    """Invoke: `blocking`, `result` and `timeout` (ms) as OpenWhisk takes them."""
    tenant = tenant_of(request)
    platform = request.app[PLATFORM]
    request.app[QUOTAS].check_rate(tenant)
    payload = await json_object(request, empty_ok=True)
    name = schemas.check_function_name(request.match_info["name"])
    stored = existing(await platform.function(tenant, name))
    # Default parameters are merged, and sequences run, by the invoker (Operations).
    if not flag(request.query, "blocking"):
        try:
            return _accepted(await platform.ops.submit(stored.spec, payload))
        except BacklogFull as exc:
            raise backlog_full(exc) from None
    wait_s = _blocking_window(request.query)
    call = InvokeRequest(activation_id=platform.ids.next(), function=stored.spec, args=payload)
    task = asyncio.ensure_future(platform.ops.invoke(call))
    request.app[BACKGROUND].keep(task)  # runs to its end even if this client goes away
    done, _ = await asyncio.wait({task}, timeout=wait_s)
    if not done:  # it runs on; its record answers GET .../activations/{id} when it ends
        return _accepted(call.activation_id)
    try:
        result = task.result()
    except Throttled as exc:
        raise _throttled(exc) from None
    return blocking_answer(call, result, stored, flag(request.query, "result"))
