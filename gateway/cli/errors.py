"""How the CLI fails: one line on stderr and an exit status a script can test.

| status | meaning |
| --- | --- |
| 0 | success |
| 1 | an error: the gateway refused or failed the request (4xx, 5xx), or a local failure |
| 2 | usage: a wrong command line, flag value, event or file (argparse's own errors too) |
| 3 | not found: the function, activation, trigger, ... is not there (404) |
| 4 | authentication: no API key, or the key was refused (401) or not allowed (403) |
| 5 | the gateway cannot be reached |
| 6 | the function ran and failed: its own error (502) or its timeout (504) |
| 130 | interrupted (Ctrl-C), except where Ctrl-C is the normal end (`--follow`) |
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The CLI's exit statuses (docs/cli.md lists them)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    UNREACHABLE = 5
    FUNCTION_FAILED = 6
    INTERRUPTED = 130


class CliError(Exception):
    """A failure to report on one line, exiting with `code` (1 unless said otherwise)."""

    def __init__(self, message: str, code: int = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = int(code)


class UsageError(CliError):
    """A wrong command line, flag value or input file: exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)
