"""`nimbus triggers ...` and `nimbus rules ...`: event sources and what they call.

A trigger's type follows from its flags (`--cron`: schedule, `--bucket`: bucket, else
http). Enabling or disabling a rule re-puts it with `enabled` changed: the API has no
verb of its own for it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.cli import views
from gateway.cli.client import expect
from gateway.cli.errors import UsageError
from gateway.cli.events import build_event, parse_event
from gateway.cli.grammar import Handler, Sub, command, listing_command
from gateway.cli.session import client, emit, terminal_width


def trigger_body(args: argparse.Namespace) -> dict[str, Any]:
    """The PUT body the flags describe (pure)."""
    if args.cron and args.bucket:
        raise UsageError("a trigger is --cron (schedule) or --bucket, not both")
    if args.cron:
        body: dict[str, Any] = {"type": "schedule", "cron": args.cron}
        if args.timezone:
            body["timezone"] = args.timezone
        if args.payload:
            body["payload"] = parse_event(args.payload, "--payload")
        return body
    if args.bucket:
        body = {"type": "bucket", "bucket": args.bucket}
        if args.events:
            body["events"] = [e.strip() for e in args.events.split(",") if e.strip()]
        body.update({k: v for k, v in (("prefix", args.prefix), ("suffix", args.suffix)) if v})
        return body
    if args.timezone or args.payload or args.events or args.prefix or args.suffix:
        raise UsageError("--timezone/--payload need --cron; --events/--prefix/--suffix --bucket")
    body = {"type": "http"}
    if args.webhook:
        body["webhook"] = True
    if args.rotate_webhook:
        body.update(webhook=True, rotate_webhook=True)
    return body


def cmd_trigger_create(args: argparse.Namespace) -> int:
    """Create or replace a trigger (a new webhook URL is shown once)."""
    session = client(args)
    reply = session.call("PUT", f"/v1/triggers/{args.name}", trigger_body(args))
    trigger = expect(reply, 200, 201)
    verb = "created" if reply.status == 201 else "replaced"

    def lines(t: dict[str, Any]) -> list[str]:
        said = [f"{verb} trigger {t['name']} ({t['type']})"]
        if t.get("webhook_url"):
            said.append(f"webhook (shown once): {session.connection.url}{t['webhook_url']}")
        return said

    return emit(args, trigger, lines)


def cmd_trigger_list(args: argparse.Namespace) -> int:
    """List triggers."""
    payload = client(args).get("/v1/triggers")
    return emit(args, payload, lambda p: views.triggers(p, terminal_width()))


def cmd_trigger_get(args: argparse.Namespace) -> int:
    """Show one trigger."""
    found = client(args).get(f"/v1/triggers/{args.name}")
    return emit(args, found, lambda t: views.record(t, terminal_width()))


def cmd_trigger_delete(args: argparse.Namespace) -> int:
    """Delete a trigger and its rules."""
    answer = expect(client(args).call("DELETE", f"/v1/triggers/{args.name}"), 200)
    return emit(args, answer, lambda a: [f"deleted trigger {a['deleted']}"])


def cmd_trigger_fire(args: argparse.Namespace) -> int:
    """Fire a trigger: one async activation per enabled rule."""
    event = build_event(args.event, args.file, args.param, sys.stdin)
    answer = expect(client(args).call("POST", f"/v1/triggers/{args.name}/fire", event), 202)
    return emit(
        args,
        answer,
        lambda a: (
            [f"fired {a['trigger']}: {i}" for i in a["activation_ids"]]
            or [f"fired {a['trigger']}: no enabled rule"]
        ),
    )


def cmd_rule_create(args: argparse.Namespace) -> int:
    """Create or replace a rule."""
    body = {"trigger": args.trigger, "function": args.function, "enabled": not args.disabled}
    reply = client(args).call("PUT", f"/v1/rules/{args.name}", body)
    rule = expect(reply, 200, 201)
    verb = "created" if reply.status == 201 else "replaced"
    return emit(
        args, rule, lambda r: [f"{verb} rule {r['name']}: {r['trigger']} -> {r['function']}"]
    )


def cmd_rule_list(args: argparse.Namespace) -> int:
    """List rules."""
    payload = client(args).get("/v1/rules")
    return emit(args, payload, lambda p: views.rules(p, terminal_width()))


def cmd_rule_get(args: argparse.Namespace) -> int:
    """Show one rule."""
    return emit(args, client(args).get(f"/v1/rules/{args.name}"), lambda r: views.record(r, None))


def cmd_rule_delete(args: argparse.Namespace) -> int:
    """Delete a rule."""
    answer = expect(client(args).call("DELETE", f"/v1/rules/{args.name}"), 200)
    return emit(args, answer, lambda a: [f"deleted rule {a['deleted']}"])


def cmd_rule_switch(args: argparse.Namespace) -> int:
    """Enable or disable a rule (`args.enable`)."""
    session = client(args)
    rule = session.get(f"/v1/rules/{args.name}")
    body = {"trigger": rule["trigger"], "function": rule["function"], "enabled": args.enable}
    updated = expect(session.call("PUT", f"/v1/rules/{args.name}", body), 200, 201)
    state = "enabled" if updated["enabled"] else "disabled"
    return emit(args, updated, lambda r: [f"{state} rule {r['name']}"])


def _event_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("event", nargs="?", default="", help="JSON object, or - to read stdin")
    p.add_argument("--file", "-f", help="read the event from this JSON file (- for stdin)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")


def _get_and_delete(
    verbs: Sub, noun: str, name: str, get: tuple[Handler, str], delete: tuple[Handler, str]
) -> None:
    """`get NAME` and `delete NAME` (`rm`) of `nimbus <noun>`, each a (handler, help);
    `name` is the one their examples use."""
    for verb, (handler, what) in (("get", get), ("delete", delete)):
        one = command(
            verbs,
            verb,
            handler,
            what,
            [f"nimbus {noun} {verb} {name}"],
            aliases=["rm"] if verb == "delete" else [],
        )
        one.add_argument("name")


def add_trigger_commands(sub: Sub) -> None:
    """`triggers` and its sub-commands."""
    verbs = listing_command(
        sub,
        "triggers",
        cmd_trigger_list,
        "triggers: list, create, get, delete, fire",
        ["nimbus triggers", "nimbus triggers create nightly --cron '0 3 * * *'"],
        alias="trigger",
        what="triggers",
    )
    create = command(
        verbs,
        "create",
        cmd_trigger_create,
        "create or replace a trigger",
        [
            "nimbus triggers create orders --webhook",
            "nimbus triggers create nightly --cron '0 3 * * *' --timezone Europe/Paris",
            "nimbus triggers create uploads --bucket photos --events created --suffix .jpg",
        ],
    )
    create.add_argument("name")
    create.add_argument("--webhook", action="store_true", help="http: make a secret webhook URL")
    create.add_argument("--rotate-webhook", action="store_true", help="http: a new webhook URL")
    create.add_argument("--cron", help="schedule: a cron expression or @hourly, @daily, ...")
    create.add_argument("--timezone", help="schedule: an IANA zone (default UTC)")
    create.add_argument("--payload", help="schedule: a JSON object sent with each event")
    create.add_argument("--bucket", help="bucket: the bucket whose object events fire it")
    create.add_argument("--events", help="bucket: created,deleted (default created)")
    create.add_argument("--prefix", help="bucket: only keys starting so")
    create.add_argument("--suffix", help="bucket: only keys ending so")
    _get_and_delete(
        verbs,
        "triggers",
        "nightly",
        (cmd_trigger_get, "show a trigger"),
        (cmd_trigger_delete, "delete a trigger and its rules"),
    )
    fire = command(
        verbs,
        "fire",
        cmd_trigger_fire,
        "fire a trigger with an event",
        ["nimbus triggers fire orders '{\"id\": 7}'", "nimbus triggers fire orders -p id=7"],
    )
    fire.add_argument("name")
    _event_flags(fire)


def add_rule_commands(sub: Sub) -> None:
    """`rules` and its sub-commands."""
    verbs = listing_command(
        sub,
        "rules",
        cmd_rule_list,
        "rules: list, create, get, delete, enable, disable",
        ["nimbus rules", "nimbus rules create on-order orders process-order"],
        alias="rule",
        what="rules",
    )
    create = command(
        verbs,
        "create",
        cmd_rule_create,
        "create or replace a rule",
        [
            "nimbus rules create on-order orders process-order",
            "nimbus rules create paused orders audit --disabled",
        ],
    )
    create.add_argument("name")
    create.add_argument("trigger")
    create.add_argument("function")
    create.add_argument("--disabled", action="store_true", help="create it disabled")
    _get_and_delete(
        verbs,
        "rules",
        "on-order",
        (cmd_rule_get, "show a rule"),
        (cmd_rule_delete, "delete a rule"),
    )
    for name, enable in (("enable", True), ("disable", False)):
        switch = command(
            verbs, name, cmd_rule_switch, f"{name} a rule", [f"nimbus rules {name} on-order"]
        )
        switch.add_argument("name")
        switch.set_defaults(enable=enable)
