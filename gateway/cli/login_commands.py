"""`nimbus login URL` and `nimbus logout`: the gateway and key saved for later commands.

The key is taken from `--key`, else asked for (hidden on a terminal, one line from a
pipe), and checked against the gateway before anything is written.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from gateway.cli.client import Client, expect
from gateway.cli.config import Connection, Saved, config_path, remove, save
from gateway.cli.errors import CliError, ExitCode, UsageError
from gateway.cli.grammar import Sub, command
from gateway.cli.session import emit


def read_key(stdin: TextIO) -> str:
    """The key typed at a hidden prompt, or the first line of piped input."""
    if stdin.isatty():
        return getpass.getpass("API key: ").strip()
    return stdin.readline().strip()


def check_key(url: str, key: str) -> None:
    """Raise unless `key` is accepted at `url` (any caller may list its functions)."""
    reply = Client(Connection(url=url, key=key)).call("GET", "/v1/functions")
    if reply.status in (401, 403):
        raise CliError(
            f"the gateway at {url} refused the key (error {reply.status})", ExitCode.AUTH
        )
    expect(reply, 200)


def cmd_login(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Check the key against the gateway, then save both (0600)."""
    url = args.login_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"URL must start with http:// or https://, got {args.login_url!r}")
    key = args.key or read_key(sys.stdin)
    if not key:
        raise CliError("no API key given", ExitCode.AUTH)
    check_key(url, key)
    path = config_path(env)
    save(path, Saved(url=url, key=key))
    return emit(
        args, {"url": url, "config": str(path)}, lambda _: [f"logged in to {url} (saved in {path})"]
    )


def cmd_logout(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Forget the saved login."""
    path = config_path(env)
    removed = remove(path)
    said = f"logged out (removed {path})" if removed else "not logged in"
    return emit(args, {"removed": removed, "config": str(path)}, lambda _: [said])


def add_commands(sub: Sub) -> None:
    """`login`, `logout`."""
    login = command(
        sub,
        "login",
        cmd_login,
        "save a gateway URL and API key for later commands",
        [
            "nimbus login http://127.0.0.1:8080            # asks for the key",
            "nimbus login https://faas.example.com --key nmb_...",
            'echo "$KEY" | nimbus login https://faas.example.com',
        ],
    )
    login.add_argument("login_url", metavar="URL")
    command(sub, "logout", cmd_logout, "forget the saved login", ["nimbus logout"])
