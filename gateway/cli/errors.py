"""The one failure the CLI reports: a line on stderr and exit status 1."""

from __future__ import annotations


class CliError(Exception):
    """A failure to report on one line and exit 1."""
