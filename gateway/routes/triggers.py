"""Triggers, rules, firing, and secret webhooks."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.requests import json_object
from gateway.triggers import (
    check_name,
    hash_secret,
    make_rule,
    make_trigger,
    new_webhook_secret,
    rule_fields,
    s3_events,
    trigger_config,
)

routes = web.RouteTableDef()


@routes.put("/v1/triggers/{name}")
async def put_trigger(request: web.Request) -> web.Response:
    """Create (201) or replace (200) a trigger. A new webhook secret is shown once."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    body = await json_object(request)
    kind, config = trigger_config(body)
    store = request.app[PLATFORM].store
    old = await store.get_trigger(who.tenant, name)
    secret_hash, token = None, None
    if kind == "http" and body.get("webhook", False):
        if old is not None and old.secret_hash is not None and not body.get("rotate_webhook"):
            secret_hash = old.secret_hash
        else:
            token = new_webhook_secret()
            secret_hash = hash_secret(token)
    trigger = make_trigger(who.tenant, name, kind, config, secret_hash, time.time())
    created = await store.put_trigger(trigger)
    stored = await store.get_trigger(who.tenant, name)
    assert stored is not None
    payload = stored.to_json()
    if token is not None:
        payload["webhook_url"] = f"/v1/hooks/{token}"
    return web.json_response(payload, status=201 if created else 200)


@routes.get("/v1/triggers")
async def list_triggers(request: web.Request) -> web.Response:
    """The caller's triggers."""
    who = caller(request)
    found = await request.app[PLATFORM].store.list_triggers(who.tenant)
    return web.json_response({"triggers": [t.to_json() for t in found]})


@routes.get("/v1/triggers/{name}")
async def get_trigger(request: web.Request) -> web.Response:
    """One trigger."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    found = await request.app[PLATFORM].store.get_trigger(who.tenant, name)
    if found is None:
        raise not_found(f"trigger {name!r}")
    return web.json_response(found.to_json())


@routes.delete("/v1/triggers/{name}")
async def delete_trigger(request: web.Request) -> web.Response:
    """Delete a trigger and its rules."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    if not await request.app[PLATFORM].store.delete_trigger(who.tenant, name):
        raise not_found(f"trigger {name!r}")
    return web.json_response({"deleted": name})


@routes.post("/v1/triggers/{name}/fire")
async def fire(request: web.Request) -> web.Response:
    """Fire a trigger with the body as its event: one async activation per enabled rule."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    trigger = await request.app[PLATFORM].store.get_trigger(who.tenant, name)
    if trigger is None:
        raise not_found(f"trigger {name!r}")
    event = await json_object(request, empty_ok=True)
    ids = await request.app[PLATFORM].triggers.fire(trigger, event)
    return web.json_response({"trigger": name, "activation_ids": ids}, status=202)


@routes.post("/v1/hooks/{token}")
async def webhook(request: web.Request) -> web.Response:
    """A trigger's secret webhook: no API key; S3/MinIO event notifications understood."""
    trigger = await request.app[PLATFORM].store.trigger_by_secret(
        hash_secret(request.match_info["token"])
    )
    if trigger is None:
        raise not_found("webhook")
    body = await json_object(request, empty_ok=True)
    events = s3_events(body)
    # Every record, or none (429 past the tenant's backlog): a retried delivery never doubles.
    engine = request.app[PLATFORM].triggers
    ids = await engine.fire_events(trigger, events if events is not None else [body])
    return web.json_response({"trigger": trigger.name, "activation_ids": ids}, status=202)


@routes.put("/v1/rules/{name}")
async def put_rule(request: web.Request) -> web.Response:
    """Create (201) or replace (200) a rule linking a trigger to a function."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    trigger, function, enabled = rule_fields(await json_object(request))
    store = request.app[PLATFORM].store
    if await store.get_trigger(who.tenant, trigger) is None:
        raise bad_request(f"no trigger named {trigger!r}", "trigger")
    try:
        resolved = await request.app[PLATFORM].ops.resolve_target(who.tenant, function)
    except LookupError:
        resolved = None
    if resolved is None:
        raise bad_request(f"no function named {function!r}", "function")
    created = await store.put_rule(
        make_rule(who.tenant, name, trigger, function, enabled, time.time())
    )
    stored = await store.get_rule(who.tenant, name)
    if stored is None:
        raise ApiError(500, "the rule vanished while being written")
    return web.json_response(stored.to_json(), status=201 if created else 200)


@routes.get("/v1/rules")
async def list_rules(request: web.Request) -> web.Response:
    """The caller's rules."""
    who = caller(request)
    found = await request.app[PLATFORM].store.list_rules(who.tenant)
    return web.json_response({"rules": [r.to_json() for r in found]})


@routes.get("/v1/rules/{name}")
async def get_rule(request: web.Request) -> web.Response:
    """One rule."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    found = await request.app[PLATFORM].store.get_rule(who.tenant, name)
    if found is None:
        raise not_found(f"rule {name!r}")
    return web.json_response(found.to_json())


@routes.delete("/v1/rules/{name}")
async def delete_rule(request: web.Request) -> web.Response:
    """Delete a rule."""
    who = caller(request)
    name = check_name(request.match_info["name"])
    if not await request.app[PLATFORM].store.delete_rule(who.tenant, name):
        raise not_found(f"rule {name!r}")
    return web.json_response({"deleted": name})
