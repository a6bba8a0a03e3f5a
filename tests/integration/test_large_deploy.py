"""A large deploy through the HTTP API: its body is parsed, its base64 decoded and its /init
body built in pieces (off the event loop), with the same answers and 400s as before."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile

from tests.conftest import Api

MAIN = b"""import os
def handler(event):
    return os.path.getsize(os.path.join(os.path.dirname(__file__), "blob.bin"))
"""


def _zip(blob: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", MAIN)
        archive.writestr("blob.bin", blob)
    return buf.getvalue()


async def test_a_large_zip_deploys_loads_and_runs(api: Api) -> None:
    blob = os.urandom(3 * 2**20)  # a 4 MiB base64 string: parsed and sent in pieces
    code = _zip(blob)
    body = {"handler": "main.handler", "code": {"zip": base64.b64encode(code).decode()}}
    status, stored, _ = await api.call("PUT", "/v1/functions/large", body)
    assert status == 201, stored
    assert stored["code_size"] == len(code)
    assert stored["code_sha256"] == hashlib.sha256(code).hexdigest()

    status, result, headers = await api.invoke("large")
    assert (status, result) == (200, len(blob)), result  # the container got every byte
    assert headers["X-Nimbus-Cold-Start"] == "true"


async def test_a_large_body_is_refused_in_the_same_words(api: Api) -> None:
    encoded = base64.b64encode(_zip(os.urandom(3 * 2**20))).decode()
    # Padding in the middle: each piece alone is valid base64, the whole is not.
    padded = "QQ==" + encoded[4:]
    body = {"handler": "main.handler", "code": {"zip": padded}}
    status, payload, _ = await api.call("PUT", "/v1/functions/padded", body)
    assert status == 400
    assert payload["error"]["field"] == "code.zip"
    assert "not valid base64" in payload["error"]["message"]

    # A raw control character inside the long string: not JSON, whatever its length.
    raw = json.dumps({"handler": "main.handler", "code": {"zip": encoded}}).encode()
    broken = raw.replace(encoded[:64].encode(), encoded[:63].encode() + b"\x01", 1)
    status, payload, _ = await api.call("PUT", "/v1/functions/broken", data=broken)
    assert status == 400
    assert payload["error"]["field"] == "body"
    assert payload["error"]["message"].startswith("the body is not valid JSON: Invalid control")

    status, listed, _ = await api.call("GET", "/v1/functions")
    assert status == 200 and listed["functions"] == []  # nothing was stored
