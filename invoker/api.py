"""The invoker's public vocabulary: what the gateway hands in and what comes back.

These frozen dataclasses are the only invoker types the gateway imports (with
`invoker.service`). They carry no behaviour and no I/O.
"""

from __future__ import annotations

import enum
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from invoker.runtimes import REGISTRY


class ActivationIds:
    """Unguessable activation ids: 128 random bits as 32 hex characters, like a uuid4.

    Nothing in an id tells how many calls came before it, or whose: ids of one tenant say
    nothing of another's call volume. Still cheap: the kernel's random bytes are read 4 KiB
    at a time (one read per 256 ids), so an id costs a string slice. Use one instance from
    one thread (the event loop); a forked child drops the parent's unused bytes.
    """

    BATCH = 256

    def __init__(self, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random_bytes
        self._hex = ""
        self._at = 0
        drop = weakref.WeakMethod(self._drop)
        os.register_at_fork(after_in_child=lambda: _call_if_alive(drop))

    def _drop(self) -> None:
        self._hex, self._at = "", 0

    def next(self) -> str:
        """A fresh id."""
        at = self._at
        if at >= len(self._hex):
            self._hex, at = self._random(16 * self.BATCH).hex(), 0
        self._at = at + 32
        return self._hex[at : at + 32]


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    found = method()
    if found is not None:
        found()


RUNTIMES: Mapping[str, str] = {runtime.name: runtime.family for runtime in REGISTRY}
"""Runtime name -> runtime family (the directory under runtimes/); see invoker/runtimes.py."""

MEMORY_MB_RANGE = (128, 4096)
TIMEOUT_S_RANGE = (1, 900)
CONCURRENCY_RANGE = (1, 100)

IMAGE_RUNTIME = "image"
"""The `runtime` of a function that runs a container image of its own (`image` set)."""
IMAGE_PROTOCOLS = ("nimbus", "http")
"""How the invoker talks to such an image: Nimbus's /init and /run itself, or a plain HTTP
server on $PORT answering `POST /` (through an adapter beside it); see docs/runtimes.md."""


class Status(enum.StrEnum):
    """How an activation ended (or where it stands, for async calls)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    APPLICATION_ERROR = "application_error"
    TIMEOUT = "timeout"
    PLATFORM_ERROR = "platform_error"


@dataclass(frozen=True)
class FunctionSpec:
    """One version of one tenant's function: everything needed to start and size a container."""

    tenant: str
    name: str
    version: int
    runtime: str
    handler: str
    code_sha256: str
    code_kind: str  # "source" (one .py file) or "zip" (base64 zip archive)
    memory_mb: int = 128
    timeout_s: float = 30.0
    concurrency: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    network: bool = False
    # Default parameters, merged under every call's event (the event's keys win); out of
    # repr, so a logged spec never shows a secret one.
    params: Mapping[str, Any] = field(default_factory=dict, repr=False)
    secret_params: tuple[str, ...] = ()  # keys of `params` never shown in clear
    web: bool = False  # answers on /web/{tenant}/{name} without an API key
    web_raw: bool = False  # the web request comes in raw (OpenWhisk's raw-http)
    web_secret_hash: str | None = field(default=None, repr=False)  # sha256 of the secret
    sequence: tuple[str, ...] = ()  # a sequence of these functions (then no code runs)
    annotations: Mapping[str, Any] = field(default_factory=dict)  # opaque to Nimbus
    image: str | None = None  # a local engine's image the function runs (runtime "image")
    image_protocol: str | None = None  # one of IMAGE_PROTOCOLS when `image` is set

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity of the code+config a warm container was initialised with."""
        return (self.tenant, self.name, self.version)


@dataclass(frozen=True)
class InvokeRequest:
    """One call of one function version."""

    activation_id: str
    function: FunctionSpec
    args: Mapping[str, Any]
    trigger: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one call, as recorded in the activation."""

    activation_id: str
    status: Status
    result: Any
    error: str | None
    logs: list[str]
    start: float  # wall clock, seconds since the epoch
    end: float
    duration_ms: float  # time inside the function (the /run round trip)
    init_ms: float  # container start + /init, 0 when warm
    wait_ms: float  # time queued for a container
    cold_start: bool
    memory_mb: int
    node: str | None = None
    peak_memory_mb: float | None = None
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class Activation:
    """A stored activation: the request side and the result side together."""

    id: str
    tenant: str
    function: str
    version: int
    status: Status
    result: Any
    error: str | None
    logs: list[str]
    start: float | None
    end: float | None
    duration_ms: float | None
    init_ms: float | None
    wait_ms: float | None
    cold_start: bool | None
    memory_mb: int
    node: str | None = None
    trigger: str | None = None
    peak_memory_mb: float | None = None
    cpu_seconds: float | None = None
    attempts: int = 0
    dead_letter: bool = False  # an async call that failed every attempt and was given up

    def to_json(self) -> dict[str, Any]:
        """The activation as the HTTP API shows it."""
        return {
            "activation_id": self.id,
            "function": self.function,
            "version": self.version,
            "status": self.status.value,
            "result": self.result,
            "error": self.error,
            "logs": list(self.logs),
            "start": self.start,
            "end": self.end,
            "duration_ms": self.duration_ms,
            "init_ms": self.init_ms,
            "wait_ms": self.wait_ms,
            "cold_start": self.cold_start,
            "memory_mb": self.memory_mb,
            "node": self.node,
            "trigger": self.trigger,
            "peak_memory_mb": self.peak_memory_mb,
            "cpu_seconds": self.cpu_seconds,
            "attempts": self.attempts,
            "dead_letter": self.dead_letter,
        }


class ImageRejected(Exception):
    """A function's own image cannot run here (not on the engine, root where that is not
    allowed, a driver that runs no such images): the deploy is refused with this message."""


class Throttled(Exception):
    """A limit was reached; the call was not accepted (answer 429 with Retry-After)."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
