"""`/api/v1/namespaces/{ns}/triggers` and `/rules`, on Nimbus's own triggers and rules.

An OpenWhisk trigger is a native trigger (type `http` when made here; a native schedule
or bucket trigger keeps its type) whose config also holds its `parameters` and
`annotations`. A fire merges the trigger's parameters under the payload and queues one
call per active rule through the native engine: 202 with the first call's activation id
(every id in `activationIds`), 204 when no rule is active, as OpenWhisk. A rule's
`status` is the native rule's `enabled` flag.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.openwhisk.auth import resolve_namespace
from gateway.openwhisk.common import ACTIVATION_HEADER, tenant_of
from gateway.openwhisk.documents import (
    entity_name,
    from_key_values,
    rule_document,
    trigger_document,
)
from gateway.openwhisk.errors import bad_request, conflict, existing, not_found
from gateway.openwhisk.params import flag, window
from gateway.requests import json_object
from gateway.triggers import check_name, make_rule, make_trigger
from invoker.store.base import Rule, Store, Trigger

routes = web.RouteTableDef()

TRIGGERS = "/api/v1/namespaces/{namespace}/triggers"
TRIGGER = TRIGGERS + "/{name}"
RULES = "/api/v1/namespaces/{namespace}/rules"
RULE = RULES + "/{name}"
STATUSES = {"active": True, "inactive": False}


async def _trigger_doc(store: Store, trigger: Trigger) -> dict[str, Any]:
    rules = await store.list_rules(trigger.tenant, trigger.name)
    linked = {r.name: (r.function, r.enabled) for r in rules}
    return trigger_document(trigger.tenant, trigger.name, trigger.config, linked, trigger.updated)


def _rule_doc(rule: Rule) -> dict[str, Any]:
    return rule_document(
        rule.tenant, rule.name, rule.trigger, rule.function, rule.enabled, rule.updated
    )


async def _trigger(request: web.Request, tenant: str) -> Trigger:
    name = check_name(request.match_info["name"])
    return existing(await request.app[PLATFORM].store.get_trigger(tenant, name))


async def _rule(request: web.Request, tenant: str) -> Rule:
    name = check_name(request.match_info["name"])
    return existing(await request.app[PLATFORM].store.get_rule(tenant, name))


@routes.put(TRIGGER)
async def put_trigger(request: web.Request) -> web.Response:
    """Create, or with `overwrite=true` update, a trigger: 200 with the trigger."""
    tenant = tenant_of(request)
    name = check_name(request.match_info["name"])
    store = request.app[PLATFORM].store
    old = await store.get_trigger(tenant, name)
    if old is not None and not flag(request.query, "overwrite"):
        raise conflict()
    doc = await json_object(request, empty_ok=True)
    config: dict[str, Any] = dict(old.config) if old is not None else {}
    for field in ("parameters", "annotations"):
        if field in doc:
            config[field] = from_key_values(doc[field], field)
        config.setdefault(field, {})
    kind = old.type if old is not None else "http"
    secret_hash = old.secret_hash if old is not None else None
    await store.put_trigger(make_trigger(tenant, name, kind, config, secret_hash, time.time()))
    saved = await store.get_trigger(tenant, name)
    if saved is None:  # deleted under this request
        raise not_found()
    return web.json_response(await _trigger_doc(store, saved))


@routes.get(TRIGGERS)
async def list_triggers(request: web.Request) -> web.Response:
    """The namespace's triggers: `limit`, `skip`, `count`."""
    tenant = tenant_of(request)
    paging = window(request.query)
    store = request.app[PLATFORM].store
    found = await store.list_triggers(tenant)
    if paging.count:
        return web.json_response({"triggers": paging.counted(found)})
    return web.json_response([await _trigger_doc(store, t) for t in paging.page(found)])


@routes.get(TRIGGER)
async def get_trigger(request: web.Request) -> web.Response:
    """One trigger, with its rules."""
    tenant = tenant_of(request)
    found = await _trigger(request, tenant)
    return web.json_response(await _trigger_doc(request.app[PLATFORM].store, found))


