"""`nimbus deploy NAME PATH --runtime nodejs:18`: what the CLI sends for a .js file, a
directory with package.json (zipped with its node_modules) or a zip; Python's packaging
is untouched."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.client import Client, Reply
from gateway.cli.commands import main
from gateway.cli.packaging import PackagingError, build_node_zip, package_code

SAMPLES = Path(__file__).resolve().parents[2] / "functions"


def names(code: dict[str, str]) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(code["zip"]))) as archive:
        return sorted(archive.namelist())


def node_project(root: Path, dependencies: dict[str, str] | None = None) -> Path:
    root.mkdir()
    manifest = {"name": "fn", "main": "lib/app.js", "dependencies": dependencies or {}}
    (root / "package.json").write_text(json.dumps(manifest))
    (root / "lib").mkdir()
    (root / "lib" / "app.js").write_text("exports.main = () => 1;\n")
    return root


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    """What `nimbus deploy` PUTs, answered as the gateway would."""
    calls: list[tuple[str, str, Any]] = []

    def call(self: Client, method: str, path: str, body: Any = None, **_: Any) -> Reply:
        calls.append((method, path, body))
        name = path.rsplit("/", 1)[1]
        return Reply(201, {}, {"name": name, "version": 1, "code_sha256": "0" * 64})

    monkeypatch.setattr(Client, "call", call)
    return calls


def test_a_js_file_is_sent_as_nodejs_source(
    sent: list[tuple[str, str, Any]], tmp_path: Path
) -> None:
    source = tmp_path / "hello.js"
    source.write_text("exports.main = () => 1;\n")
    assert main(["deploy", "hello", str(source), "--runtime", "nodejs:18"]) == 0
    method, path, body = sent[0]
    assert (method, path) == ("PUT", "/v1/functions/hello")
    assert body["runtime"] == "nodejs:18" and body["code"] == {"source": source.read_text()}
    # No --handler: the gateway applies the runtime's default.
    assert "handler" not in body
    # Without --runtime a .js file is Node.js all the same.
    main(["deploy", "hello", str(source), "--handler", "main"])
    assert sent[1][2]["runtime"] == "nodejs:18" and sent[1][2]["handler"] == "main"


def test_a_package_directory_is_zipped_with_node_modules(
    sent: list[tuple[str, str, Any]], tmp_path: Path
) -> None:
    project = node_project(tmp_path / "fn", {"left-pad": "^1.3.0"})
    module = project / "node_modules" / "left-pad"
    module.mkdir(parents=True)
    (module / "index.js").write_text("module.exports = (s) => s;\n")
    (project / "node_modules" / ".bin").mkdir()
    (project / "node_modules" / ".bin" / "tool").write_text("#!/bin/sh\n")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref\n")
    assert main(["deploy", "fn", str(project)]) == 0  # package.json: Node.js
    body = sent[0][2]
    assert body["runtime"] == "nodejs:18"
    assert names(body["code"]) == [
        "lib/app.js",
        "node_modules/left-pad/index.js",
        "package.json",
    ]
    # Deterministic: the same directory gives the same bytes.
    assert build_node_zip(project) == build_node_zip(project)


def test_a_node_directory_needs_package_json_and_its_installed_dependencies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "index.js").write_text("exports.main = () => 1;\n")
    with pytest.raises(PackagingError, match=r"needs a package\.json"):
        package_code(bare, family="nodejs")
    project = node_project(tmp_path / "fn", {"left-pad": "^1.3.0", "@scope/x": "1"})
    with pytest.raises(PackagingError, match=r"@scope/x, left-pad, not in node_modules.*npm"):
        package_code(project, family="nodejs")
    # Through the command: one line on stderr, exit 1, nothing sent.
    assert main(["deploy", "fn", str(project), "--runtime", "nodejs:18"]) == 1
    assert "npm install --omit=dev" in capsys.readouterr().err


def test_a_zip_goes_as_is_and_python_keeps_its_packaging(
    sent: list[tuple[str, str, Any]], tmp_path: Path
) -> None:
    archive = tmp_path / "fn.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("index.js", "exports.main = () => 1;\n")
    main(["deploy", "z", str(archive), "--runtime", "nodejs:18"])
    assert base64.b64decode(sent[0][2]["code"]["zip"]) == archive.read_bytes()
    # A Python directory: .pyc and __pycache__ left out, runtime python:3.11 by default.
    py = tmp_path / "py"
    (py / "__pycache__").mkdir(parents=True)
    (py / "main.py").write_text("def handler(e):\n    return e\n")
    (py / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    main(["deploy", "p", str(py), "--handler", "main.handler"])
    body = sent[1][2]
    assert body["runtime"] == "python:3.11" and body["handler"] == "main.handler"
    assert names(body["code"]) == ["main.py"]


def test_the_json_transform_sample_packages_without_npm() -> None:
    code = package_code(SAMPLES / "json-transform", family="nodejs")
    assert names(code) == ["lib/handler.js", "lib/transform.js", "package.json"]
