"""The `nimbus` CLI against a running gateway, as a user would type it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, free_port, serve

ROOT = Path(__file__).resolve().parents[2]


def nimbus(
    *args: str, key: str | None = ADMIN_KEY, url: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_")}
    env["NIMBUS_URL"] = url
    if key:
        env["NIMBUS_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def gateway_url(runtime_images, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    proc = serve(tmp_path_factory.mktemp("cli") / "data", port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_deploy_and_invoke_sample(gateway_url: str) -> None:
    out = nimbus(
        "deploy",
        "hello",
        "functions/hello/main.py",
        "--handler",
        "main.handler",
        "--memory",
        "128",
        "--timeout",
        "30",
        url=gateway_url,
    )
    assert out.returncode == 0, out.stderr
    assert "created hello version 1" in out.stdout
    out = nimbus("invoke", "hello", '{"name": "CLI"}', url=gateway_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"greeting": "Hello, CLI!"}
    out = nimbus("activations", "--function", "hello", url=gateway_url)
    assert out.returncode == 0 and "success" in out.stdout


def test_deploy_directory_as_zip(gateway_url: str, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "fn.py").write_text(
        "import helper\ndef main(e):\n    return helper.twice(e['n'])\n"
    )
    (tmp_path / "helper.py").write_text("def twice(n):\n    return 2 * n\n")
    out = nimbus("deploy", "twice", str(tmp_path), "--handler", "pkg.fn.main", url=gateway_url)
    assert out.returncode == 0, out.stderr
    out = nimbus("invoke", "twice", '{"n": 21}', url=gateway_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == 42


def test_clear_errors(gateway_url: str) -> None:
    out = nimbus("invoke", "missing", url=gateway_url)
    assert out.returncode == 3 and "error 404" in out.stderr  # not found (docs/cli.md)
    out = nimbus(
        "deploy",
        "bad",
        "functions/hello/main.py",
        "--handler",
        "main.handler",
        "--memory",
        "64",
        url=gateway_url,
    )
    assert out.returncode == 1 and "memory_mb" in out.stderr
    out = nimbus("invoke", "hello", url=gateway_url, key=None)
    assert out.returncode == 4 and "NIMBUS_API_KEY" in out.stderr  # no key
    out = nimbus("invoke", "hello", url="http://127.0.0.1:9")
    assert out.returncode == 5 and "cannot reach the gateway" in out.stderr  # unreachable


def test_tenant_create_prints_a_working_key(gateway_url: str) -> None:
    out = nimbus("tenant", "create", "cli-team", url=gateway_url)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().split()[-1]
    out = nimbus("functions", url=gateway_url, key=key)
    assert out.returncode == 0 and out.stdout == ""


def test_bill_prints_a_table_and_csv(gateway_url: str) -> None:
    out = nimbus(
        "deploy", "billed", "functions/hello/main.py", "--handler", "main.handler", url=gateway_url
    )
    assert out.returncode == 0, out.stderr
    for _ in range(3):
        assert nimbus("invoke", "billed", url=gateway_url).returncode == 0
    out = nimbus("bill", url=gateway_url)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("billed "))
    assert row.split()[1] == "3"  # invocations
    assert "TOTAL" in out.stdout
    out = nimbus("bill", "--by", "day", "--csv", url=gateway_url)
    assert out.returncode == 0 and out.stdout.splitlines()[0].startswith("key,")
    out = nimbus("bill", "--from", "2026-13-01", url=gateway_url)
    assert out.returncode == 1 and "from" in out.stderr
