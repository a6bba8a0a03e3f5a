"""`nimbus` functions end to end against a served gateway: deploy, list, get (with its
code), delete, versions, aliases and every way of invoking; `--json`; exit codes."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli_support import HELLO, Nimbus, eventually, one_line_error, served

ECHO = """import os


def main(event):
    print("running version", os.environ["V"])
    return {"v": os.environ["V"], "event": event}
"""


@pytest.fixture(scope="module")
def nimbus(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nimbus]:
    with served(tmp_path_factory.mktemp("cli-fn") / "data") as url:
        yield Nimbus(url, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def echo(nimbus: Nimbus, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A function `echo` with versions 1 and 2, each answering its number."""
    source = tmp_path_factory.mktemp("echo") / "echo.py"
    source.write_text(ECHO)
    for version in ("1", "2"):
        ran = nimbus(
            "deploy", "echo", str(source), "--handler", "echo.main", "--env", f"V={version}"
        )
        assert ran.code == 0 and f"echo version {version}" in ran.out, ran.err
    return "echo"


def test_deploy_list_get_code_and_delete(nimbus: Nimbus, tmp_path: Path) -> None:
    ran = nimbus("deploy", "hello", str(HELLO), "--handler", "main.handler", "--json")
    assert ran.json()["name"] == "hello" and ran.json()["version"] == 1
    listed = nimbus("functions", "--json").json()
    assert "hello" in [f["name"] for f in listed["functions"]]
    assert nimbus("--json", "functions", "list").json() == listed  # the flag before, or after
    table = nimbus("functions", "list").out.splitlines()
    assert table[0].split()[:3] == ["NAME", "VERSION", "RUNTIME"]
    row = next(line for line in table if line.startswith("hello "))
    assert row.split()[1:3] == ["1", "python:3.11"]
    shown = nimbus("functions", "get", "hello", "--json").json()
    assert shown["handler"] == "main.handler" and shown["code_kind"] == "source"
    assert "main.handler" in nimbus("functions", "get", "hello").out
    assert nimbus("functions", "get", "hello", "--code").out == HELLO.read_text()
    ran = nimbus("functions", "get", "hello", "--code", str(tmp_path / "got.py"))
    assert ran.code == 0 and (tmp_path / "got.py").read_text() == HELLO.read_text()
    # A second deploy: each version's code stays as it was deployed.
    (tmp_path / "v2.py").write_text("def handler(event, context=None):\n    return 2\n")
    assert nimbus("deploy", "hello", str(tmp_path / "v2.py"), "--handler", "v2.handler").code == 0
    assert "return 2" in nimbus("functions", "get", "hello", "--code").out
    assert nimbus("functions", "get", "hello", "--code", "--version", "1").out == HELLO.read_text()

    assert nimbus("functions", "delete", "hello", "--json").json() == {"deleted": "hello"}
    one_line_error(nimbus("functions", "get", "hello"), 3, "error 404", "hello")
    one_line_error(nimbus("functions", "get", "hello", "--code"), 3, "hello")
    one_line_error(nimbus("functions", "delete", "hello"), 3, "hello")


def test_a_directory_deploy_gets_its_zip_back(nimbus: Nimbus, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "fn.py").write_text("def main(e):\n    return 1\n")
    assert nimbus("deploy", "zipped", str(tmp_path / "src"), "--handler", "fn.main").code == 0
    ran = nimbus("functions", "get", "zipped", "--code", str(tmp_path / "code.zip"))
    assert ran.code == 0 and (tmp_path / "code.zip").read_bytes()[:2] == b"PK"
    with zipfile.ZipFile(tmp_path / "code.zip") as got:  # as deployed: nothing added
        assert got.namelist() == ["fn.py"]


def test_versions_aliases_splits_and_rollback(nimbus: Nimbus, echo: str) -> None:
    listed = nimbus("functions", "versions", echo, "--json")
    if listed.code == 3:
        pytest.skip("this gateway has no versions API")
    assert listed.json()["latest"] == 2
    assert [v["version"] for v in listed.json()["versions"]] == [2, 1]
    assert nimbus("functions", "versions", echo).out.splitlines()[0].startswith("VERSION")

    ran = nimbus("functions", "alias", "set", echo, "prod", "1")
    assert ran.code == 0 and "created echo:prod -> 1" in ran.out
    assert nimbus("invoke", f"{echo}:prod").json()["v"] == "1"
    assert nimbus("invoke", echo, "--alias", "prod").json()["v"] == "1"
    assert nimbus("invoke", echo, "--version", "1").json()["v"] == "1"
    assert nimbus("invoke", echo).json()["v"] == "2"
    moved = nimbus("functions", "alias", "set", echo, "prod", "2", "--json").json()
    assert moved["version"] == 2
    assert nimbus("invoke", echo, "--alias", "prod").json()["v"] == "2"
    assert nimbus("functions", "alias", "set", echo, "prod", "1").code == 0  # rollback
    assert nimbus("invoke", echo, "--alias", "prod").json()["v"] == "1"

    split = nimbus("functions", "alias", "set", echo, "canary", "--split", "1=0.5,2=0.5")
    assert split.code == 0 and "1=0.5,2=0.5" in split.out
    seen = {nimbus("invoke", echo, "--alias", "canary").json()["v"] for _ in range(24)}
    assert seen == {"1", "2"}
    aliases = nimbus("functions", "alias", "list", echo, "--json").json()["aliases"]
    assert {a["name"]: a["versions"] for a in aliases} == {
        "canary": {"1": 0.5, "2": 0.5},
        "prod": {"1": 1.0},
    }
    assert "canary  1=0.5,2=0.5" in nimbus("functions", "alias", "list", echo).out
    assert nimbus("functions", "alias", "delete", echo, "canary").code == 0
    one_line_error(nimbus("invoke", echo, "--alias", "canary"), 3, "canary")
    one_line_error(nimbus("functions", "alias", "delete", echo, "canary"), 3)
    one_line_error(nimbus("functions", "alias", "set", echo, "p", "9"), 1, "version 9")
    one_line_error(nimbus("functions", "alias", "set", echo, "p", "--split", "1=x"), 2, "--split")
    record = nimbus("functions", "get", echo, "--version", "1", "--json").json()
    assert record["version"] == 1 and record["env"] == {"V": "1"}


