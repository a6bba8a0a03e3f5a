"""OpenWhisk's authentication: HTTP Basic `uuid:key`, and namespaces.

An OpenWhisk credential IS one of the tenant's API keys, whose secret string happens to be
`uuid:key`: it is stored as its SHA-256 in the same table, counts against the same cap,
is listed and revoked with `/v1/tenants/self/keys`, and dies with its tenant. So Basic
auth is the native key lookup on the decoded `user:password` string (any API key of the
tenant works as that string too), and revocation, rotation and tenant deletion need
nothing of their own.

A namespace is a tenant: `_` is the caller's own, and so is its tenant's name; any other
answers 403, as OpenWhisk does, whether or not such a tenant exists.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import uuid
from dataclasses import dataclass

from aiohttp import web

from gateway.auth import ADMIN_TENANT, Caller, bearer_token, hash_key, is_admin_hash
from gateway.errors import ApiError
from gateway.keys import ADMIN_HASH, PLATFORM
from invoker.store.base import Store
from invoker.store.tenants import KeyInfo

DEFAULT_NAMESPACE = "_"
KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64  # as OpenWhisk's own keys
UNAUTHORIZED = "The supplied authentication is invalid."
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,4096}")
# Without credentials: the API's description, and web actions (their own rules apply).
_PUBLIC_EXACT = frozenset({"/api/v1", "/api/v1/"})
_PUBLIC_PREFIX = "/api/v1/web/"


@dataclass(frozen=True)
class Credential:
    """A freshly minted OpenWhisk credential: shown once, stored only hashed."""

    uuid: str
    key: str
    info: KeyInfo

    @property
    def auth(self) -> str:
        """The `uuid:key` string clients are configured with (`wsk property set --auth`)."""
        return f"{self.uuid}:{self.key}"

    def to_json(self) -> dict[str, str]:
        """As `POST /v1/tenants` and `POST /v1/openwhisk/credentials` show it."""
        return {"uuid": self.uuid, "key": self.key, "auth": self.auth}


def new_credential() -> tuple[str, str]:
    """A fresh (uuid, key) pair."""
    key = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))
    return str(uuid.uuid4()), key


async def mint_credential(store: Store, tenant: str, now: float) -> Credential | None:
    """Add an OpenWhisk credential to the tenant's keys; None without such a tenant.

    Raises `TooManyKeysError` at the tenant's key cap, like any other key.
    """
    user, key = new_credential()
    info = await store.add_key(tenant, hash_key(f"{user}:{key}"), now)
    return None if info is None else Credential(uuid=user, key=key, info=info)


def is_public(path: str) -> bool:
    """Paths of the facade that need no credentials."""
    return path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIX)


def basic_secret(header: str | None) -> str | None:
    """The `user:password` string of an `Authorization: Basic` header; None if malformed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return decoded if _PRINTABLE.fullmatch(decoded) else None


async def _caller_of(request: web.Request, secret: str) -> Caller | None:
    hashed = hash_key(secret)
    if is_admin_hash(hashed, request.app[ADMIN_HASH]):
        return Caller(tenant=ADMIN_TENANT, admin=True)
    tenant = await request.app[PLATFORM].tenant_for_key(hashed)
    return None if tenant is None else Caller(tenant=tenant)


async def basic_caller(request: web.Request) -> Caller:
    """The caller of an `/api/` request, from HTTP Basic; 401 without a valid credential."""
    secret = basic_secret(request.headers.get("Authorization"))
    if secret is None:
        raise ApiError(401, UNAUTHORIZED).with_headers({"WWW-Authenticate": 'Basic realm="nimbus"'})
    found = await _caller_of(request, secret)
    if found is None:
        raise ApiError(401, UNAUTHORIZED)
    return found


async def credential_caller(request: web.Request) -> Caller | None:
    """Who presents a valid credential, HTTP Basic `uuid:key` or a Bearer API key; None
    without one. For web actions annotated `require-whisk-auth: true`: as on OpenWhisk,
    any authenticated caller may call them."""
    header = request.headers.get("Authorization")
    secret = basic_secret(header) or bearer_token(header)
    return None if secret is None else await _caller_of(request, secret)


def resolve_namespace(namespace: str, who: Caller) -> str:
    """The tenant a namespace in a path names: the caller's own, or a 403."""
    if namespace in (DEFAULT_NAMESPACE, who.tenant):
        return who.tenant
    raise ApiError(
        403, f"The supplied authentication is not authorized to access '{namespace[:200]}'."
    )
