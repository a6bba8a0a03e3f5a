"""What the CLI's end-to-end tests share (no tests here): a gateway served in a
subprocess (`nimbus serve` on the real engine) and `nimbus` run as a user runs it, with
its own config home, so no login on this machine leaks in or out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN_KEY, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "functions" / "hello" / "main.py"
DEFAULT = object()


@dataclass(frozen=True)
class Ran:
    """One finished `nimbus` command."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON (the test fails with the output if it is not)."""
        assert self.code == 0, self.err
        return json.loads(self.out)


@dataclass
class Nimbus:
    """`nimbus` against one gateway, by default as the admin through the environment."""

    url: str
    home: Path
    key: str | None = ADMIN_KEY

    def env(self, url: Any = DEFAULT, key: Any = DEFAULT, **extra: str) -> dict[str, str]:
        """The environment of a run: no NIMBUS_* of the caller's, this test's config home."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_")}
        env.pop("COLUMNS", None)
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"))
        chosen_url = self.url if url is DEFAULT else url
        chosen_key = self.key if key is DEFAULT else key
        if chosen_url is not None:
            env["NIMBUS_URL"] = chosen_url
        if chosen_key is not None:
            env["NIMBUS_API_KEY"] = chosen_key
        env.update(extra)
        return env

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 120, **env: Any
    ) -> Ran:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            cwd=ROOT,
            env=self.env(**env),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str, **env: Any) -> subprocess.Popen[str]:
        """A long-running command (`--follow`), its stdout a line-buffered pipe."""
        return subprocess.Popen(
            [sys.executable, "-u", "-m", "gateway.cli", *args],
            cwd=ROOT,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@contextmanager
def served(data_dir: Path) -> Iterator[str]:
    """A gateway on the real engine for a module's tests; its URL."""
    port = free_port()
    proc = serve(data_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """`check()`'s first truthy answer, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def one_line_error(ran: Ran, code: int, *fragments: str) -> None:
    """The command failed with `code` and one line on stderr holding each fragment."""
    assert ran.code == code, (ran.code, ran.out, ran.err)
    assert ran.err.count("\n") == 1 and ran.err.startswith("nimbus: "), ran.err
    for fragment in fragments:
        assert fragment in ran.err, ran.err
