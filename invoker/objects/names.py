"""What the object store accepts: bucket names, keys, prefixes, content types, limits.

Pure validation and its errors; the object store (`invoker.objects.service`) and the
HTTP routes use both.
"""

from __future__ import annotations

import ipaddress
import re

MAX_KEY_BYTES = 1024
MAX_CONTENT_TYPE_CHARS = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_LIST_LIMIT = 1000
LAST_CODE_POINT = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# errors


class BucketError(Exception):
    """Anything the object store refuses; the routes turn each kind into a status."""


class InvalidInput(BucketError):
    """A bucket name, key, content type, limit or body that fails validation."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class NoSuchBucket(BucketError):
    """The tenant has no bucket of that name."""

    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} not found")
        self.bucket = bucket


class BucketNotEmpty(BucketError):
    """Only an empty bucket can be deleted."""

    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} is not empty: delete its objects first")
        self.bucket = bucket


# validation (pure)


def check_bucket_name(name: str) -> str:
    """An S3-style bucket name: 3-63 of lowercase letters, digits, '-', '.'."""
    if (
        not BUCKET_NAME.fullmatch(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or _is_ip_address(name)
    ):
        raise InvalidInput(
            "bucket names are 3-63 characters of lowercase letters, digits, '-' and '.', "
            "start and end with a letter or digit, have no '..' and are not an IP address",
            "bucket",
        )
    return name


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def check_key(key: str) -> str:
    """An object key: 1-1024 bytes of UTF-8, no NUL, no leading '/', no '..' segment."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("the key must be valid UTF-8", "key") from None
    if not 1 <= size <= MAX_KEY_BYTES:
        raise InvalidInput(f"the key must be 1-{MAX_KEY_BYTES} bytes of UTF-8, got {size}", "key")
    if "\x00" in key:
        raise InvalidInput("the key must not contain NUL", "key")
    if key.startswith("/"):
        raise InvalidInput("the key must not start with '/'", "key")
    if ".." in key.split("/"):
        raise InvalidInput("the key must not have a '..' path segment", "key")
    return key


def check_prefix(prefix: str, field: str = "prefix") -> str:
    """A listing prefix or start key: valid UTF-8, at most as long as a key."""
    try:
        size = len(prefix.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} must be valid UTF-8", field) from None
    if size > MAX_KEY_BYTES:
        raise InvalidInput(f"{field} must be at most {MAX_KEY_BYTES} bytes", field)
    return prefix


def check_content_type(content_type: str | None) -> str:
    """The content type kept with an object; none given means application/octet-stream."""
    if content_type is None or not content_type.strip():
        return DEFAULT_CONTENT_TYPE
    if len(content_type) > MAX_CONTENT_TYPE_CHARS or not content_type.isprintable():
        raise InvalidInput(
            f"the content type must be at most {MAX_CONTENT_TYPE_CHARS} printable characters",
            "content_type",
        )
    return content_type


def check_limit(limit: int) -> int:
    """How many objects one listing page holds: 1..1000."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}", "limit")
    return limit


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (None: no bound).

    Keys compare by code point (SQLite's BINARY collation on UTF-8 gives the same order), so
    the keys with a prefix are exactly those in ``[prefix, prefix_upper_bound(prefix))``.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < LAST_CODE_POINT:
            following = last + 1
            if following in SURROGATES:
                following = SURROGATES.stop
            return "".join(chars) + chr(following)
    return None
