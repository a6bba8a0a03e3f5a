"""`nimbus activations`, `activation`, `logs` end to end: filters, `--json`, and
`--follow` printing new activations as they finish until Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from queue import Empty, Queue

import pytest

from tests.integration.test_cli_support import Nimbus, one_line_error, served

LOUD = """def main(event):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    print("hello from", event.get("who", "nobody"))
    return {"who": event.get("who")}
"""


@pytest.fixture(scope="module")
def nimbus(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nimbus]:
    with served(tmp_path_factory.mktemp("cli-act") / "data") as url:
        cli = Nimbus(url, tmp_path_factory.mktemp("home"))
        source = tmp_path_factory.mktemp("loud") / "loud.py"
        source.write_text(LOUD)
        assert cli("deploy", "loud", str(source), "--handler", "loud.main").code == 0
        assert cli("invoke", "loud", "-p", "who=first").code == 0
        assert cli("invoke", "loud", "-p", "who=second").code == 0
        assert cli("invoke", "loud", "-p", "fail=true").code == 6
        yield cli


def test_listing_filters_and_json(nimbus: Nimbus) -> None:
    listed = nimbus("activations", "--function", "loud", "--json").json()["activations"]
    assert [a["status"] for a in listed] == ["application_error", "success", "success"]
    table = nimbus("activations", "--function", "loud").out.splitlines()
    assert table[0].split()[:4] == ["ID", "FUNCTION", "VERSION", "STATUS"] and len(table) == 4
    ok = nimbus("activations", "--status", "success", "--json").json()["activations"]
    assert {a["result"]["who"] for a in ok} == {"first", "second"}
    assert len(nimbus("activations", "--limit", "1", "--json").json()["activations"]) == 1
    recent = nimbus("activations", "--since", "1h", "--function", "loud", "--json").json()
    assert len(recent["activations"]) == 3
    assert nimbus("activations", "--since", "2001-01-01T00:00:00Z", "--json").json() == recent
    assert nimbus("activations", "--since", "2999-01-01", "--json").json() == {"activations": []}
    one_line_error(nimbus("activations", "--since", "yesterday"), 2, "--since")


def test_one_activation_its_result_and_its_logs(nimbus: Nimbus) -> None:
    listed = nimbus("activations", "--function", "loud", "--json").json()["activations"]
    failed, second = listed[0]["activation_id"], listed[1]["activation_id"]
    assert nimbus("activation", second).json()["result"] == {"who": "second"}
    assert nimbus("activation", second, "--result").json() == {"who": "second"}
    assert nimbus("activation", failed, "--result").json() == {
        "error": "RuntimeError: asked to fail"
    }
    assert nimbus("activation", second, "--logs").out == "hello from second\n"
    assert nimbus("activation", second, "--logs", "--json").json() == ["hello from second"]
    one_line_error(nimbus("activation", "0" * 32), 3, "error 404")


def test_logs_are_oldest_first_after_their_activation(nimbus: Nimbus) -> None:
    lines = nimbus("logs", "loud").out.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == ["hello from first", "hello from second"]
    assert len(lines[0].split()[0]) == 32  # the activation id
    as_json = nimbus("logs", "loud", "--status", "success", "--json").json()
    assert len(as_json["activations"]) == 2
    assert nimbus("logs", "loud", "--since", "2999-01-01").out == ""


def lines_of(proc: subprocess.Popen[str]) -> Queue[str]:
    """The process's stdout lines as they come, once it has read its first poll."""
    assert proc.stderr is not None
    assert "following" in proc.stderr.readline()
    found: Queue[str] = Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            found.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return found


def next_line(found: Queue[str], timeout: float = 30) -> str:
    try:
        return found.get(timeout=timeout)
    except Empty:
        raise AssertionError("no line came") from None


def stop(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a user ends a follow."""
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=15)


def test_follow_prints_new_activations_until_ctrl_c(nimbus: Nimbus) -> None:
    proc = nimbus.popen("activations", "--function", "loud", "--follow", "--interval", "0.5")
    found = lines_of(proc)
    try:
        # Started after the earlier calls, it shows only what finishes from now on.
        assert nimbus("invoke", "loud", "-p", "who=later").code == 0
        line = next_line(found)
        assert " loud " in line and "success" in line
        accepted = nimbus("invoke", "loud", "--async", "--json", "-p", "who=queued").json()
        assert next_line(found).startswith(accepted["activation_id"])
    finally:
        code = stop(proc)
    assert code == 0 and found.empty()


def test_logs_follow_as_json_lines(nimbus: Nimbus) -> None:
    proc = nimbus.popen("logs", "loud", "--follow", "--json", "--interval", "0.5", "--since", "1h")
    found = lines_of(proc)
    try:
        past = [json.loads(next_line(found)) for _ in range(3)]  # --since: the past first
        assert [a["status"] for a in past][:3] == ["success", "success", "application_error"]
        assert nimbus("invoke", "loud", "-p", "who=json").code == 0
        later = [json.loads(next_line(found)) for _ in range(3)]
        assert any(a["logs"] == ["hello from json"] for a in later)
    finally:
        assert stop(proc) == 0
