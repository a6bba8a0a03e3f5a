"""`nimbus functions ...`: list, get (with its code), delete, versions and aliases.

`nimbus functions` alone lists, as before; `deploy` and `invoke` are there too. `get
--code` downloads a version's code as it was deployed (`GET /v1/functions/{name}/code`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli import views
from gateway.cli.api_commands import add_deploy, add_invoke
from gateway.cli.client import Client, expect
from gateway.cli.errors import UsageError
from gateway.cli.grammar import Sub, command, group, listing_command
from gateway.cli.session import client, emit, terminal_width
from invoker.versions import MAX_SPLIT_VERSIONS

STDOUT = "-"


def _base(name: str) -> str:
    return f"/v1/functions/{name}"


def cmd_list(args: argparse.Namespace) -> int:
    """List the caller's functions."""
    payload = client(args).get("/v1/functions")
    return emit(args, payload, lambda p: views.functions(p, terminal_width()))


def cmd_get(args: argparse.Namespace) -> int:
    """Show a function (or one of its versions); `--code` writes its code."""
    session = client(args)
    if args.code is not None:
        return _write_code(session, args.name, args.code, args.function_version)
    path = _base(args.name)
    if args.function_version is not None:
        path += f"/versions/{args.function_version}"
    return emit(args, session.get(path), lambda p: views.record(p, terminal_width()))


def _write_code(session: Client, name: str, target: str, version: str | None) -> int:
    """Write a version's code as it was deployed (a source file or a zip) to `target`."""
    path = f"{_base(name)}/code" + (f"?version={version}" if version is not None else "")
    if target == STDOUT:
        session.download(path, sys.stdout.buffer, lambda size: lambda n: None)
        sys.stdout.flush()
        return 0
    with Path(target).open("wb") as sink:
        written = session.download(path, sink, lambda size: lambda n: None)
    print(f"wrote {name}'s code ({written} bytes) to {target}", file=sys.stderr)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a function with all its versions."""
    answer = expect(client(args).call("DELETE", _base(args.name)), 200)
    return emit(args, answer, lambda a: [f"deleted {a['deleted']}"])


def cmd_versions(args: argparse.Namespace) -> int:
    """A function's versions, newest first."""
    payload = client(args).get(_base(args.name) + "/versions")
    return emit(args, payload, lambda p: views.versions(p, terminal_width()))


def split_body(version: str | None, split: str | None) -> dict[str, Any]:
    """An alias's PUT body: `{"version": 3}`, or from `--split 3=0.9,4=0.1` a weighted
    `{"versions": {"3": 0.9, "4": 0.1}}` (the gateway checks the weights' sum)."""
    if (version is None) == (split is None):
        raise UsageError("give a VERSION or --split V=W,V=W, not both")
    if version is not None:
        if not version.isdigit() or int(version) < 1:
            raise UsageError(f"VERSION is a whole number from 1, got {version!r}")
        return {"version": int(version)}
    assert split is not None
    weights: dict[str, float] = {}
    for part in split.split(","):
        number, sep, weight = part.strip().partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not number.isdigit() or not 0 < value <= 1:
            raise UsageError(f"--split takes VERSION=WEIGHT pairs like 3=0.9,4=0.1, got {part!r}")
        weights[str(int(number))] = value
    if len(weights) > MAX_SPLIT_VERSIONS:
        raise UsageError(f"an alias splits at most {MAX_SPLIT_VERSIONS} versions")
    return {"versions": weights}


def cmd_alias_set(args: argparse.Namespace) -> int:
    """Point an alias at a version, or split it between versions."""
    body = split_body(args.version, args.split)
    reply = client(args).call("PUT", f"{_base(args.name)}/aliases/{args.alias}", body)
    alias = expect(reply, 200, 201)
    verb = "created" if reply.status == 201 else "moved"
    return emit(args, alias, lambda a: [f"{verb} {args.name}:{a['name']} -> {views.split_text(a)}"])


def cmd_alias_list(args: argparse.Namespace) -> int:
    """A function's aliases."""
    payload = client(args).get(_base(args.name) + "/aliases")
    return emit(args, payload, lambda p: views.aliases(p, terminal_width()))


def cmd_alias_delete(args: argparse.Namespace) -> int:
    """Delete an alias (its versions stay)."""
    reply = client(args).call("DELETE", f"{_base(args.name)}/aliases/{args.alias}")
    answer = expect(reply, 200)
    return emit(args, answer, lambda a: [f"deleted {args.name}:{a['deleted']}"])


def add_commands(sub: Sub) -> None:
    """`functions` and its sub-commands."""
    verbs = listing_command(
        sub,
        "functions",
        cmd_list,
        "functions: list (the default), get, delete, versions, alias, deploy, invoke",
        [
            "nimbus functions",
            "nimbus functions get hello --code hello.py",
            "nimbus functions versions hello",
            "nimbus functions alias set hello prod 3",
            "nimbus functions alias set hello prod --split 3=0.9,4=0.1",
            "nimbus functions delete hello",
        ],
        alias="fn",
        what="your functions",
    )
    get = command(
        verbs,
        "get",
        cmd_get,
        "show a function, one of its versions, or its code",
        [
            "nimbus functions get hello",
            "nimbus functions get hello --version 2",
            "nimbus functions get hello --code > main.py",
        ],
    )
    get.add_argument("name")
    get.add_argument("--version", dest="function_version", type=int, help="this version's record")
    get.add_argument(
        "--code",
        nargs="?",
        const=STDOUT,
        metavar="FILE",
        help="write the latest version's code (source, or the zip) to FILE (default: stdout)",
    )
    delete = command(
        verbs,
        "delete",
        cmd_delete,
        "delete a function and all its versions",
        ["nimbus functions delete hello"],
        aliases=["rm"],
    )
    delete.add_argument("name")
    vers = command(
        verbs,
        "versions",
        cmd_versions,
        "list a function's versions",
        ["nimbus functions versions hello --json"],
    )
    vers.add_argument("name")
    _add_alias_commands(verbs)
    add_deploy(verbs)
    add_invoke(verbs)


def _add_alias_commands(verbs: Sub) -> None:
    alias = command(
        verbs,
        "alias",
        None,
        "a function's aliases: set, list, delete",
        ["nimbus functions alias set hello prod 3", "nimbus functions alias list hello"],
    )
    alias_verbs = group(alias, "alias_command")
    put = command(
        alias_verbs,
        "set",
        cmd_alias_set,
        "create or move an alias (rollback: move it back)",
        [
            "nimbus functions alias set hello prod 3",
            "nimbus functions alias set hello canary --split 3=0.9,4=0.1",
        ],
    )
    put.add_argument("name")
    put.add_argument("alias")
    put.add_argument("version", nargs="?", help="the version the alias names")
    put.add_argument("--split", metavar="V=W,V=W", help="weights per version, summing to 1")
    listing = command(
        alias_verbs,
        "list",
        cmd_alias_list,
        "list a function's aliases",
        ["nimbus functions alias list hello"],
        aliases=["ls"],
    )
    listing.add_argument("name")
    remove = command(
        alias_verbs,
        "delete",
        cmd_alias_delete,
        "delete an alias",
        ["nimbus functions alias delete hello canary"],
        aliases=["rm"],
    )
    remove.add_argument("name")
    remove.add_argument("alias")
