"""The `nimbus` command line: its grammar, and running the command it names.

Each group of commands registers itself (`add_commands` in its module); this module
holds the top: `--version`, the connection flags, `serve`, `images`, `completion`, and
how a failure becomes one line on stderr and an exit status (errors.py lists them).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from gateway.cli import (
    activation_commands,
    admin_commands,
    bucket_commands,
    function_commands,
    login_commands,
    trigger_commands,
)
from gateway.cli.api_commands import add_deploy, add_invoke
from gateway.cli.completion import bash_script
from gateway.cli.errors import CliError, ExitCode
from gateway.cli.grammar import add_connection_flags, command, group
from gateway.cli.images import cmd_images_build, cmd_images_import
from gateway.cli.serve import add_serve_command

EPILOG = """\
examples:
  nimbus login http://127.0.0.1:8080
  nimbus deploy hello functions/hello/main.py --handler main.handler
  nimbus invoke hello --param name=Ada
  nimbus logs hello --follow
  nimbus functions --json | jq '.functions[].name'

The gateway and key: --url/--key, else $NIMBUS_URL/$NIMBUS_API_KEY, else `nimbus login`.
Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 auth, 5 unreachable, 6 the function
failed, 130 interrupted. docs/cli.md has every command."""


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("nimbus")
    except metadata.PackageNotFoundError:
        return "unknown"


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(
        prog="nimbus",
        description="Nimbus serverless platform",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"nimbus {version()}")
    add_connection_flags(p, top=True)
    sub = group(p, "command")

    add_serve_command(sub)
    images = command(sub, "images", None, "runtime images", ["nimbus images build"], api=False)
    images_sub = group(images, "images_command")
    build = command(
        images_sub,
        "build",
        cmd_images_build,
        "build the runtime images",
        ["nimbus images build --force"],
        api=False,
    )
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    load = command(
        images_sub,
        "import",
        cmd_images_import,
        "load an image tarball (`docker save`) into every engine of the pool",
        ["nimbus images import fn.tar", "nimbus images import fn.tar --docker-hosts hosts.toml"],
        api=False,
    )
    load.add_argument("file", help="the tarball")
    load.add_argument(
        "--docker-hosts", default="", help="also these engines (default $NIMBUS_DOCKER_HOSTS)"
    )

    login_commands.add_commands(sub)
    add_deploy(sub)
    add_invoke(sub)
    function_commands.add_commands(sub)
    activation_commands.add_commands(sub)
    trigger_commands.add_trigger_commands(sub)
    trigger_commands.add_rule_commands(sub)
    bucket_commands.add_commands(sub)
    admin_commands.add_commands(sub)

    completion = command(
        sub,
        "completion",
        None,
        "print a shell completion script",
        [
            "source <(nimbus completion bash)",
            "nimbus completion bash > /etc/bash_completion.d/nimbus",
        ],
        api=False,
    )
    completion.add_argument("shell", choices=["bash"])
    completion.set_defaults(func=lambda args: _print(bash_script(parser())))
    return p


def _print(text: str) -> int:
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nimbus` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"nimbus: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `nimbus activations | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's last flush does not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    return code
