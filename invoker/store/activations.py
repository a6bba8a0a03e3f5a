"""The store's activation history and usage records: what a call left behind.

An activation is written as it moves along (pending, running, its outcome), each finished
attempt with its usage record in the same transaction. Listings page newest first within
a byte budget (`fit_page`); deletion never touches calls still queued or running, and
never usage records (the bill).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from invoker.api import Activation
from invoker.metering import UsageRecord

RECORD_OVERHEAD_BYTES = 1024
"""What an activation's JSON costs in a listing besides its result, error and logs."""

DELETE_BATCH = 500
"""Activations deleted per transaction: a big delete never holds the store for long."""


class Removal(enum.StrEnum):
    """The outcome of deleting one activation."""

    DELETED = "deleted"
    MISSING = "missing"  # no such activation in the tenant
    QUEUED = "queued"  # an async call still queued or running: it is not history yet


@dataclass(frozen=True)
class ActivationPage:
    """One page of a tenant's activations, newest first.

    `next_seq` is where the next page starts (the records with a smaller `seq`), None when
    this page reaches the end; `truncated` is True when the byte budget, not the count
    limit, ended the page. `size` is what its results, errors and logs take, in bytes.
    """

    activations: list[Activation]
    next_seq: int | None
    truncated: bool
    size: int = 0


def activation_size(result_json: str | None, logs_json: str, error: str | None) -> int:
    """The bytes an activation's result, logs and error take as stored (and as listed).

    `json.dumps` output is ASCII, so its length is its size in bytes.
    """
    error_bytes = 0 if error is None else len(error.encode("utf-8", "replace"))
    return len(result_json or "") + len(logs_json) + error_bytes


def dumped_size(activation: Activation) -> int:
    """`activation_size` of an activation not yet serialised (for tests and callers)."""
    result = None if activation.result is None else json.dumps(activation.result)
    return activation_size(result, json.dumps(activation.logs), activation.error)


def fit_page(sizes: Sequence[int], limit: int, max_bytes: int) -> tuple[int, bool]:
    """How many of the newest records (their sizes, newest first) one page holds.

    Records go in while the page stays within `max_bytes` (each costing its size plus
    `RECORD_OVERHEAD_BYTES`) and `limit`. A page always holds at least one record, so
    paging always advances: a record larger than the budget comes alone. Returns the
    count and whether the budget (rather than the limit or the end) stopped the page.
    """
    total = 0
    for count, size in enumerate(sizes[:limit]):
        cost = max(0, size) + RECORD_OVERHEAD_BYTES
        if count > 0 and total + cost > max_bytes:
            return count, True
        total += cost
    return min(len(sizes), limit), False


def page_end(seqs: Sequence[int], count: int) -> int | None:
    """The cursor after a page of `count` of these records: None when none are left."""
    return seqs[count - 1] if 0 < count < len(seqs) else None


class ActivationStore(Protocol):
    """Activations, newest first per tenant, and the usage records of finished attempts."""

    async def save_activation(
        self, activation: Activation, usage: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> None:
        """Insert or replace an activation, with its usage record when it has ended.

        `wait=False` may return before the write is durable; later store calls see it.
        """
        ...

    async def get_activation(self, tenant: str, activation_id: str) -> Activation | None:
        """One activation, only within its tenant."""
        ...

    async def list_activations(
        self, tenant: str, function: str | None, limit: int
    ) -> list[Activation]:
        """A tenant's newest activations first, optionally of one function."""
        ...

    async def list_activations_page(
        self,
        tenant: str,
        function: str | None,
        limit: int,
        before_seq: int | None,
        max_bytes: int,
    ) -> ActivationPage:
        """Newest first, those with `seq < before_seq`: at most `limit`, within `max_bytes`
        of results, errors and logs (`fit_page`; at least one record)."""
        ...

    async def delete_activation(self, tenant: str, activation_id: str) -> Removal:
        """Delete one activation of the tenant; a call still queued or running stays."""
        ...

    async def delete_activations(
        self, tenant: str | None, function: str | None, before: float
    ) -> int:
        """Delete the activations that started (or, unstarted, ended) before `before`, of one
        tenant (None: all) and optionally one function, except calls still queued or
        running; in batches. Usage records stay. Returns how many went."""
        ...

    async def reclaim_space(self) -> int:
        """Give the space deleted rows freed back to the file system where the backend
        needs telling (SQLite); returns the pages that were free."""
        ...

    async def list_usage(
        self, tenant: str | None, start_from: float, start_to: float
    ) -> list[UsageRecord]:
        """Usage records with `start_from <= start < start_to`, of one tenant or (None) all."""
        ...
