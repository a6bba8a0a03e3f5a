"""Opaque paging cursors for activation listings. Pure.

A page ends at a store sequence number (`seq`), which counts every tenant's activations:
shown as is, it would tell a tenant how many calls others made between two of its own. So
the cursor carries it encrypted (a keyed pad from HMAC-SHA256 over a random nonce) and
authenticated (an HMAC tag that also binds the tenant): a tenant learns nothing from a
cursor, and a forged or another tenant's cursor is refused. The key is the store's
(`Store.secret`), so every gateway of one store reads every other's cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

_NONCE = 8
_SEQ = 8
_TAG = 12
_SIZE = _NONCE + _SEQ + _TAG


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"\x00".join(parts), hashlib.sha256).digest()


def encode_cursor(key: bytes, tenant: str, seq: int, nonce: bytes | None = None) -> str:
    """The cursor that resumes a listing of `tenant` after `seq` (URL-safe text)."""
    nonce = os.urandom(_NONCE) if nonce is None else nonce
    pad = _mac(key, b"pad", nonce)[:_SEQ]
    hidden = bytes(a ^ b for a, b in zip(seq.to_bytes(_SEQ, "big"), pad, strict=True))
    tag = _mac(key, b"tag", tenant.encode(), nonce, hidden)[:_TAG]
    return base64.urlsafe_b64encode(nonce + hidden + tag).decode().rstrip("=")


def decode_cursor(key: bytes, tenant: str, cursor: str) -> int | None:
    """The `seq` a cursor of `tenant` resumes after; None for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _SIZE:
        return None
    nonce, hidden, tag = raw[:_NONCE], raw[_NONCE : _NONCE + _SEQ], raw[_NONCE + _SEQ :]
    if not hmac.compare_digest(tag, _mac(key, b"tag", tenant.encode(), nonce, hidden)[:_TAG]):
        return None
    pad = _mac(key, b"pad", nonce)[:_SEQ]
    return int.from_bytes(bytes(a ^ b for a, b in zip(hidden, pad, strict=True)), "big")
