"""The `nimbus` grammar: old command lines parse as before, the new ones as documented,
and the pure pieces that turn flags into request bodies."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from gateway.cli import parser
from gateway.cli.admin_commands import resize_body
from gateway.cli.commands import main
from gateway.cli.completion import bash_script, command_words
from gateway.cli.errors import UsageError
from gateway.cli.events import build_event, param_pair
from gateway.cli.function_commands import split_body
from gateway.cli.trigger_commands import trigger_body


def test_existing_command_lines_parse_as_before() -> None:
    args = parser().parse_args(
        ["deploy", "f", "x.py", "--handler", "m.h", "--memory", "256", "--env", "A=1"]
    )
    assert (args.name, args.path, args.memory, args.env) == ("f", "x.py", 256, ["A=1"])
    args = parser().parse_args(["invoke", "f", '{"a": 1}', "-v"])
    assert args.event == '{"a": 1}' and args.verbose and not args.run_async
    args = parser().parse_args(["activations", "--function", "f", "--limit", "5"])
    assert (args.function, args.limit, args.follow) == ("f", 5, False)
    args = parser().parse_args(["bill", "--from", "2026-01-01", "--by", "day", "--csv"])
    assert (args.since, args.by, args.csv) == ("2026-01-01", "day", True)
    assert parser().parse_args(["tenant", "create", "t"]).name == "t"
    assert parser().parse_args(["functions"]).func.__name__ == "cmd_list"


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--key", "K", "--url", "U", "functions"],
        ["functions", "--json", "--key", "K", "--url", "U"],
        ["--key", "K", "functions", "list", "--json", "--url", "U"],
    ],
)
def test_connection_flags_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.json, args.key, args.url) == (True, "K", "U")


def test_invoke_flags() -> None:
    args = parser().parse_args(
        ["invoke", "f", "--async", "--version", "3", "-p", "a=1", "--param", "b=x", "-f", "e.json"]
    )
    assert args.run_async and args.function_version == 3 and args.param == ["a=1", "b=x"]
    assert args.file == "e.json"
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["invoke", "f", "--version", "3", "--alias", "prod"])
    assert exc.value.code == 2


def test_params_are_json_when_they_parse_else_strings() -> None:
    assert param_pair("n=3") == ("n", 3)
    assert param_pair("ok=true") == ("ok", True)
    assert param_pair("xs=[1, 2]") == ("xs", [1, 2])
    assert param_pair("name=Ada") == ("name", "Ada")
    assert param_pair("q=a=b") == ("q", "a=b")
    with pytest.raises(UsageError):
        param_pair("novalue")


def test_the_event_comes_from_the_argument_a_file_or_stdin(tmp_path: Path) -> None:
    empty = io.StringIO("")
    assert build_event('{"a": 1}', None, ["b=2"], empty) == {"a": 1, "b": 2}
    assert build_event("", None, ["a=1", "a=x"], empty) == {"a": "x"}
    assert build_event("-", None, [], io.StringIO('{"s": 1}')) == {"s": 1}
    event = tmp_path / "e.json"
    event.write_text('{"f": true}')
    assert build_event("", str(event), ["g=1"], empty) == {"f": True, "g": 1}
    assert build_event("", "-", [], io.StringIO("")) == {}
    for bad in ("[1]", "{nope"):
        with pytest.raises(UsageError):
            build_event(bad, None, [], empty)
    with pytest.raises(UsageError, match="cannot read"):
        build_event("", str(tmp_path / "missing.json"), [], empty)
    with pytest.raises(UsageError, match="not both"):
        build_event("{}", str(event), [], empty)


def test_an_alias_names_a_version_or_a_split() -> None:
    assert split_body("3", None) == {"version": 3}
    assert split_body(None, "3=0.9,4=0.1") == {"versions": {"3": 0.9, "4": 0.1}}
    for version, split in (("3", "3=1"), (None, None), ("x", None), (None, "3:0.5"), (None, "3=2")):
        with pytest.raises(UsageError):
            split_body(version, split)


def test_a_triggers_type_follows_from_its_flags() -> None:
    def body(*flags: str) -> dict[str, object]:
        return trigger_body(parser().parse_args(["triggers", "create", "t", *flags]))

    assert body() == {"type": "http"}
    assert body("--webhook") == {"type": "http", "webhook": True}
    assert body("--cron", "@daily", "--payload", '{"a": 1}') == {
        "type": "schedule",
        "cron": "@daily",
        "payload": {"a": 1},
    }
    assert body("--bucket", "b", "--events", "created,deleted", "--suffix", ".jpg") == {
        "type": "bucket",
        "bucket": "b",
        "events": ["created", "deleted"],
        "suffix": ".jpg",
    }
    for flags in (["--cron", "@daily", "--bucket", "b"], ["--prefix", "x"]):
        with pytest.raises(UsageError):
            body(*flags)


def test_resize_needs_a_size() -> None:
    assert resize_body(2.0, None) == {"vcpu": 2.0}
    assert resize_body(None, 4096) == {"memory_mb": 4096}
    with pytest.raises(UsageError):
        resize_body(None, None)


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [path.split() for path, _ in command_words(parser()) if path]
    assert ["functions", "alias", "set"] in paths and ["buckets", "put"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0
        shown = capsys.readouterr().out
        if path != ["serve"]:  # serve's flags are its documentation
            assert "examples:" in shown, path


def test_the_completion_script_is_valid_bash_and_completes(tmp_path: Path) -> None:
    script = tmp_path / "nimbus.bash"
    script.write_text(bash_script(parser()))
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0

    def complete(*words: str) -> list[str]:
        line = f"""source {script}
COMP_WORDS=(nimbus {" ".join(words)}); COMP_CWORD={len(words)}
_nimbus_complete; printf '%s\\n' "${{COMPREPLY[@]}}" """
        out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert {"functions", "buckets", "login", "--version"} <= set(complete(""))
    assert complete("functions", "al") == ["alias"]
    assert set(complete("functions", "alias", "")) >= {"set", "list", "delete"}
    assert "--follow" in complete("logs", "hello", "--f")
