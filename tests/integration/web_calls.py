"""What the web tests (native web functions, OpenWhisk web actions) share: a plain HTTP
request, and the answers their function gives that both render the same way."""

from __future__ import annotations

import base64
from typing import Any

from multidict import CIMultiDictProxy

from tests.conftest import Api

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

# Source lines of a function whose `mode` names the answer: a binary image (base64 in the
# result), a redirect and a status of its own. Both tests' functions start with them.
ANSWERS = f"""
PNG = {base64.b64encode(PNG).decode()!r}

def answer(mode):
    if mode == "png":
        return {{"headers": {{"Content-Type": "image/png"}}, "body": PNG}}
    if mode == "redirect":
        return {{"statusCode": 302, "headers": {{"Location": "https://example.org/"}}}}
    if mode == "teapot":
        return {{"statusCode": 418, "body": "short and stout"}}
    return None
"""


async def fetch(
    api: Api, method: str, path: str, **kwargs: Any
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    """A plain HTTP request, without credentials unless given; redirects not followed."""
    async with api.session.request(method, api.url + path, allow_redirects=False, **kwargs) as resp:
        return resp.status, await resp.read(), resp.headers
