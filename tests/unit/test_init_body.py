"""The /init body built in pieces says exactly what one `json.dumps` of it would, and the
runtime client sends it (from a thread when large) to a real HTTP server on a unix socket."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from invoker.init_body import OFF_LOOP_BYTES, PIECE_BYTES, init_body
from invoker.runtime_client import RuntimeClient

ENV = {"GREETING": "grüß dich", "QUOTE": 'say "hi"\n'}


def _value(body: bytes) -> Any:
    return json.loads(body)["value"]


@pytest.mark.parametrize(
    "size", [0, 1, 2, 3, PIECE_BYTES - 1, PIECE_BYTES, PIECE_BYTES + 1, 2 * PIECE_BYTES + 2]
)
def test_zip_bytes_are_one_base64_string_whatever_the_piece_boundaries(size: int) -> None:
    code = os.urandom(size)
    value = _value(init_body(code, binary=True, main="main.handler", env=ENV))
    assert value == {
        "code": base64.b64encode(code).decode(),
        "binary": True,
        "main": "main.handler",
        "env": ENV,
    }


def test_source_keeps_characters_split_across_pieces() -> None:
    # A three-byte character straddles the first piece boundary; then quotes, backslashes,
    # control characters and a character outside the BMP, all of which JSON escapes.
    source = "x" * (PIECE_BYTES - 1) + "€" + '"\\\n\t\x01 😀 ' * 1000
    body = init_body(source.encode(), binary=False, main="m.h", env={})
    assert _value(body)["code"] == source
    assert body.isascii()


def test_text_code_is_sent_as_it_is() -> None:
    text = base64.b64encode(os.urandom(PIECE_BYTES * 2)).decode()
    assert _value(init_body(text, binary=True, main="m.h", env={}))["code"] == text
    source = 'print("ü")\n' * 100_000
    assert _value(init_body(source, binary=False, main="m.h", env={}))["code"] == source


def test_source_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        init_body(b"x" * PIECE_BYTES + b"\xff\xfe", binary=False, main="m.h", env={})


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[tuple[str, list[Any]]]:
    """An HTTP server on a unix socket that answers /init and /run like a runtime proxy."""
    received: list[Any] = []

    async def answer(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.json_response({"ok": True, "result": 1})

    app = web.Application(client_max_size=128 * 2**20)
    app.router.add_post("/init", answer)
    app.router.add_post("/run", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "p.sock"
    await web.UnixSite(runner, str(path)).start()
    yield f"unix:{path}", received
    await runner.cleanup()


async def test_the_client_sends_large_and_small_code_intact(
    proxy: tuple[str, list[Any]],
) -> None:
    address, received = proxy
    client = RuntimeClient()
    client.trust(address, None)
    large = os.urandom(OFF_LOOP_BYTES * 3 + 7)  # built in a thread
    try:
        first = await client.init(address, code=large, binary=True, main="m.h", env={}, timeout=10)
        second = await client.init(
            address, code=b"def h(e):\n    return e\n", binary=False, main="m.h", env={}, timeout=10
        )
        run = await client.run(address, {"value": {"n": 1}}, timeout=10)
    finally:
        await client.close()

    assert first.ok and second.ok and run.body == {"ok": True, "result": 1}
    assert base64.b64decode(received[0]["value"]["code"]) == large
    assert received[0]["value"]["binary"] is True
    assert received[1]["value"] == {
        "code": "def h(e):\n    return e\n",
        "binary": False,
        "main": "m.h",
        "env": {},
    }
    assert received[2] == {"value": {"n": 1}}
