"""Where the CLI finds its gateway and API key: flags, then NIMBUS_URL / NIMBUS_API_KEY,
then the file `nimbus login` wrote (`$XDG_CONFIG_HOME/nimbus/config.json`, else
`~/.config/nimbus/config.json`, mode 0600), then the default URL.

`resolve` is pure; `load`, `save` and `remove` are the file's only readers and writers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.cli.errors import CliError, ExitCode

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Saved:
    """What `nimbus login` stored."""

    url: str
    key: str


@dataclass(frozen=True)
class Connection:
    """The gateway to talk to and the key to talk to it with (None: no key anywhere)."""

    url: str
    key: str | None


def config_path(env: Mapping[str, str]) -> Path:
    """The config file: under $XDG_CONFIG_HOME when set (and absolute), else ~/.config."""
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "nimbus" / "config.json"


def resolve(
    flag_url: str | None, flag_key: str | None, env: Mapping[str, str], saved: Saved | None
) -> Connection:
    """Flags win over the environment, which wins over the saved login; an empty value
    counts as unset."""
    url = flag_url or env.get("NIMBUS_URL") or (saved.url if saved else "") or DEFAULT_URL
    key = flag_key or env.get("NIMBUS_API_KEY") or (saved.key if saved else None)
    return Connection(url=url.rstrip("/"), key=key or None)


def load(path: Path) -> Saved | None:
    """The saved login, or None when there is none. A damaged file is an error that says
    how to mend it, never silently ignored."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}); run `nimbus login URL` again") from exc
    if not (
        isinstance(data, dict)
        and isinstance(data.get("url"), str)
        and isinstance(data.get("key"), str)
    ):
        raise CliError(f"{path} lacks url and key; run `nimbus login URL` again")
    return Saved(url=data["url"], key=data["key"])


def save(path: Path, saved: Saved) -> None:
    """Write the login readable by its owner only (0600, directory 0700), atomically: a
    crash leaves the old file or the new one, never half of one or a readable copy."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)  # mkstemp makes it 0600 already; a umask never loosens it
        with os.fdopen(fd, "w") as out:
            json.dump({"url": saved.url, "key": saved.key}, out, indent=2)
            out.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def remove(path: Path) -> bool:
    """Forget the login; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def missing_key() -> CliError:
    """The error of a command that needs a key and found none."""
    return CliError(
        "no API key: run `nimbus login URL`, pass --key, or set NIMBUS_API_KEY "
        "(make up prints the admin key)",
        ExitCode.AUTH,
    )