@routes.delete(TRIGGER)
async def delete_trigger(request: web.Request) -> web.Response:
    """Delete a trigger (and, as natively, its rules): 200 with what it was."""
    tenant = tenant_of(request)
    found = await _trigger(request, tenant)
    store = request.app[PLATFORM].store
    doc = await _trigger_doc(store, found)
    if not await store.delete_trigger(tenant, found.name):
        raise not_found()
    return web.json_response(doc)


@routes.post(TRIGGER)
async def fire_trigger(request: web.Request) -> web.Response:
    """Fire with the body as parameters: 202 `{"activationId"}`, or 204 without active rules."""
    tenant = tenant_of(request)
    found = await _trigger(request, tenant)
    payload = await json_object(request, empty_ok=True)
    args = {**dict(found.config.get("parameters") or {}), **payload}
    ids = await request.app[PLATFORM].triggers.fire(found, args)
    if not ids:
        return web.Response(status=204)
    return web.json_response(
        {"activationId": ids[0], "activationIds": ids},
        status=202,
        headers={ACTIVATION_HEADER: ids[0]},
    )


@routes.put(RULE)
async def put_rule(request: web.Request) -> web.Response:
    """Create (active), or with `overwrite=true` update, a rule: 200 with the rule."""
    tenant = tenant_of(request)
    name = check_name(request.match_info["name"])
    store = request.app[PLATFORM].store
    old = await store.get_rule(tenant, name)
    if old is not None and not flag(request.query, "overwrite"):
        raise conflict()
    doc = await json_object(request)

    def namespace_ok(namespace: str) -> str:
        return resolve_namespace(namespace, caller(request))

    trigger = old.trigger if old is not None and not doc.get("trigger") else None
    action = old.function if old is not None and not doc.get("action") else None
    trigger = trigger or check_name(entity_name(doc.get("trigger"), namespace_ok, "trigger"))
    action = action or check_name(entity_name(doc.get("action"), namespace_ok, "action"))
    if await store.get_trigger(tenant, trigger) is None:
        raise bad_request(f"trigger /{tenant}/{trigger} does not exist")
    if await store.get_function(tenant, action) is None:
        raise bad_request(f"action /{tenant}/{action} does not exist")
    enabled = old.enabled if old is not None else True
    await store.put_rule(make_rule(tenant, name, trigger, action, enabled, time.time()))
    saved = await store.get_rule(tenant, name)
    if saved is None:  # its trigger was deleted under this request
        raise not_found()
    return web.json_response(_rule_doc(saved))


@routes.get(RULES)
async def list_rules(request: web.Request) -> web.Response:
    """The namespace's rules: `limit`, `skip`, `count`."""
    tenant = tenant_of(request)
    paging = window(request.query)
    found = await request.app[PLATFORM].store.list_rules(tenant)
    if paging.count:
        return web.json_response({"rules": paging.counted(found)})
    return web.json_response([_rule_doc(r) for r in paging.page(found)])


@routes.get(RULE)
async def get_rule(request: web.Request) -> web.Response:
    """One rule, with its status."""
    tenant = tenant_of(request)
    return web.json_response(_rule_doc(await _rule(request, tenant)))


@routes.delete(RULE)
async def delete_rule(request: web.Request) -> web.Response:
    """Delete a rule: 200 with what it was (status inactive, as OpenWhisk shows it)."""
    tenant = tenant_of(request)
    found = await _rule(request, tenant)
    if not await request.app[PLATFORM].store.delete_rule(tenant, found.name):
        raise not_found()
    doc = _rule_doc(found)
    doc["status"] = "inactive"
    return web.json_response(doc)


@routes.post(RULE)
async def set_rule_status(request: web.Request) -> web.Response:
    """`{"status": "active" | "inactive"}`: enable or disable the rule; 200."""
    tenant = tenant_of(request)
    found = await _rule(request, tenant)
    status = (await json_object(request)).get("status")
    if status not in STATUSES:
        raise bad_request("status must be 'active' or 'inactive'")
    if found.enabled != STATUSES[status]:
        rule = make_rule(
            tenant, found.name, found.trigger, found.function, STATUSES[status], time.time()
        )
        await request.app[PLATFORM].store.put_rule(rule)
    return web.Response(status=200)
