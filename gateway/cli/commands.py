"""The `nimbus` command line: its grammar, and running the command it names."""

from __future__ import annotations

import argparse
import sys

from gateway.cli import api_commands as api
from gateway.cli.errors import CliError
from gateway.cli.images import cmd_images_build
from gateway.cli.serve import add_serve_command


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="nimbus", description="Nimbus serverless platform")
    sub = p.add_subparsers(dest="command", required=True)

    add_serve_command(sub)

    images = sub.add_parser("images", help="runtime images")
    images_sub = images.add_subparsers(dest="images_command", required=True)
    build = images_sub.add_parser("build", help="build the runtime images")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(func=cmd_images_build)

    deploy = sub.add_parser("deploy", help="create or update a function")
    deploy.add_argument("name")
    deploy.add_argument("path", help="a .py file, a .zip, or a directory")
    deploy.add_argument("--handler", required=True, help="module.function")
    deploy.add_argument("--runtime", default="python:3.11")
    deploy.add_argument("--memory", type=int, default=128, help="MB (128-4096)")
    deploy.add_argument("--timeout", type=float, default=30, help="seconds (1-900)")
    deploy.add_argument("--concurrency", type=int, default=1)
    deploy.add_argument("--network", action="store_true", help="give the function network")
    deploy.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    deploy.set_defaults(func=api.cmd_deploy)

    inv = sub.add_parser("invoke", help="invoke a function")
    inv.add_argument("name")
    inv.add_argument("event", nargs="?", default="", help="JSON object")
    inv.add_argument("-v", "--verbose", action="store_true", help="print activation details")
    inv.set_defaults(func=api.cmd_invoke)

    fns = sub.add_parser("functions", help="list functions")
    fns.set_defaults(func=api.cmd_functions)

    acts = sub.add_parser("activations", help="list recent activations")
    acts.add_argument("--function")
    acts.add_argument("--limit", type=int, default=20)
    acts.set_defaults(func=api.cmd_activations)

    act = sub.add_parser("activation", help="show one activation with its logs")
    act.add_argument("id")
    act.set_defaults(func=api.cmd_activation)

    bill = sub.add_parser("bill", help="your bill, per function or per day")
    bill.add_argument("--from", dest="since", help="ISO date/datetime or epoch seconds")
    bill.add_argument("--to", dest="until", help="ISO date/datetime or epoch seconds")
    bill.add_argument("--by", default="function", choices=["function", "day"])
    bill.add_argument("--csv", action="store_true", help="print CSV")
    bill.set_defaults(func=api.cmd_bill)

    tenant = sub.add_parser("tenant", help="tenants (admin)")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_sub.add_parser("create", help="create a tenant and print its key")
    create.add_argument("name")
    create.set_defaults(func=api.cmd_tenant_create)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nimbus` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"nimbus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
