"""Helpers the command modules build the grammar with: the flags every command that
talks to a gateway takes, and sub-commands whose `--help` ends with examples."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TypeAlias

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]


def add_connection_flags(p: argparse.ArgumentParser, *, top: bool) -> None:
    """`--json`, `--url`, `--key`: on the top parser with their defaults, on each command
    without one (SUPPRESS), so `nimbus --json functions` and `nimbus functions --json`
    both work and a command's absent flag never hides the top one."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--json", action="store_true", default=default(False), help="print the API's JSON"
    )
    p.add_argument(
        "--url", default=default(None), help="gateway URL (else $NIMBUS_URL, the saved login)"
    )
    p.add_argument(
        "--key", default=default(None), help="API key (else $NIMBUS_API_KEY, the saved login)"
    )


def examples_epilog(examples: Sequence[str]) -> str | None:
    """The `examples:` block of a command's --help."""
    if not examples:
        return None
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def command(
    sub: Sub,
    name: str,
    handler: Handler | None,
    help: str,
    examples: Sequence[str] = (),
    *,
    aliases: Sequence[str] = (),
    api: bool = True,
) -> argparse.ArgumentParser:
    """A sub-command running `handler`, with the connection flags unless `api` is False."""
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=help[:1].upper() + help[1:] + ".",
        epilog=examples_epilog(examples),
        aliases=list(aliases),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if api:
        add_connection_flags(p, top=False)
    if handler is not None:
        p.set_defaults(func=handler)
    return p


def group(parent: argparse.ArgumentParser, dest: str, required: bool = True) -> Sub:
    """The sub-commands of a command (`nimbus triggers create ...`)."""
    sub: Sub = parent.add_subparsers(dest=dest, required=required, metavar="COMMAND")
    return sub


def listing_command(
    sub: Sub,
    name: str,
    listing: Handler,
    help: str,
    examples: Sequence[str],
    *,
    alias: str,
    what: str,
) -> Sub:
    """A resource's command (`nimbus triggers`), which lists `what` when given no verb, with
    its `list` (`ls`) verb doing the same: the group its other verbs are added to."""
    top = command(sub, name, listing, help, examples, aliases=[alias])
    verbs = group(top, f"{name}_command", required=False)
    command(verbs, "list", listing, f"list {what}", [f"nimbus {name} list --json"], aliases=["ls"])
    return verbs
