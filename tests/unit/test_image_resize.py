"""functions/image_resize: renditions from real images made here with Pillow, and the
handler against a stand-in for the Nimbus object API on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import io
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import ExifTags, Image

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"web": 1280, "tablet": 1024, "mobile": 640}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "image_resize_main", ROOT / "functions" / "image_resize" / "main.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


resize = _load()


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def two_tone(
    size: tuple[int, int], top: tuple[int, ...], bottom: tuple[int, ...], mode: str
) -> Image.Image:
    """An image whose top half is one colour and bottom half another."""
    image = Image.new(mode, size, bottom)
    image.paste(top, (0, 0, size[0], size[1] // 2))
    return image


def expected_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    if width <= max_width:
        return width, height
    return max_width, round(height * max_width / width)


def decoded(renditions: list[Any]) -> dict[str, Image.Image]:
    out: dict[str, Image.Image] = {}
    for r in renditions:
        image = Image.open(io.BytesIO(r.data))
        image.load()
        assert image.size == (r.width, r.height)  # what it says is what it is
        out[r.name] = image
    return out


def px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def near(pixel: Any, colour: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


# ------------------------------------------------------------------ resize_all


def test_jpeg_with_exif_orientation_6_comes_out_upright() -> None:
    # What the camera saw: portrait 1500x3000, red sky over blue sea. It stored the
    # pixels turned a quarter (landscape) and said "rotate 90 clockwise" in EXIF.
    upright = two_tone((1500, 3000), RED, BLUE, "RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.ImageDescription] = "holiday, with GPS"
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    renditions = resize.resize_all(data, "image/jpeg", source="photos/a/b.jpg")

    assert [r.name for r in renditions] == ["web", "tablet", "mobile"]
    images = decoded(renditions)
    for r in renditions:
        image = images[r.name]
        assert image.format == "JPEG" and r.content_type == "image/jpeg"
        assert image.mode == "RGB"
        assert image.info.get("progressive") or image.info.get("progression")
        assert image.size == expected_size(1500, 3000, SIZES[r.name])  # portrait now
        w, h = image.size
        assert near(px(image, (w // 2, h // 10)), RED)
        assert near(px(image, (w // 2, h - h // 10)), BLUE)
        exif_out = image.getexif()
        assert exif_out.get(ExifTags.Base.Orientation, 1) == 1  # no second rotation
        assert ExifTags.Base.ImageDescription not in exif_out


def test_big_jpeg_is_decoded_reduced_but_renditions_are_full_size() -> None:
    source = two_tone((5200, 2600), RED, BLUE, "RGB")
    data = encode(source, "JPEG")
    # The decoder scales by 1/4 (1300 px, still wider than web) instead of decoding 13.5 MP.
    assert resize._open(data, "image/jpeg", "photos/big.jpg").size == (1300, 650)
    renditions = resize.resize_all(data, "image/jpeg")
    for r in renditions:
        assert (r.width, r.height) == expected_size(5200, 2600, SIZES[r.name])
    web = decoded(renditions)["web"]
    assert near(px(web, (640, 100)), RED) and near(px(web, (640, 600)), BLUE)


def test_png_keeps_alpha_and_format() -> None:
    source = Image.new("RGBA", (2000, 1000), (0, 0, 0, 0))  # left half transparent
    source.paste((*GREEN, 255), (1000, 0, 2000, 1000))
    renditions = resize.resize_all(encode(source, "PNG"), "image/png")
    for name, image in decoded(renditions).items():
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.size == expected_size(2000, 1000, SIZES[name])
        w, h = image.size
        assert px(image, (w // 8, h // 2))[3] == 0
        assert px(image, (w - w // 8, h // 2)) == (*GREEN, 255)
    assert {r.content_type for r in renditions} == {"image/png"}


def test_webp_keeps_alpha_and_format() -> None:
    source = Image.new("RGBA", (1600, 1200), (0, 0, 0, 0))
    source.paste((*RED, 255), (0, 600, 1600, 1200))  # bottom half opaque red
    renditions = resize.resize_all(encode(source, "WEBP", lossless=True), "image/webp")
    for name, image in decoded(renditions).items():
        assert image.format == "WEBP" and image.mode == "RGBA"
        assert image.size == expected_size(1600, 1200, SIZES[name])
        w, h = image.size
        assert px(image, (w // 2, h // 8))[3] < 10
        opaque = px(image, (w // 2, h - h // 8))
        assert opaque[3] > 245 and near(opaque, RED)
    assert {r.content_type for r in renditions} == {"image/webp"}


def test_a_small_image_is_never_upscaled() -> None:
    source = two_tone((300, 200), RED, BLUE, "RGB")
    renditions = resize.resize_all(encode(source, "JPEG"), "image/jpeg")
    assert [(r.width, r.height) for r in renditions] == [(300, 200)] * 3
    for image in decoded(renditions).values():
        assert image.size == (300, 200)


def test_between_sizes_only_the_wider_renditions_keep_the_source_width() -> None:
    source = two_tone((1100, 1650), RED, BLUE, "RGB")
    renditions = resize.resize_all(encode(source, "PNG"), None)
    got = {r.name: (r.width, r.height) for r in renditions}
    assert got == {"web": (1100, 1650), "tablet": (1024, 1536), "mobile": (640, 960)}


def test_cmyk_jpeg_becomes_rgb() -> None:
    source = Image.new("CMYK", (1400, 700), (0, 255, 255, 0))  # cyan-less: red
    renditions = resize.resize_all(encode(source, "JPEG"), "image/jpeg")
    for image in decoded(renditions).values():
        assert image.mode == "RGB"
        assert near(px(image, (10, 10)), (255, 0, 0), tolerance=60)


def test_palette_png_with_transparency_keeps_it() -> None:
    source = Image.new("P", (1300, 650), 0)
    source.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    source.paste(1, (650, 0, 1300, 650))
    data = encode(source, "PNG", transparency=0)
    web = decoded(resize.resize_all(data, "image/png"))["web"]
    assert web.mode == "RGBA"
    assert px(web, (100, 300))[3] == 0
    assert px(web, (1200, 300)) == (255, 0, 0, 255)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"shopping list: eggs, milk\n", "text/plain"),
        (b"", None),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"),
    ],
)
def test_not_an_image_fails_with_a_clear_message(data: bytes, content_type: str | None) -> None:
    with pytest.raises(ValueError, match=r"^photos/notes\.txt is not an image Pillow can read: "):
        resize.resize_all(data, content_type, source="photos/notes.txt")


def test_other_image_formats_and_truncated_files_are_refused() -> None:
    gif = encode(Image.new("RGB", (100, 100)), "GIF")
    with pytest.raises(ValueError, match=r"is not an image Pillow can read.*JPEG, PNG and WebP"):
        resize.resize_all(gif, "image/gif", source="photos/x.gif")
    jpeg = encode(two_tone((800, 600), RED, BLUE, "RGB"), "JPEG")
    with pytest.raises(ValueError, match=r"photos/cut\.jpg is not an image Pillow can read"):
        resize.resize_all(jpeg[: len(jpeg) // 2], "image/jpeg", source="photos/cut.jpg")


def test_oversized_images_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resize, "MAX_PIXELS", 1000)
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ValueError, match="too large to resize: 100x100"):
        resize.resize_all(data, "image/png", source="photos/big.png")


@given(st.integers(1, 20_000), st.integers(1, 20_000), st.sampled_from([640, 1024, 1280]))
def test_target_size_keeps_aspect_and_never_upscales(width: int, height: int, cap: int) -> None:
    w, h = resize.target_size(width, height, cap)
    assert w == min(width, cap) and 1 <= h <= height
    assert abs(h - height * w / width) <= 0.5 or h == 1


# ------------------------------------------------------------------ the handler


class FakeNimbus:
    """Objects in a dict behind GET/PUT /v1/buckets/{b}/objects/{key}, bearer-checked."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str]] = []

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _target(self) -> tuple[str, str] | None:
                parts = self.path.split("/", 5)  # '', v1, buckets, b, objects, key
                if len(parts) != 6 or parts[1:3] != ["v1", "buckets"] or parts[4] != "objects":
                    return None
                return urllib.parse.unquote(parts[3]), urllib.parse.unquote(parts[5])

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {store.token}":
                    self._reply(401, b'{"error": {"message": "bad token"}}')
                    return False
                return True

            def do_GET(self) -> None:
                store.requests.append(("GET", self.path))
                target = self._target()
                if not self._authorised():
                    return
                if target is None or target not in store.objects:
                    self._reply(404, b'{"error": {"message": "no such object"}}')
                    return
                data, ctype = store.objects[target]
                self._reply(200, data, ctype)

            def do_PUT(self) -> None:
                store.requests.append(("PUT", self.path))
                target = self._target()
                if not self._authorised():
                    return
                assert target is not None
                body = self.rfile.read(int(self.headers["Content-Length"]))
                store.objects[target] = (body, self.headers["Content-Type"])
                self._reply(200, b"{}")

        return Handler


