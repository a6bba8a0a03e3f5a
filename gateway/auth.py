"""Tenants and API keys.

Keys are 256-bit random tokens, so a single SHA-256 is the right hash to store: there
is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ADMIN_TENANT = "admin"
TENANT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
KEY_PREFIX = "nmb_"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant every request acts inside, and whether it holds the admin key."""

    tenant: str
    admin: bool = False


def new_key() -> str:
    """A fresh API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the store keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_admin_key(key: str, admin_hash: str) -> bool:
    """Constant-time check of a presented key against the admin key's hash."""
    return bool(admin_hash) and hmac.compare_digest(hash_key(key), admin_hash)


def bearer_token(header: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
