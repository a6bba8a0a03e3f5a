"""Tenants and API keys.

Keys are 256-bit random tokens, so a single SHA-256 is the right hash to store: there
is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_TENANT = "admin"
TENANT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
KEY_PREFIX = "nmb_"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant every request acts inside, and whether it holds the admin key.

    `via_token` is True for a function's short-lived activation token: it acts as the
    tenant but may not manage the tenant's API keys (a leaked token must expire, not mint
    a key that never does).
    """

    tenant: str
    admin: bool = False
    via_token: bool = False


def new_key() -> str:
    """A fresh API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the store keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_admin_key(key: str, admin_hash: str) -> bool:
    """Constant-time check of a presented key against the admin key's hash."""
    return is_admin_hash(hash_key(key), admin_hash)


def is_admin_hash(hashed: str, admin_hash: str) -> bool:
    """Constant-time check of a presented key's hash against the admin key's hash."""
    return bool(admin_hash) and hmac.compare_digest(hashed, admin_hash)


# Keys and tokens are printable ASCII without spaces (RFC 6750 allows less); anything else
# (`nmb_é`, control characters, undecodable bytes) is no key at all, never an encoding error.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]{1,4096}")


def bearer_token(header: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header; None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN_CHARS.fullmatch(token):
        return None
    return token


ACTIVATION_PREFIX = "nmb_act_"


def load_token_secret(path: Path) -> bytes:
    """The key that signs activation tokens: made once per data dir, kept 0600."""
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex())
    return secret


def mint_activation_token(secret: bytes, tenant: str, expires: float) -> str:
    """A short-lived bearer token that acts as `tenant` until `expires` (epoch seconds).

    Like OpenWhisk's __OW_API_KEY, but scoped and expiring: a function can call the API
    for its own tenant during its call, and a leaked token soon stops working.
    """
    body = base64.urlsafe_b64encode(json.dumps([tenant, int(expires)]).encode()).decode()
    mac = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{ACTIVATION_PREFIX}{body}.{mac}"


def verify_activation_token(secret: bytes, token: str, now: float) -> str | None:
    """The tenant a valid, unexpired activation token acts as; None otherwise."""
    if not token.startswith(ACTIVATION_PREFIX):
        return None
    body, _, mac = token[len(ACTIVATION_PREFIX) :].rpartition(".")
    expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    if not body or not hmac.compare_digest(mac, expected):
        return None
    try:
        tenant, expires = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(tenant, str) or not isinstance(expires, int) or expires < now:
        return None
    return tenant
