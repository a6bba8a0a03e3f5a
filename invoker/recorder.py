"""What a finished call leaves in the store: its activation with its usage record.

One record is built in one place (`record_of`: the activation as stored, metering attached)
for every path. Whoever owns a call writes it, through a `Recorder`: a synchronous call's
is written behind its answer (`StoreRecorder`); a queued call's attempt is written by the
dispatcher together with its queue update and retry decision. The invoker records through
the recorder the caller hands it, or its own for synchronous calls: no flag on the request
says who records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from invoker import metering
from invoker.api import Activation, InvokeRequest, InvokeResult
from invoker.records import activation_from
from invoker.store.base import Store


@dataclass(frozen=True)
class CallRecord:
    """A finished call as stored: the activation and its usage (billing) row."""

    activation: Activation
    usage: dict[str, Any]


def record_of(request: InvokeRequest, result: InvokeResult, *, step_ms: int) -> CallRecord:
    """The stored form of a finished call, with its metering (pure)."""
    usage = metering.usage_row(result, request.function, step_ms=step_ms)
    return CallRecord(activation_from(request, result), usage)


class Recorder(Protocol):
    """Writes what a finished call leaves behind."""

    async def record(self, request: InvokeRequest, result: InvokeResult) -> None:
        """Store the call's record."""
        ...


class StoreRecorder:
    """Synchronous calls: the record goes to the store behind the answer (group commit);
    later reads see it."""

    def __init__(self, store: Store, *, step_ms: int) -> None:
        self._store = store
        self._step_ms = step_ms

    async def record(self, request: InvokeRequest, result: InvokeResult) -> None:
        """Queue the write; it is durable shortly after the call's answer."""
        done = record_of(request, result, step_ms=self._step_ms)
        await self._store.save_activation(done.activation, done.usage, wait=False)
