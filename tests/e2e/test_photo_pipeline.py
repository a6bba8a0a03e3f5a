"""The seed's example end to end on real Docker: upload a photo, get web/tablet/mobile sizes."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from gateway.cli.packaging import build_zip
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = {"web": 1280, "tablet": 1024, "mobile": 640}


@pytest.fixture(scope="module")
def resize_zip() -> str:
    """functions/image_resize zipped with Pillow vendored, as `nimbus deploy` sends it."""
    return base64.b64encode(
        build_zip(ROOT / "functions" / "image_resize", lambda line: None)
    ).decode()


def jpeg(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    for x in range(0, width, 50):
        image.paste((20, 20, 220), (x, 0, x + 10, height))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


async def put_object(api: Api, bucket: str, key: str, data: bytes, content_type: str) -> None:
    headers = {**api.headers(), "Content-Type": content_type}
    async with api.session.put(
        f"{api.url}/v1/buckets/{bucket}/objects/{key}", data=data, headers=headers
    ) as resp:
        assert resp.status == 201, await resp.text()


async def get_object(api: Api, bucket: str, key: str) -> bytes | None:
    async with api.session.get(
        f"{api.url}/v1/buckets/{bucket}/objects/{key}", headers=api.headers()
    ) as resp:
        return await resp.read() if resp.status == 200 else None


async def activations_of(api: Api, function: str) -> list[dict]:
    _, body, _ = await api.call("GET", f"/v1/activations?function={function}&limit=100")
    return body["activations"]


async def settle(api: Api, function: str, count: int, timeout: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        acts = await activations_of(api, function)
        finished = [a for a in acts if a["status"] not in ("pending", "running")]
        final = [a for a in finished if a["status"] == "success" or a["dead_letter"]]
        if len(final) >= count:
            return acts
        assert time.monotonic() < deadline, acts
        await asyncio.sleep(0.2)


@pytest.mark.platform(async_backoff_s=0.2)
async def test_upload_is_resized_into_three_renditions(api: Api, resize_zip: str) -> None:
    for bucket in ("photos", "photos-resized"):
        assert (await api.call("PUT", f"/v1/buckets/{bucket}"))[0] == 201
    body = {
        "runtime": "python:3.11",
        "handler": "main.handler",
        "code": {"zip": resize_zip},
        "memory_mb": 512,
        "timeout_s": 60,
    }
    status, fn, _ = await api.call("PUT", "/v1/functions/image_resize", body)
    assert status == 201, fn
    status, _, _ = await api.call(
        "PUT", "/v1/triggers/uploads", {"type": "bucket", "bucket": "photos", "events": ["created"]}
    )
    assert status == 201
    status, _, _ = await api.call(
        "PUT", "/v1/rules/resize", {"trigger": "uploads", "function": "image_resize"}
    )
    assert status == 201

    await put_object(api, "photos", "2026/beach.jpg", jpeg(2000, 1500), "image/jpeg")
    acts = await settle(api, "image_resize", 1)
    assert acts[0]["status"] == "success", acts[0]
    assert acts[0]["trigger"] == "uploads"
    for size, width in WIDTHS.items():
        data = await get_object(api, "photos-resized", f"{size}/2026/beach.jpg")
        assert data is not None, size
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG"
        assert image.size == (width, width * 3 // 4), size

    _, bill, _ = await api.call("GET", "/v1/billing")
    lines = {line["key"]: line for line in bill["lines"]}
    assert lines["image_resize"]["invocations"] == 1  # one invocation per upload

    # A text file is the function's failure, cleanly: no renditions, nothing else breaks.
    await put_object(api, "photos", "notes.txt", b"not a photo at all", "text/plain")
    acts = await settle(api, "image_resize", 2)
    failed = next(a for a in acts if a["status"] != "success")
    assert failed["status"] == "application_error"
    assert "not an image" in failed["error"]
    for size in WIDTHS:
        assert await get_object(api, "photos-resized", f"{size}/notes.txt") is None
    status, _, _ = await api.invoke(
        "image_resize", {"type": "object.deleted", "bucket": "photos", "key": "x"}
    )
    assert status == 200  # the platform and the function still answer
