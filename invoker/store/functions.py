"""The store's functions and their code: what a deploy stores and an invoke reads."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from invoker.api import FunctionSpec

REDACTED = "***"
"""What the API shows in place of a secret parameter's value."""


@dataclass(frozen=True)
class FunctionDraft:
    """A validated deployment, before the store assigns its version."""

    tenant: str
    name: str
    runtime: str
    handler: str
    code_kind: str
    code: bytes
    memory_mb: int
    timeout_s: float
    concurrency: int
    env: Mapping[str, str]
    network: bool
    params: Mapping[str, Any] = field(default_factory=dict, repr=False)
    secret_params: tuple[str, ...] = ()
    web: bool = False
    web_raw: bool = False
    web_secret_hash: str | None = field(default=None, repr=False)
    sequence: tuple[str, ...] = ()
    annotations: Mapping[str, Any] = field(default_factory=dict)
    image: str | None = None  # runs this local image (runtime "image"; code is empty)
    image_protocol: str | None = None  # "nimbus" or "http"; None until the image is checked

    @cached_property
    def code_sha256(self) -> str:
        """The code's content address; computed once, where the draft is validated (a
        thread), so the store never hashes tens of MB on the event loop."""
        return hashlib.sha256(self.code).hexdigest()


@dataclass(frozen=True)
class StoredFunction:
    """A function's current version as stored, with its bookkeeping times."""

    spec: FunctionSpec
    created: float
    updated: float
    code_size: int

    def to_json(self) -> dict[str, Any]:
        """The function as the HTTP API shows it (never its code)."""
        s = self.spec
        return {
            "name": s.name,
            "version": s.version,
            "runtime": s.runtime,
            "handler": s.handler,
            "code_sha256": s.code_sha256,
            "code_kind": s.code_kind,
            "code_size": self.code_size,
            "memory_mb": s.memory_mb,
            "timeout_s": s.timeout_s,
            "concurrency": s.concurrency,
            "env": dict(s.env),
            "network": s.network,
            "params": shown_params(s.params, s.secret_params),
            "secret_params": list(s.secret_params),
            "web": s.web,
            "web_raw": s.web_raw,
            "web_secret": s.web_secret_hash is not None,
            "sequence": list(s.sequence) if s.sequence else None,
            "annotations": dict(s.annotations),
            "image": s.image,
            "image_protocol": s.image_protocol,
            "created": self.created,
            "updated": self.updated,
        }


def shown_params(params: Mapping[str, Any], secret: Sequence[str]) -> dict[str, Any]:
    """Default parameters as the API shows them: secret ones as `REDACTED`."""
    hidden = set(secret)
    return {k: REDACTED if k in hidden else v for k, v in params.items()}


class FunctionStore(Protocol):
    """Functions, one current version each, and their code blobs stored once by content."""

    async def put_function(self, draft: FunctionDraft, now: float) -> tuple[StoredFunction, bool]:
        """Create or update; returns the stored function and whether it was created."""
        ...

    async def get_function(self, tenant: str, name: str) -> StoredFunction | None:
        """One function of one tenant."""
        ...

    async def list_functions(self, tenant: str) -> list[StoredFunction]:
        """Every function of one tenant, by name."""
        ...

    async def delete_function(self, tenant: str, name: str) -> bool:
        """Remove a function (and what keep-alive learned of it); False when it did not exist.

        Its code blob goes too once no function uses it.
        """
        ...

    async def get_code(self, sha256: str) -> bytes | None:
        """A code blob by its content hash."""
        ...
