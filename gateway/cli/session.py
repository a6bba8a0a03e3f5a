"""What every command that talks to a gateway shares: the client its flags, environment
and saved login make, and printing an answer as JSON (`--json`) or for a person."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gateway.cli.client import Client
from gateway.cli.config import Connection, config_path, load, resolve
from gateway.cli.output import as_json
from gateway.cli.tables import Column, render


def connection(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Connection:
    """`--url` / `--key`, else NIMBUS_URL / NIMBUS_API_KEY, else the saved login."""
    flag_url, flag_key = getattr(args, "url", None), getattr(args, "key", None)
    # The file is read only when a flag or variable leaves something to find.
    needs_file = not (
        (flag_url or env.get("NIMBUS_URL")) and (flag_key or env.get("NIMBUS_API_KEY"))
    )
    saved = load(config_path(env)) if needs_file else None
    return resolve(flag_url, flag_key, env, saved)


def client(args: argparse.Namespace) -> Client:
    """The client of this command line."""
    return Client(connection(args))


def wants_json(args: argparse.Namespace) -> bool:
    """Whether `--json` was given (before or after the command)."""
    return bool(getattr(args, "json", False))


def terminal_width(env: Mapping[str, str] = os.environ) -> int | None:
    """The width tables are cut to: the terminal's, or $COLUMNS; None when stdout is not
    a terminal (a pipe or file gets whole lines)."""
    if sys.stdout.isatty() or env.get("COLUMNS"):
        return shutil.get_terminal_size().columns
    return None


def emit(args: argparse.Namespace, payload: Any, human: Callable[[Any], Iterable[str]]) -> int:
    """Print the API's JSON under `--json`, else `human(payload)`'s lines. Exit 0."""
    if wants_json(args):
        print(as_json(payload))
    else:
        for line in human(payload):
            print(line)
    return 0


def table(columns: list[Column], rows: Iterable[list[Any]]) -> list[str]:
    """A table sized to this terminal."""
    return render(columns, list(rows), terminal_width())