@pytest.fixture
def nimbus(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNimbus]:
    fake = FakeNimbus("activation-token-123")
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler_class())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NIMBUS_API_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("NIMBUS_API_TOKEN", fake.token)
    yield fake
    server.shutdown()
    server.server_close()


class FakeContext:
    aws_request_id = "act-1"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def test_handler_writes_three_renditions_under_their_size(nimbus: FakeNimbus) -> None:
    key = "summer 2024/été #1.jpg"
    nimbus.objects[("photos", key)] = (
        encode(two_tone((2000, 1500), RED, BLUE, "RGB"), "JPEG"),
        "image/jpeg",
    )
    event = {
        "type": "object.created",
        "bucket": "photos",
        "key": key,
        "size": 1234,
        "content_type": "image/jpeg",
    }
    result = resize.handler(event, FakeContext())

    assert result["source"] == f"photos/{key}"
    assert [r["size"] for r in result["renditions"]] == ["web", "tablet", "mobile"]
    for r in result["renditions"]:
        assert r["key"] == f"{r['size']}/{key}"
        data, ctype = nimbus.objects[("photos-resized", r["key"])]
        assert ctype == "image/jpeg"
        image = Image.open(io.BytesIO(data))
        assert (
            image.size == (r["width"], r["height"]) == expected_size(2000, 1500, SIZES[r["size"]])
        )
    assert sum(1 for method, _ in nimbus.requests if method == "PUT") == 3


