"""image_resize: web, tablet and mobile renditions of a photo uploaded to a bucket.

Triggered by an `object.created` event from bucket `photos`::

    {"type": "object.created", "bucket": "photos", "key": "a/b.jpg",
     "size": 123456, "content_type": "image/jpeg"}

it reads the object back through the Nimbus API (`NIMBUS_API_URL`, bearer
`NIMBUS_API_TOKEN`, both set by the platform for each activation) and writes three
renditions to bucket `photos-resized` at `<size>/<key>`:

    web 1280 px wide, tablet 1024 px, mobile 640 px

- Aspect ratio is kept; an image is never upscaled: a source narrower than a size keeps
  its own width in that rendition (a 300 px photo gives three 300 px renditions).
- EXIF orientation is applied to the pixels, then metadata other than the colour profile
  is dropped (so no GPS position leaks and no viewer rotates the image a second time).
- JPEG, PNG and WebP come in and go out in the same format: JPEG at quality 85,
  progressive, in RGB or greyscale (CMYK is converted through its ICC profile, palette and
  alpha images are flattened onto white); PNG optimised, keeping alpha; WebP at quality
  85, keeping alpha. Animated images give their first frame.
- Anything else fails the activation with a ValueError that says so.

`resize_all` is the pure part (bytes in, renditions out), usable without a network.
Only the standard library and Pillow are used (`requirements.txt`).
"""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NamedTuple

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

OUTPUT_BUCKET = "photos-resized"
SIZES: tuple[tuple[str, int], ...] = (("web", 1280), ("tablet", 1024), ("mobile", 640))
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Checked from the header before decoding: a 50 MP RGB image is 150 MB in memory.
MAX_PIXELS = 50_000_000
JPEG_QUALITY = 85
WEBP_QUALITY = 85
HTTP_TIMEOUT_S = 30.0

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}


class Rendition(NamedTuple):
    """One output image: its size name, encoded bytes, pixel size and content type."""

    name: str
    data: bytes
    width: int
    height: int
    content_type: str


# --------------------------------------------------------------- pure resizing


def target_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The size of a rendition at most `max_width` wide: aspect kept, never upscaled."""
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def resize_all(
    data: bytes, content_type: str | None, *, source: str = "the upload"
) -> list[Rendition]:
    """Decode `data` and return the web, tablet and mobile renditions, in that order.

    `source` names the image in error messages. The bytes decide the format;
    `content_type` only helps explain a failure. Raises ValueError when the data is not
    a JPEG, PNG or WebP image Pillow can decode, or is too large to decode.
    """
    image = _open(data, content_type, source)
    fmt = str(image.format)
    icc = image.info.get("icc_profile")
    original_mode = image.mode
    image = ImageOps.exif_transpose(image)
    image, keep_icc = _output_mode(image, fmt, icc)
    profile = icc if keep_icc and _same_family(original_mode, image.mode) else None

    renditions: list[Rendition] = []
    for name, max_width in SIZES:
        size = target_size(image.width, image.height, max_width)
        scaled = image
        if size != image.size:
            # reducing_gap: a fast box reduction first, then Lanczos over the last 3x.
            scaled = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        renditions.append(
            Rendition(name, _encode(scaled, fmt, profile), size[0], size[1], CONTENT_TYPES[fmt])
        )
    return renditions


def _open(data: bytes, content_type: str | None, source: str) -> Image.Image:
    def not_an_image(reason: object) -> ValueError:
        declared = f"declared {content_type}" if content_type else "no content type"
        return ValueError(
            f"{source} is not an image Pillow can read: {reason} "
            f"({declared}; image_resize takes JPEG, PNG and WebP)"
        )

    try:
        # Only the decoders we serve: fewer parsers exposed to untrusted uploads.
        image = Image.open(io.BytesIO(data), formats=list(CONTENT_TYPES))
    except UnidentifiedImageError:
        # Pillow's own text names a BytesIO object's address: no help to anyone.
        raise not_an_image("its format is not recognised") from None
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        raise not_an_image(exc) from None
    if image.format == "JPEG":
        _draft_jpeg(image)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"{source} is too large to resize: {width}x{height} pixels "
            f"(the limit is {MAX_PIXELS:,})"
        )
    try:
        image.load()  # decoding is lazy: a truncated file fails here
    except (OSError, ValueError, SyntaxError) as exc:
        raise not_an_image(exc) from None
    return image


def _draft_jpeg(image: Image.Image) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while staying at least as wide as
    the widest rendition: a big photo then decodes in a fraction of the memory and time."""
    widest = max(width for _, width in SIZES)
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    # Orientations 5-8 turn the image a quarter: its stored height becomes its width.
    image.draft(None, (1, widest) if orientation in (5, 6, 7, 8) else (widest, 1))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def _same_family(before: str, after: str) -> bool:
    """Whether an ICC profile for `before` still describes pixels in `after`."""

    def family(mode: str) -> str:
        if mode == "CMYK":
            return "cmyk"
        return "grey" if mode in _GREY_MODES else "rgb"

    return family(before) == family(after)


