"""The console's files over HTTP: types, the CSP and caching headers, and nothing served
from outside `gateway/console/static/`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.console import routes as console
from gateway.console.assets import STATIC_DIR, load_assets, resolve
from gateway.console.routes import is_console_path
from gateway.middleware import errors


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[errors])  # the gateway's JSON errors
    console.setup(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/index.html", "text/html"),
        ("/console/js/app.js", "text/javascript"),
        ("/console/js/views/nodes.js", "text/javascript"),
        ("/console/style.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ],
)
async def test_files_have_their_types_and_the_security_headers(
    client: TestClient[web.Request, web.Application], path: str, content_type: str
) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith(content_type)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["ETag"].startswith('"')


async def test_an_unchanged_file_answers_304(
    client: TestClient[web.Request, web.Application],
) -> None:
    first = await client.get("/console/js/app.js")
    etag = first.headers["ETag"]
    again = await client.get("/console/js/app.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == etag
    other = await client.get("/console/js/app.js", headers={"If-None-Match": '"stale"'})
    assert other.status == 200


async def test_the_page_has_no_inline_script_or_style(
    client: TestClient[web.Request, web.Application],
) -> None:
    html = await (await client.get("/console")).text()
    assert '<script type="module" src="/console/js/app.js"></script>' in html
    assert html.count("<script") == 1  # the one module, by src: the CSP forbids inline ones
    assert " style=" not in html and "<style" not in html


@pytest.mark.parametrize(
    "path",
    [
        "/console/../__init__.py",
        "/console/%2e%2e/routes.py",
        "/console/..%2froutes.py",
        "/console/js/..%2f..%2fassets.py",
        "/console//etc/passwd",
        "/console/%2fetc%2fpasswd",
        "/console/static/index.html",
        "/console/missing.js",
        "/console/js/",
    ],
)
async def test_nothing_outside_static_is_served(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    resp = await client.get(path)
    assert resp.status == 404
    body = await resp.read()
    assert b"def " not in body and b"root:" not in body


def test_only_regular_files_of_known_types_are_in_the_table(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.md").write_text("not served")
    (tmp_path / "secret.py").write_text("KEY = 1")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.js"
    outside.write_text("outside")
    (tmp_path / "link.js").symlink_to(outside)
    table = load_assets(tmp_path)
    assert set(table) == {"index.html"}
    assert resolve(table, "") is table["index.html"]
    assert resolve(table, "../secret.py") is None


def test_every_script_the_page_loads_is_served() -> None:
    table = load_assets()
    modules = [p for p in table if p.startswith("js/")]
    assert "js/app.js" in modules and len(modules) >= 10
    assert all(table[p].content_type.startswith("text/javascript") for p in modules)
    assert STATIC_DIR.name == "static"


def test_console_paths_are_told_apart() -> None:
    assert is_console_path("/console") and is_console_path("/console/js/app.js")
    assert not is_console_path("/consoles") and not is_console_path("/v1/console")
