"""API keys and activation tokens."""

from __future__ import annotations

from gateway.auth import (
    bearer_token,
    hash_key,
    is_admin_key,
    mint_activation_token,
    new_key,
    verify_activation_token,
)

SECRET = b"k" * 32


def test_activation_token_round_trip_and_expiry() -> None:
    token = mint_activation_token(SECRET, "team-a", expires=1000.0)
    assert verify_activation_token(SECRET, token, now=999.0) == "team-a"
    assert verify_activation_token(SECRET, token, now=1001.0) is None
    assert verify_activation_token(b"x" * 32, token, now=999.0) is None


def test_activation_token_cannot_be_altered() -> None:
    token = mint_activation_token(SECRET, "team-a", expires=1000.0)
    other = mint_activation_token(SECRET, "team-b", expires=1000.0)
    forged = other.rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
    assert verify_activation_token(SECRET, forged, now=0.0) is None
    assert verify_activation_token(SECRET, "nmb_act_", now=0.0) is None
    assert verify_activation_token(SECRET, "nmb_act_!!!.abc", now=0.0) is None


def test_keys_and_bearer_parsing() -> None:
    key = new_key()
    assert key != new_key() and len(key) > 40
    assert is_admin_key(key, hash_key(key)) and not is_admin_key(key, hash_key("other"))
    assert not is_admin_key(key, "")
    assert bearer_token(f"Bearer {key}") == key
    assert bearer_token("Basic abc") is None and bearer_token(None) is None
