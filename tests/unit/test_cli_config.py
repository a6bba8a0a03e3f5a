"""Where the CLI finds its gateway and key, and the login file it keeps."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.cli.config import (
    DEFAULT_URL,
    Connection,
    Saved,
    config_path,
    load,
    remove,
    resolve,
    save,
)
from gateway.cli.errors import CliError

SAVED = Saved(url="http://saved:1", key="saved-key")


def test_flags_win_over_the_environment_which_wins_over_the_login() -> None:
    env = {"NIMBUS_URL": "http://env:2/", "NIMBUS_API_KEY": "env-key"}
    assert resolve("http://flag:3", "flag-key", env, SAVED) == Connection(
        "http://flag:3", "flag-key"
    )
    assert resolve(None, None, env, SAVED) == Connection("http://env:2", "env-key")
    assert resolve(None, None, {}, SAVED) == Connection("http://saved:1", "saved-key")
    assert resolve(None, None, {"NIMBUS_URL": "", "NIMBUS_API_KEY": ""}, None) == Connection(
        DEFAULT_URL, None
    )
    # Each part on its own: a key from the environment with the saved URL.
    assert resolve(None, None, {"NIMBUS_API_KEY": "env-key"}, SAVED) == Connection(
        "http://saved:1", "env-key"
    )


def test_the_file_lives_under_xdg_config_home_else_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "nimbus" / "config.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home" / ".config" / "nimbus" / "config.json"
    assert config_path({}) == home and config_path({"XDG_CONFIG_HOME": "relative"}) == home


def test_the_login_is_saved_for_its_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "nimbus" / "config.json"
    assert load(path) is None
    save(path, SAVED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load(path) == SAVED
    save(path, Saved(url="http://other", key="k2"))
    assert load(path) == Saved(url="http://other", key="k2")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp left
    assert remove(path) and not remove(path)


def test_a_damaged_file_says_how_to_mend_it(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    for text in ("{not json", '{"url": 1}'):
        path.write_text(text)
        with pytest.raises(CliError, match="nimbus login"):
            load(path)