def _output_mode(image: Image.Image, fmt: str, icc: bytes | None) -> tuple[Image.Image, bool]:
    """Convert to a mode `fmt` can store and Lanczos can resize; say whether `icc` (the
    source's colour profile) still applies."""
    mode = image.mode
    if fmt == "JPEG":
        if mode in ("RGB", "L"):
            return image, True
        if mode == "CMYK":
            # Browsers render CMYK JPEGs badly or not at all: go to sRGB.
            return _cmyk_to_rgb(image, icc), False
        if _has_alpha(image):
            return _flatten(image), True
        return image.convert("L" if mode == "1" else "RGB"), True
    if fmt == "PNG":
        if mode in ("RGB", "RGBA", "L", "LA", "I"):
            return image, True
        if mode.startswith("I;16"):
            return image.convert("I"), True  # 16-bit grey: resized in 32-bit, saved as 16
        if mode == "1":
            return image.convert("L"), True
        # Palette images would resize with nearest-neighbour only.
        return image.convert("RGBA" if _has_alpha(image) else "RGB"), True
    # WebP stores RGB or RGBA only.
    if mode in ("RGB", "RGBA"):
        return image, True
    return image.convert("RGBA" if _has_alpha(image) else "RGB"), True


def _flatten(image: Image.Image) -> Image.Image:
    """Composite onto white: JPEG has no alpha, and black behind it looks broken."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        from PIL import ImageCms  # loads LittleCMS only for the images that need it

        try:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken embedded profile: fall back to the plain formula
        else:
            if converted is not None:
                return converted
    return image.convert("RGB")


def _encode(image: Image.Image, fmt: str, icc: bytes | None) -> bytes:
    params: dict[str, Any]
    if fmt == "JPEG":
        params = {"quality": JPEG_QUALITY, "progressive": True, "optimize": True}
    elif fmt == "PNG":
        params = {"optimize": True}
    else:
        params = {"quality": WEBP_QUALITY, "method": 4}
    if icc:
        params["icc_profile"] = icc
    # Pillow carries `info` (EXIF, XMP, comments) into resized copies and some encoders
    # write it back out: encode from a copy that keeps only what we chose.
    clean = image.copy()
    clean.info = {k: v for k, v in image.info.items() if k == "transparency"}
    buf = io.BytesIO()
    clean.save(buf, format=fmt, **params)
    return buf.getvalue()


# --------------------------------------------------------------- the function


class NimbusObjects:
    """GET and PUT objects through the Nimbus bucket API, with the activation's token."""

    def __init__(self, api_url: str, token: str, timeout_s: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    @classmethod
    def from_env(cls, environ: dict[str, str], timeout_s: float) -> NimbusObjects:
        """Built from NIMBUS_API_URL and NIMBUS_API_TOKEN, which the platform sets."""
        url = environ.get("NIMBUS_API_URL")
        token = environ.get("NIMBUS_API_TOKEN")
        if not url or not token:
            raise RuntimeError(
                "NIMBUS_API_URL and NIMBUS_API_TOKEN are not set: image_resize must run "
                "as a Nimbus activation, which is given both"
            )
        return cls(url, token, timeout_s)

    def _url(self, bucket: str, key: str) -> str:
        return (
            f"{self.api_url}/v1/buckets/{urllib.parse.quote(bucket, safe='')}"
            f"/objects/{urllib.parse.quote(key, safe='/')}"
        )

    def _call(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> bytes:
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise RuntimeError(f"{method} {url} answered {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"{method} {url} failed: {exc.reason}") from None

    def get(self, bucket: str, key: str) -> bytes:
        """The object's raw bytes."""
        return self._call("GET", self._url(bucket, key), None, {})

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        """Store raw bytes with a content type."""
        self._call("PUT", self._url(bucket, key), data, {"Content-Type": content_type})


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Resize the object named by a bucket event into `photos-resized/<size>/<key>`."""
    bucket, key = event.get("bucket"), event.get("key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise ValueError('the event needs "bucket" and "key" (a bucket object event)')
    source = f"{bucket}/{key}"
    kind = event.get("type", "object.created")
    if kind != "object.created":
        return {"source": source, "renditions": [], "skipped": f"{kind} events are ignored"}
    if bucket == OUTPUT_BUCKET:
        raise ValueError(
            f"{source}: refusing to resize objects in {OUTPUT_BUCKET}, the output bucket "
            "(a trigger on it would feed its own output back in)"
        )
    timeout = HTTP_TIMEOUT_S
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        timeout = max(1.0, min(timeout, context.get_remaining_time_in_millis() / 1000))
    objects = NimbusObjects.from_env(dict(os.environ), timeout)

    data = objects.get(bucket, key)
    content_type = event.get("content_type")
    renditions = resize_all(
        data, content_type if isinstance(content_type, str) else None, source=source
    )
    written = []
    for rendition in renditions:
        out_key = f"{rendition.name}/{key}"
        objects.put(OUTPUT_BUCKET, out_key, rendition.data, rendition.content_type)
        print(f"{source} -> {OUTPUT_BUCKET}/{out_key} {rendition.width}x{rendition.height}")
        written.append(
            {
                "size": rendition.name,
                "key": out_key,
                "width": rendition.width,
                "height": rendition.height,
                "bytes": len(rendition.data),
            }
        )
    return {"source": source, "bucket": OUTPUT_BUCKET, "renditions": written}