def test_handler_fails_cleanly_on_a_text_file(nimbus: FakeNimbus) -> None:
    nimbus.objects[("photos", "notes.txt")] = (b"remember the milk", "text/plain")
    event = {"type": "object.created", "bucket": "photos", "key": "notes.txt", "size": 17}
    with pytest.raises(ValueError, match=r"^photos/notes\.txt is not an image Pillow can read"):
        resize.handler(event, FakeContext())
    assert not any(bucket == "photos-resized" for bucket, _ in nimbus.objects)


def test_handler_reports_api_errors(nimbus: FakeNimbus, monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"type": "object.created", "bucket": "photos", "key": "gone.jpg"}
    with pytest.raises(RuntimeError, match="answered 404"):
        resize.handler(event)
    monkeypatch.setenv("NIMBUS_API_TOKEN", "stolen")
    with pytest.raises(RuntimeError, match="answered 401"):
        resize.handler(event)


def test_handler_skips_deletes_and_refuses_its_own_output_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NIMBUS_API_URL", raising=False)
    deleted = resize.handler({"type": "object.deleted", "bucket": "photos", "key": "a.jpg"})
    assert deleted["renditions"] == [] and "object.deleted" in deleted["skipped"]
    with pytest.raises(ValueError, match="output bucket"):
        resize.handler({"type": "object.created", "bucket": "photos-resized", "key": "web/a.jpg"})
    with pytest.raises(RuntimeError, match="NIMBUS_API_URL"):
        resize.handler({"type": "object.created", "bucket": "photos", "key": "a.jpg"})
