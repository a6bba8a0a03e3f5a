"""`nimbus login` / `logout` against a served gateway: the key checked before it is
saved, the file readable by its owner only, and flags and NIMBUS_* winning over it."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY
from tests.integration.test_cli_support import Nimbus, one_line_error, served


@pytest.fixture(scope="module")
def url(runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(tmp_path_factory.mktemp("cli-login") / "data") as found:
        yield found


@pytest.fixture
def nimbus(url: str, tmp_path: Path) -> Nimbus:
    """No NIMBUS_URL or NIMBUS_API_KEY: only what `login` saves."""
    return Nimbus(url, tmp_path, key=None)


def saved_file(nimbus: Nimbus) -> Path:
    return nimbus.home / ".config" / "nimbus" / "config.json"


def test_login_checks_the_key_then_saves_it_for_its_owner_only(nimbus: Nimbus) -> None:
    one_line_error(nimbus("functions", url=None), 4, "nimbus login")
    one_line_error(nimbus("login", nimbus.url, "--key", "wrong", url=None), 4, "refused the key")
    assert not saved_file(nimbus).exists()
    one_line_error(nimbus("login", "ftp://x", "--key", ADMIN_KEY), 2, "http://")

    ran = nimbus("login", nimbus.url + "/", "--key", ADMIN_KEY, url=None)
    assert ran.code == 0 and f"logged in to {nimbus.url}" in ran.out
    path = saved_file(nimbus)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": nimbus.url, "key": ADMIN_KEY}
    # Later commands need neither flag nor variable.
    assert nimbus("functions", "--json", url=None).json() == {"functions": []}

    assert nimbus("logout").out.startswith("logged out")
    assert not path.exists()
    assert nimbus("logout", "--json").json()["removed"] is False
    one_line_error(nimbus("functions", url=None), 4, "nimbus login")


def test_login_reads_the_key_from_a_pipe(nimbus: Nimbus) -> None:
    ran = nimbus("login", nimbus.url, "--json", stdin=ADMIN_KEY + "\n", url=None)
    assert ran.json()["url"] == nimbus.url
    assert json.loads(saved_file(nimbus).read_text())["key"] == ADMIN_KEY


def test_flags_and_the_environment_win_over_the_saved_login(nimbus: Nimbus) -> None:
    assert nimbus("login", nimbus.url, "--key", ADMIN_KEY, url=None).code == 0
    # A variable wins over the file: a wrong key fails, an unreachable URL too.
    one_line_error(nimbus("functions", url=None, key="bad-key"), 4, "error 401")
    one_line_error(nimbus("functions", url="http://127.0.0.1:9"), 5, "127.0.0.1:9")
    # A flag wins over the variable.
    ran = nimbus(
        "functions",
        "--key",
        ADMIN_KEY,
        "--url",
        nimbus.url,
        url="http://127.0.0.1:9",
        key="bad-key",
    )
    assert ran.code == 0, ran.err
    one_line_error(nimbus("--key", "bad-key", "functions", url=None), 4, "error 401")
    one_line_error(nimbus("functions", "--url", "http://127.0.0.1:9", url=None), 5)


def test_version_and_completion(nimbus: Nimbus) -> None:
    version = nimbus("--version")
    assert version.code == 0 and version.out.startswith("nimbus ")
    script = nimbus("completion", "bash").out
    assert "complete -o default -F _nimbus_complete nimbus" in script
    checked = subprocess.run(["bash", "-n"], input=script, text=True, check=False)
    assert checked.returncode == 0