def test_every_way_to_give_an_event(nimbus: Nimbus, echo: str, tmp_path: Path) -> None:
    ran = nimbus("invoke", echo, '{"a": 1}', "-p", "n=3", "-p", "s=text", "--param", 'j={"k": []}')
    assert ran.json()["event"] == {"a": 1, "n": 3, "s": "text", "j": {"k": []}}
    event = tmp_path / "event.json"
    event.write_text('{"from": "file"}')
    assert nimbus("invoke", echo, "--file", str(event)).json()["event"] == {"from": "file"}
    assert nimbus("invoke", echo, "-", stdin='{"from": "stdin"}').json()["event"] == {
        "from": "stdin"
    }
    assert nimbus("invoke", echo, "-f", "-", stdin='{"x": 1}').json()["event"] == {"x": 1}
    ran = nimbus("invoke", echo, "-v", "--version", "1")
    assert "cold=" in ran.err and "version=1" in ran.err and ran.json()["v"] == "1"
    # The same through `functions invoke`.
    assert nimbus("functions", "invoke", echo, "-p", "z=0").json()["event"] == {"z": 0}


def test_an_async_invoke_prints_its_activation(nimbus: Nimbus, echo: str) -> None:
    accepted = nimbus("invoke", echo, "--async", "--json", "-p", "q=1").json()
    assert accepted["status"] == "pending" and accepted["version"] == 2
    ident = accepted["activation_id"]

    def finished() -> dict[str, object] | None:
        found = nimbus("activation", ident).json()
        return found if found["status"] == "success" else None

    assert eventually(finished)["result"] == {"v": "2", "event": {"q": 1}}
    human = nimbus("invoke", echo, "--async")
    assert human.code == 0 and human.out.startswith("accepted: activation ")


def test_exit_codes_a_script_can_test(nimbus: Nimbus, tmp_path: Path) -> None:
    one_line_error(nimbus("invoke", "missing"), 3, "error 404")
    failing = tmp_path / "fail.py"
    failing.write_text("def main(e):\n    raise ValueError('boom')\n")
    assert nimbus("deploy", "fail", str(failing), "--handler", "fail.main").code == 0
    one_line_error(nimbus("invoke", "fail"), 6, "error 502", "ValueError: boom", "(activation ")
    one_line_error(nimbus("invoke", "fail", "{nope"), 2, "not valid JSON")
    one_line_error(nimbus("invoke", "fail", "-p", "novalue"), 2, "--param")
    one_line_error(
        nimbus("deploy", "bad", str(HELLO), "--handler", "main.handler", "--memory", "64"),
        1,
        "memory_mb",
    )
    one_line_error(nimbus("functions", key=None), 4, "NIMBUS_API_KEY", "nimbus login")
    one_line_error(nimbus("functions", key="wrong-key"), 4, "error 401")
    one_line_error(nimbus("functions", url="http://127.0.0.1:9"), 5, "cannot reach")
    assert nimbus("functions", "frobnicate").code == 2  # argparse's own usage error


def test_tables_fit_the_terminal(nimbus: Nimbus, tmp_path: Path) -> None:
    source = tmp_path / "wide.py"
    source.write_text("def a_rather_long_handler_name(e):\n    return 1\n")
    name = "a-function-with-a-rather-long-name-for-a-narrow-terminal"
    assert (
        nimbus("deploy", name, str(source), "--handler", "wide.a_rather_long_handler_name").code
        == 0
    )
    narrow = nimbus("functions", COLUMNS="50").out.splitlines()
    assert narrow and all(len(line) <= 50 for line in narrow) and "…" in "".join(narrow)
    whole = nimbus("functions").out  # piped, no COLUMNS: whole lines
    assert name in whole
    assert name in json.dumps(nimbus("functions", "--json", COLUMNS="50").json())
