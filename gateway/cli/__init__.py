"""`nimbus`: run the platform, build its images, and talk to a running gateway.

The command line's own room, apart from the HTTP API it talks to: `commands` (the grammar
and dispatch), `api_commands` with `client` and `output` (the commands that call a running
gateway, the HTTP client they share, how their answers print), `packaging` (what `deploy`
uploads), `serve` (flags and NIMBUS_* variables into the platform's `Config`) and `images`.
"""

from __future__ import annotations

from gateway.cli.commands import main, parser

__all__ = ["main", "parser"]
