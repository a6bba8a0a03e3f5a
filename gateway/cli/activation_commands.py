"""`nimbus activations`, `nimbus activation ID` and `nimbus logs FUNCTION`.

The API lists newest first, by function, a page at a time; `--since` and `--status` are
applied here, paging on until the listing passes `since` or `--limit` matches are found.
`--follow` polls (follow.py) until Ctrl-C, which ends it with status 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from gateway.cli import views
from gateway.cli.client import Client
from gateway.cli.follow import Activation, Filter, Tracker, poll
from gateway.cli.grammar import Sub, command
from gateway.cli.output import as_json
from gateway.cli.session import client, emit, terminal_width, wants_json
from gateway.cli.timeparse import parse_since

PAGE = 100  # records a filtered listing or a poll reads at once
MAX_PAGES = 50  # a filtered listing reads at most this many pages
STATUSES = ["pending", "running", "success", "application_error", "timeout", "platform_error"]


def listing_filter(args: argparse.Namespace, now: float) -> Filter:
    """`--since` and `--status` as a Filter."""
    since = parse_since(args.since, now) if args.since else None
    return Filter(since=since, status=args.status)


def collect(session: Client, function: str | None, limit: int, flt: Filter) -> list[Activation]:
    """Up to `limit` activations passing `flt`, newest first."""
    filtering = flt.since is not None or flt.status is not None
    query: dict[str, Any] = {
        "function": function,
        "limit": max(limit, PAGE) if filtering else limit,
    }
    found: list[Activation] = []
    for _ in range(MAX_PAGES):
        page = session.get("/v1/activations", query)
        for a in page["activations"]:
            if flt.older(a):
                return found
            if flt.keeps(a):
                found.append(a)
                if len(found) >= limit:
                    return found
        if not filtering or not page.get("next"):
            return found
        query["cursor"] = page["next"]
    return found


def _follow(
    args: argparse.Namespace, flt: Filter, show_one: Callable[[Activation], list[str]]
) -> int:
    session = client(args)
    query = {"function": args.function, "limit": PAGE}

    def show(batch: Iterable[Activation]) -> None:
        for a in batch:
            for line in show_one(a):
                print(line, flush=True)

    def ready() -> None:
        print("nimbus: following; Ctrl-C to stop", file=sys.stderr, flush=True)

    try:
        poll(
            lambda: session.get("/v1/activations", query)["activations"],
            show,
            Tracker(flt),
            args.interval,
            ready=ready,
        )
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a follow ends
    return 0


def _compact(a: Activation) -> list[str]:
    return [json.dumps(a, sort_keys=True)]


def cmd_activations(args: argparse.Namespace) -> int:
    """List recent activations, or follow new ones."""
    flt = listing_filter(args, time.time())
    if args.follow:
        return _follow(args, flt, _compact if wants_json(args) else views.activation_line)
    found = collect(client(args), args.function, args.limit, flt)
    return emit(args, {"activations": found}, lambda p: views.activations(p, terminal_width()))


def cmd_logs(args: argparse.Namespace) -> int:
    """A function's logs, oldest first, each line after its activation's id."""
    flt = listing_filter(args, time.time())
    if args.follow:
        return _follow(args, flt, _compact if wants_json(args) else views.log_lines)
    found = collect(client(args), args.function, args.limit, flt)

    def lines(payload: dict[str, Any]) -> list[str]:
        return [line for a in reversed(payload["activations"]) for line in views.log_lines(a)]

    return emit(args, {"activations": found}, lines)


def cmd_activation(args: argparse.Namespace) -> int:
    """Show one activation (or only its result, or only its logs)."""
    found = client(args).get(f"/v1/activations/{args.id}")
    if args.result:
        print(
            as_json(
                found.get("result") if found.get("error") is None else {"error": found["error"]}
            )
        )
        return 0
    if args.logs:
        return emit(args, found.get("logs") or [], lambda logs: list(logs))
    print(as_json(found))
    return 0


def _listing_flags(p: argparse.ArgumentParser, limit: int) -> None:
    p.add_argument("--limit", type=int, default=limit, help=f"at most this many (default {limit})")
    p.add_argument("--since", help="only from then: 30s, 10m, 2h, 1d, an ISO time, epoch seconds")
    p.add_argument("--status", choices=STATUSES, help="only activations that ended so")
    p.add_argument(
        "--follow", "-f", action="store_true", help="print new ones as they finish, until Ctrl-C"
    )
    p.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls (0.5-60, default 2)"
    )


def add_commands(sub: Sub) -> None:
    """`activations`, `activation`, `logs`."""
    acts = command(
        sub,
        "activations",
        cmd_activations,
        "list recent activations, or follow new ones",
        [
            "nimbus activations --function hello --limit 5",
            "nimbus activations --since 1h --status application_error",
            "nimbus activations --follow",
        ],
    )
    acts.add_argument("--function")
    _listing_flags(acts, 20)
    act = command(
        sub,
        "activation",
        cmd_activation,
        "show one activation with its logs",
        [
            "nimbus activation 3f2a...",
            "nimbus activation 3f2a... --result",
            "nimbus activation 3f2a... --logs",
        ],
    )
    act.add_argument("id")
    only = act.add_mutually_exclusive_group()
    only.add_argument("--result", action="store_true", help="only its result (or its error)")
    only.add_argument("--logs", action="store_true", help="only its log lines")
    logs = command(
        sub,
        "logs",
        cmd_logs,
        "a function's logs, oldest first",
        ["nimbus logs hello --since 10m", "nimbus logs hello --follow"],
    )
    logs.add_argument("function")
    _listing_flags(logs, 20)
