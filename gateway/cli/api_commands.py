"""The commands that talk to a running gateway: deploy, invoke, list, bill, tenants.

Each builds one request, sends it with `client`, and prints the answer with `output`;
any status but the expected one is the gateway's error on one line (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from gateway.cli import output
from gateway.cli.client import call, expect
from gateway.cli.errors import CliError
from gateway.cli.packaging import PackagingError, package_code


def _progress(line: str) -> None:
    # Packaging progress goes to stderr: stdout carries only the command's answer.
    print(line, file=sys.stderr, flush=True)


def cmd_deploy(args: argparse.Namespace) -> int:
    """Upload a function from a file or directory."""
    try:
        code = package_code(Path(args.path), _progress)
    except PackagingError as exc:
        raise CliError(str(exc)) from exc
    body: dict[str, Any] = {
        "runtime": args.runtime,
        "handler": args.handler,
        "code": code,
        "memory_mb": args.memory,
        "timeout_s": args.timeout,
        "concurrency": args.concurrency,
        "network": args.network,
        "env": dict(env_pair(item) for item in args.env),
    }
    reply = call("PUT", f"/v1/functions/{args.name}", body)
    print(output.deployed(reply.status, expect(reply, 200, 201)))
    return 0


def env_pair(item: str) -> tuple[str, str]:
    """`--env KEY=VALUE` as a (key, value) pair; the value may hold `=` itself."""
    key, sep, value = item.partition("=")
    if not sep:
        raise CliError(f"--env takes KEY=VALUE, got {item!r}")
    return key, value


def cmd_invoke(args: argparse.Namespace) -> int:
    """Invoke a function and print its result."""
    try:
        event = json.loads(args.event) if args.event else {}
    except ValueError as exc:
        raise CliError(f"the event is not valid JSON: {exc}") from exc
    reply = call("POST", f"/v1/functions/{args.name}/invoke", event)
    print(output.as_json(expect(reply, 200)))
    if args.verbose:
        print(output.invoke_details(reply.headers), file=sys.stderr)
    return 0


def cmd_functions(args: argparse.Namespace) -> int:
    """List the caller's functions."""
    for f in expect(call("GET", "/v1/functions"), 200)["functions"]:
        print(output.function_row(f))
    return 0


def cmd_activations(args: argparse.Namespace) -> int:
    """List recent activations."""
    query = f"?limit={args.limit}" + (f"&function={args.function}" if args.function else "")
    for a in expect(call("GET", f"/v1/activations{query}"), 200)["activations"]:
        print(output.activation_row(a))
    return 0


def cmd_activation(args: argparse.Namespace) -> int:
    """Show one activation with its logs."""
    print(output.as_json(expect(call("GET", f"/v1/activations/{args.id}"), 200)))
    return 0


def cmd_bill(args: argparse.Namespace) -> int:
    """Print the caller's bill as a table (or CSV)."""
    query = urllib.parse.urlencode(
        {k: v for k, v in (("from", args.since), ("to", args.until), ("group_by", args.by)) if v}
    )
    if args.csv:
        print(expect(call("GET", f"/v1/billing?{query}&format=csv"), 200), end="")
        return 0
    for line in output.bill_table(expect(call("GET", f"/v1/billing?{query}"), 200), args.by):
        print(line)
    return 0


def cmd_tenant_create(args: argparse.Namespace) -> int:
    """Admin: create a tenant and print its API key once."""
    tenant = expect(call("POST", "/v1/tenants", {"name": args.name}), 201)
    print(f"tenant {tenant['name']} created; API key (shown once): {tenant['api_key']}")
    return 0
