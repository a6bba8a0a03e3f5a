"""`nimbus deploy` and `nimbus invoke`: a function uploaded, a function called.

Each builds one request, sends it with the command line's `Client`, and prints the answer
with `output`; any status but the expected one is the gateway's error on one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli import output
from gateway.cli.client import expect
from gateway.cli.errors import CliError, UsageError
from gateway.cli.events import build_event
from gateway.cli.grammar import Sub, command
from gateway.cli.packaging import PackagingError, package_code
from gateway.cli.session import client, emit
from invoker.runtimes import runtime_for_path, runtime_named


def _progress(line: str) -> None:
    # Packaging progress goes to stderr: stdout carries only the command's answer.
    print(line, file=sys.stderr, flush=True)


def deploy_runtime(path: Path, named: str | None) -> tuple[str, str]:
    """(runtime, family) a deploy is for: the one named, else the one the path's file
    suffix or project file (package.json) says (`invoker.runtimes.runtime_for_path`)."""
    if named is not None:
        found = runtime_named(named)
        # A runtime this CLI does not know may be the gateway's: its code goes as is.
        return named, found.family if found is not None else ""
    files = frozenset(p.name for p in path.iterdir()) if path.is_dir() else frozenset()
    runtime = runtime_for_path(path.suffix, files)
    return runtime.name, runtime.family


def _deploy_source(args: argparse.Namespace) -> dict[str, Any]:
    """What the function runs: code packaged from PATH, or `--image` from the engine."""
    if (args.path is None) == (args.image is None):
        raise UsageError("give a PATH to deploy code, or --image IMAGE, not both")
    if args.image is not None:
        if args.runtime not in (None, "image"):
            raise UsageError("--runtime does not go with --image: the image is the runtime")
        return {"image": args.image, **({"handler": args.handler} if args.handler else {})}
    path = Path(args.path)
    runtime, family = deploy_runtime(path, args.runtime)
    try:
        code = package_code(path, _progress, family=family)
    except PackagingError as exc:
        raise CliError(str(exc)) from exc
    return {"runtime": runtime, **({"handler": args.handler} if args.handler else {}), "code": code}


def cmd_deploy(args: argparse.Namespace) -> int:
    """Upload a function from a file or directory, or name an image to run."""
    body: dict[str, Any] = {
        **_deploy_source(args),
        "memory_mb": args.memory,
        "timeout_s": args.timeout,
        "concurrency": args.concurrency,
        "network": args.network,
        "env": dict(env_pair(item) for item in args.env),
    }
    reply = client(args).call("PUT", f"/v1/functions/{args.name}", body)
    function = expect(reply, 200, 201)
    return emit(args, function, lambda f: [output.deployed(reply.status, f)])


def env_pair(item: str) -> tuple[str, str]:
    """`--env KEY=VALUE` as a (key, value) pair; the value may hold `=` itself."""
    key, sep, value = item.partition("=")
    if not sep:
        raise UsageError(f"--env takes KEY=VALUE, got {item!r}")
    return key, value


def cmd_invoke(args: argparse.Namespace) -> int:
    """Invoke a function and print its result (or, `--async`, the activation's id)."""
    event = build_event(args.event, args.file, args.param, sys.stdin)
    query = {
        "async": "true" if args.run_async else None,
        "version": args.function_version,
        "alias": args.alias,
    }
    reply = client(args).call("POST", f"/v1/functions/{args.name}/invoke", event, query=query)
    if args.run_async:
        accepted = expect(reply, 202)
        return emit(args, accepted, lambda a: [output.accepted(a)])
    print(output.as_json(expect(reply, 200)))
    if args.verbose:
        print(output.invoke_details(reply.headers), file=sys.stderr)
    return 0


def add_deploy(sub: Sub) -> None:
    """`deploy NAME PATH` and its flags."""
    deploy = command(
        sub,
        "deploy",
        cmd_deploy,
        "create or update a function (each deploy is a new version)",
        [
            "nimbus deploy hello functions/hello/main.py --handler main.handler",
            "nimbus deploy resize functions/image_resize --memory 512 --timeout 60",
            "nimbus deploy hello-node functions/hello-node/main.js",
            "nimbus deploy web-thing --image my-server:1.0",
        ],
    )
    deploy.add_argument("name")
    deploy.add_argument(
        "path",
        nargs="?",
        help="a .py or .js file, a .zip, or a directory (a Node.js one with package.json)",
    )
    deploy.add_argument(
        "--image",
        help="run this image of the local engine instead of code (docs/runtimes.md; "
        "`nimbus images import FILE.tar` loads one)",
    )
    deploy.add_argument(
        "--handler",
        help="module.function (Node.js: function or module.function); default: the runtime's",
    )
    deploy.add_argument(
        "--runtime",
        help="e.g. python:3.11 or nodejs:18; default: nodejs:18 for a .js file or a directory "
        "with package.json, else python:3.11",
    )
    deploy.add_argument("--memory", type=int, default=128, help="MB (128-4096)")
    deploy.add_argument("--timeout", type=float, default=30, help="seconds (1-900)")
    deploy.add_argument("--concurrency", type=int, default=1)
    deploy.add_argument("--network", action="store_true", help="give the function network")
    deploy.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")


def add_invoke(sub: Sub) -> None:
    """`invoke NAME [EVENT]` and its flags."""
    inv = command(
        sub,
        "invoke",
        cmd_invoke,
        "invoke a function",
        [
            'nimbus invoke hello \'{"name": "Ada"}\'',
            "nimbus invoke hello --param name=Ada --param times=3",
            "nimbus invoke hello --file event.json --alias prod",
            "echo '{\"n\": 1}' | nimbus invoke hello -",
            "nimbus invoke hello --async --json | jq -r .activation_id",
        ],
    )
    inv.add_argument("name", help="NAME, or NAME:VERSION / NAME:ALIAS")
    inv.add_argument("event", nargs="?", default="", help="JSON object, or - to read stdin")
    inv.add_argument("-v", "--verbose", action="store_true", help="print activation details")
    inv.add_argument("--file", "-f", help="read the event from this JSON file (- for stdin)")
    inv.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a field of the event (VALUE as JSON when it parses, else a string)",
    )
    inv.add_argument(
        "--async", dest="run_async", action="store_true", help="queue it; print the activation id"
    )
    which = inv.add_mutually_exclusive_group()
    which.add_argument("--version", dest="function_version", type=int, help="run this version")
    which.add_argument("--alias", help="run the version this alias names")
