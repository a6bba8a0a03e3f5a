"""Triggers and rules: validation, firing, schedules, bucket events and S3-style webhooks.

A fire becomes one async activation per enabled rule of the trigger, through the
durable queue, so a fired event is never lost once accepted. A fire the tenant's backlog
has no room for enqueues nothing: an API fire or a webhook answers 429, a schedule or
bucket event (nobody to answer) is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.cron import CronError, CronSchedule
from gateway.errors import bad_request
from gateway.quotas import backlog_full
from invoker.dispatcher import BacklogFull
from invoker.operations import Operations
from invoker.store.base import Rule, Store, Trigger
from invoker.versions import VersionError, parse_qualifier, split_target

log = logging.getLogger("nimbus.triggers")

TRIGGER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TYPES = ("http", "schedule", "bucket")
BUCKET_EVENTS = ("created", "deleted")
FIELDS = {
    "http": {"type", "webhook", "rotate_webhook"},
    "schedule": {"type", "cron", "timezone", "payload"},
    "bucket": {"type", "bucket", "events", "prefix", "suffix"},
}


def hash_secret(token: str) -> str:
    """What the store keeps of a webhook secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str, field: str = "name") -> str:
    """Trigger and rule names: like function names."""
    if not TRIGGER_NAME.fullmatch(name):
        raise bad_request(
            f"{field} must be 1-64 letters, digits, '_', '.', '-', starting with a letter or digit",
            field,
        )
    return name


