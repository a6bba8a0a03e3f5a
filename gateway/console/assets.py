"""The console's static files, read once into memory, and the headers they leave with.

Pure: no aiohttp here. A request names a file by its path under `static/`; only files that
were found there when the table was built can be served, so no request path (`..`,
encoded slashes, absolute paths, symlinks out) can reach anything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
INDEX = "index.html"

# Only these kinds are served; anything else under static/ is left out of the table.
CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/x-icon",
    ".png": "image/png",
}

# Strict: scripts, styles, images and fetches from this origin only; no inline script or
# style, no plugins, no framing, no <base> tricks, forms post nowhere else.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# No build step, so file names carry no content hash: a browser may keep a copy but must
# revalidate it (a 304 costs a round trip, never a stale console after an upgrade).
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True)
class Asset:
    """One static file: its bytes, type and strong validator."""

    path: str  # relative to static/, with forward slashes
    body: bytes
    content_type: str
    etag: str

    def headers(self) -> dict[str, str]:
        """Headers for a 200 or 304 answer carrying this file."""
        return {
            "Content-Type": self.content_type,
            "ETag": self.etag,
            "Cache-Control": CACHE_CONTROL,
            **SECURITY_HEADERS,
        }

    def matches(self, if_none_match: str | None) -> bool:
        """Whether the browser's copy (its `If-None-Match`) is this version."""
        if not if_none_match:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every servable file under `root`, by its relative path (symlinks are not followed)."""
    table: dict[str, Asset] = {}
    base = root.resolve()
    for file in sorted(base.rglob("*")):
        content_type = CONTENT_TYPES.get(file.suffix.lower())
        if content_type is None or file.is_symlink() or not file.is_file():
            continue
        body = file.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        rel = file.relative_to(base).as_posix()
        table[rel] = Asset(rel, body, content_type, f'"{digest}"')
    return table


def resolve(table: Mapping[str, Asset], path: str) -> Asset | None:
    """The asset a request path under `/console/` names; the index for an empty one.

    A lookup, never a filesystem path join: a name not in the table is None.
    """
    return table.get(path or INDEX)
