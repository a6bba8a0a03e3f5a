"""A deploy body's runtime and handler, checked by the rules of the runtime it names:
Python's code is parsed; JavaScript's is only looked at (a source must mention its
export, a zip must hold the file the handler resolves to)."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from gateway.schemas import HANDLER
from tests.unit.deploy_bodies import draft, refused

NODE = "nodejs:18"


def zipped(files: dict[str, str]) -> dict[str, str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return {"zip": base64.b64encode(buf.getvalue()).decode()}


def test_the_runtime_defaults_to_python_and_must_be_registered() -> None:
    found = draft(handler="main.handler", code={"source": "def handler(e):\n    return e\n"})
    assert found.runtime == "python:3.11"
    err = refused(runtime="nodejs:99", code={"source": "x"})
    assert err.field == "runtime" and "nodejs:18" in str(err) and "python:3.11" in str(err)
    assert refused(runtime=18, code={"source": "x"}).field == "runtime"


def test_each_runtime_has_its_default_handler() -> None:
    assert draft(code={"source": "def handler(e):\n    return 1\n"}).handler == "main.handler"
    node = draft(runtime=NODE, code={"source": "exports.main = (p) => p;"})
    assert node.runtime == NODE and node.handler == "main" and node.code_kind == "source"


def test_python_keeps_its_checks_and_they_never_apply_to_javascript() -> None:
    assert refused(handler="nodots", code={"source": "def nodots(): pass"}).field == "handler"
    err = refused(handler="main.missing", code={"source": "def handler(e): pass"})
    assert err.field == "handler" and "defines no 'missing'" in str(err)
    assert refused(handler="main.handler", code={"source": "def handler(:"}).field == (
        "code.source"
    )
    # JavaScript is not Python: no parse, a bare function is a handler.
    source = "const handler = async (event, context) => ({ ok: true });\nexports.handler = handler;"
    assert draft(runtime=NODE, handler="handler", code={"source": source}).handler == "handler"
    assert draft(runtime=NODE, handler="app.handler", code={"source": source}).handler


@pytest.mark.parametrize(
    ("handler", "source", "field"),
    [
        ("handle", "exports.handler = () => 1;", "handler"),  # a typo: never mentioned
        ("main", "exports.mainly = () => 1;", "handler"),  # a word, not a substring
        ("lib.app.main", "exports.main = () => 1;", "handler"),  # one file, one module
        ("../x.main", "exports.main = () => 1;", "handler"),
        ("1main", "exports.main = () => 1;", "handler"),
        ("main", "   ", "code.source"),
    ],
)
def test_javascript_source_is_checked_loosely(handler: str, source: str, field: str) -> None:
    assert refused(runtime=NODE, handler=handler, code={"source": source}).field == field


def test_a_node_zip_must_hold_what_its_handler_resolves_to() -> None:
    ok = [
        ("main", {"package.json": '{"main": "src/app.js"}', "src/app.js": "x"}),
        ("main", {"package.json": '{"main": "./src/app"}', "src/app.js": "x"}),
        ("main", {"package.json": '{"main": "src"}', "src/index.js": "x"}),
        ("main", {"package.json": '{"name": "no-main"}', "index.js": "x"}),
        ("main", {"index.js": "x"}),
        ("lib/handler.main", {"lib/handler.js": "x"}),
        ("lib.handler.main", {"lib/handler.js": "x"}),
        ("pkg.main", {"pkg/package.json": '{"main": "m.js"}', "pkg/m.js": "x"}),
    ]
    for handler, files in ok:
        assert draft(runtime=NODE, handler=handler, code=zipped(files)).code_kind == "zip"
    bad = [
        ("main", {"src/app.js": "x"}, "handler"),  # nothing at the root
        ("main", {"package.json": '{"main": "gone.js"}'}, "handler"),
        ("main", {"package.json": '{"main": "../../etc/passwd"}'}, "handler"),
        ("main", {"package.json": "{not json"}, "code.zip"),
        ("lib.other.main", {"lib/handler.js": "x"}, "handler"),
        ("../up.main", {"up.js": "x"}, "handler"),
    ]
    for handler, files, field in bad:
        err = refused(runtime=NODE, handler=handler, code=zipped(files))
        assert err.field == field, (handler, files, str(err))


def test_the_documented_handler_pattern_admits_every_runtimes_handlers() -> None:
    for handler in ("main.handler", "pkg.mod.fn", "main", "lib/app.handler", "$x"):
        assert HANDLER.fullmatch(handler), handler
    for handler in ("", "a..b", "main.", ".main", "a b"):
        assert not HANDLER.fullmatch(handler), handler
