"""What `nimbus invoke` sends: the event from an argument, a file or stdin, with
`--param K=V` pairs on top. Pure but for reading the named file or stream."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from gateway.cli.errors import UsageError

STDIN = "-"


def param_pair(item: str) -> tuple[str, Any]:
    """`K=V`: the value as JSON when it parses as JSON (`n=3`, `ok=true`, `xs=[1]`), else
    the string itself (`name=Ada`); the value may hold `=` itself."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--param takes KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_event(text: str, origin: str) -> dict[str, Any]:
    """A JSON object read from `origin` (for the error message); empty text is `{}`."""
    if not text.strip():
        return {}
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the event from {origin} is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise UsageError(f"the event from {origin} must be a JSON object")
    return event


def build_event(
    argument: str, file: str | None, params: Iterable[str], stdin: IO[str]
) -> dict[str, Any]:
    """The event: the argument (JSON, or `-` for stdin) or `--file` (a path, or `-`),
    then each `--param` set on it (the params win, as `wsk -p`)."""
    if argument and file:
        raise UsageError("give the event as an argument or with --file, not both")
    source = file or argument
    if source == STDIN:
        event = parse_event(stdin.read(), "stdin")
    elif file is not None:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
        event = parse_event(text, file)
    else:
        event = parse_event(argument, "the command line")
    event.update(param_pair(item) for item in params)
    return event