def _str(body: Mapping[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string", key)
    return value


def trigger_config(body: Any) -> tuple[str, dict[str, Any]]:
    """Validate a trigger body; returns (type, config to store)."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", "body")
    kind = body.get("type")
    if kind not in TYPES:
        raise bad_request(f"type must be one of {', '.join(TYPES)}", "type")
    unknown = sorted(set(body) - FIELDS[kind])
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} for a {kind} trigger", unknown[0])
    if kind == "http":
        for key in ("webhook", "rotate_webhook"):
            if not isinstance(body.get(key, False), bool):
                raise bad_request(f"{key} must be true or false", key)
        return kind, {}
    if kind == "schedule":
        cron = body.get("cron")
        if not isinstance(cron, str):
            raise bad_request("cron must be a cron expression such as '*/5 * * * *'", "cron")
        timezone = _str(body, "timezone", "UTC")
        try:
            CronSchedule.parse(cron, timezone)
        except CronError as exc:
            field = "timezone" if "timezone" in str(exc).lower() else "cron"
            raise bad_request(str(exc), field) from None
        payload = body.get("payload", {})
        if not isinstance(payload, dict):
            raise bad_request("payload must be a JSON object", "payload")
        return kind, {"cron": cron, "timezone": timezone, "payload": payload}
    bucket = body.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        raise bad_request("bucket must name a bucket", "bucket")
    events = body.get("events", ["created"])
    if not isinstance(events, list) or not events or any(e not in BUCKET_EVENTS for e in events):
        raise bad_request(f"events must be a non-empty list of {BUCKET_EVENTS}", "events")
    return kind, {
        "bucket": bucket,
        "events": sorted(set(events)),
        "prefix": _str(body, "prefix", ""),
        "suffix": _str(body, "suffix", ""),
    }


def rule_fields(body: Any) -> tuple[str, str, bool]:
    """Validate a rule body: (trigger, function, enabled)."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", "body")
    unknown = sorted(set(body) - {"trigger", "function", "enabled"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}", unknown[0])
    trigger = body.get("trigger")
    function = body.get("function")
    if not isinstance(trigger, str):
        raise bad_request("trigger must name a trigger", "trigger")
    if not isinstance(function, str):
        raise bad_request("function must name a function", "function")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise bad_request("enabled must be true or false", "enabled")
    name, qualifier = split_target(function)
    check_name(name, "function")
    if qualifier is not None:
        try:
            parse_qualifier(qualifier)
        except VersionError as exc:
            raise bad_request(str(exc), "function") from None
    return check_name(trigger, "trigger"), function, enabled


def new_webhook_secret() -> str:
    """A fresh webhook secret (shown once)."""
    return "whk_" + secrets.token_urlsafe(24)


def bucket_matches(trigger: Trigger, event: Mapping[str, Any]) -> bool:
    """Does an object event pass a bucket trigger's filters?"""
    config = trigger.config
    kind = str(event.get("type", "")).removeprefix("object.")
    key = str(event.get("key", ""))
    return (
        event.get("bucket") == config.get("bucket")
        and kind in config.get("events", ["created"])
        and key.startswith(str(config.get("prefix", "")))
        and key.endswith(str(config.get("suffix", "")))
    )


def s3_events(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Object events from an S3 / MinIO event notification, or None if it is not one."""
    records = body.get("Records")
    if not isinstance(records, list):
        return None
    out = []
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
            continue
        s3 = record["s3"]
        bucket = s3.get("bucket")
        bucket = bucket.get("name") if isinstance(bucket, dict) else None
        obj = s3.get("object")
        if not isinstance(bucket, str) or not isinstance(obj, dict):
            continue
        if not isinstance(obj.get("key"), str):
            continue
        name = str(record.get("eventName", ""))
        kind = "object.deleted" if "ObjectRemoved" in name else "object.created"
        out.append(
            {
                "type": kind,
                "bucket": bucket,
                # S3 sends keys URL-encoded, with '+' for spaces.
                "key": urllib.parse.unquote_plus(obj["key"]),
                "size": obj.get("size"),
                "etag": obj.get("eTag") or obj.get("etag"),
                "time": record.get("eventTime"),
                "source": str(record.get("eventSource", "s3")),
            }
        )
    return out


@dataclass
class TriggerEngine:
    """Fires triggers: every enabled rule gets an async activation."""

    store: Store
    calls: Operations
    wall: Callable[[], float] = time.time

    async def fire(self, trigger: Trigger, event: Mapping[str, Any]) -> list[str]:
        """Submit one async call per enabled rule of `trigger`; returns activation ids.

        Raises a 429 ApiError, enqueueing nothing, when the tenant's backlog has no room
        for them all: whoever fired it (an API call, a webhook) is told to retry.
        """
        return await self.fire_events(trigger, [event])

    async def fire_events(self, trigger: Trigger, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """Fire `trigger` once per event, all or nothing (429 past the tenant's backlog)."""
        try:
            return await self._submit(trigger, events)
        except BacklogFull as exc:
            raise backlog_full(exc) from None

    async def _submit(self, trigger: Trigger, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """One async call per enabled rule and event, in one transaction. Raises BacklogFull."""
        specs = []
        for rule in await self.store.list_rules(trigger.tenant, trigger.name):
            if not rule.enabled:
                continue
            try:  # a rule may name `fn:version` or `fn:alias`: resolved at each firing
                resolved = await self.calls.resolve_target(trigger.tenant, rule.function)
            except LookupError:
                resolved = None
            if resolved is None:
                log.warning("rule %s names a missing function %s", rule.name, rule.function)
                continue
            specs.append(resolved.function.spec)
        calls = [(spec, event) for event in events for spec in specs]
        return await self.calls.submit_many(calls, trigger=trigger.name)

    async def _fire_unattended(self, trigger: Trigger, event: Mapping[str, Any]) -> None:
        """Fire for a schedule or a bucket event, where nobody waits to be told to retry.

        Past the tenant's backlog the event is dropped: logged, and counted in the store
        (`dropped_trigger_events` of GET /v1/tenants/{name}/limits).
        """
        try:
            await self._submit(trigger, [event])
        except BacklogFull as exc:
            log.warning("dropped an event of trigger %s: %s", trigger.name, exc)
            await self.store.add_dropped_events(trigger.tenant, 1, self.wall())

    async def object_event(self, tenant: str, event: dict[str, Any]) -> None:
        """An object changed in a tenant's bucket: fire the matching bucket triggers."""
        for trigger in await self.store.list_triggers(tenant, "bucket"):
            if bucket_matches(trigger, event):
                await self._fire_unattended(trigger, event)

    async def run_schedules(self, now: float) -> int:
        """Fire every schedule trigger with a slot due; returns how many fired."""
        fired = 0
        moment = datetime.fromtimestamp(now, tz=UTC)
        for trigger in await self.store.list_triggers(None, "schedule"):
            try:
                schedule = CronSchedule.parse(
                    str(trigger.config["cron"]), str(trigger.config.get("timezone", "UTC"))
                )
            except (CronError, KeyError):
                continue
            last = trigger.last_fire if trigger.last_fire is not None else trigger.created
            slot = schedule.due(datetime.fromtimestamp(last, tz=UTC), moment)
            if slot is None:
                continue
            # Claim the slot first: after a crash in between, a fire is skipped, never doubled;
            # another gateway (or a later slot) that claimed it already wins.
            if not await self.store.mark_fired(trigger.tenant, trigger.name, slot.timestamp()):
                continue
            event = {
                "type": "schedule.fired",
                "trigger": trigger.name,
                "scheduled_time": slot.isoformat().replace("+00:00", "Z"),
                "payload": trigger.config.get("payload", {}),
            }
            await self._fire_unattended(trigger, event)
            fired += 1
        return fired

    async def schedule_loop(self, interval_s: float = 1.0) -> None:
        """Run due schedules forever (cancel to stop)."""
        while True:
            try:
                await self.run_schedules(self.wall())
            except Exception:
                log.exception("running schedules failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.sleep(interval_s)


def make_trigger(
    tenant: str,
    name: str,
    kind: str,
    config: dict[str, Any],
    secret_hash: str | None,
    now: float,
) -> Trigger:
    """A trigger record ready to store."""
    return Trigger(
        tenant=tenant,
        name=name,
        type=kind,
        config=config,
        secret_hash=secret_hash,
        last_fire=None,
        created=now,
        updated=now,
    )


def make_rule(
    tenant: str, name: str, trigger: str, function: str, enabled: bool, now: float
) -> Rule:
    """A rule record ready to store."""
    return Rule(
        tenant=tenant,
        name=name,
        trigger=trigger,
        function=function,
        enabled=enabled,
        created=now,
        updated=now,
    )
