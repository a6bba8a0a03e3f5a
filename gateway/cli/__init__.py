"""`nimbus`: run the platform, build its images, and talk to a running gateway.

The command line's own room, apart from the HTTP API it talks to. `commands` holds the top
of the grammar and `main`; each group of commands registers itself from its module
(`api_commands`: deploy, invoke; `function_commands`: functions, versions, aliases;
`activation_commands`: activations, logs, `--follow` through `follow`; `trigger_commands`;
`bucket_commands`; `admin_commands`: nodes, economics, bill, tenants; `login_commands`),
with `grammar`'s helpers. They share `session` (the `client` their flags, NIMBUS_* and the
saved login (`config`) make, and `--json` or a table), `views` and `tables` (pure
formatting), `output`, `events` (what invoke sends), `timeparse`, `progress` and
`errors` (exit statuses). `packaging` is what `deploy` uploads, `serve` the flags and
NIMBUS_* variables into the platform's `Config`, `images` the runtime images, `completion`
the bash completion script. docs/cli.md documents every command.
"""

from __future__ import annotations

from gateway.cli.commands import main, parser

__all__ = ["main", "parser"]
