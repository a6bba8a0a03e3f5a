"""Rows -> store dataclasses, shared by the SQLite and Postgres stores.

Both hand rows that are read by column name; booleans may come back as 0/1 (SQLite) or
bool (Postgres), and JSON columns are text in both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from invoker.api import Activation, FunctionSpec, Status
from invoker.store.base import QueuedCall, Rule, StoredFunction, Trigger

Row = Mapping[str, Any]


def function_from_row(row: Row) -> StoredFunction:
    """A stored function from its row."""
    spec = FunctionSpec(
        tenant=row["tenant"],
        name=row["name"],
        version=row["version"],
        runtime=row["runtime"],
        handler=row["handler"],
        code_sha256=row["code_sha256"],
        code_kind=row["code_kind"],
        memory_mb=row["memory_mb"],
        timeout_s=row["timeout_s"],
        concurrency=row["concurrency"],
        env=json.loads(row["env"]),
        network=bool(row["network"]),
    )
    return StoredFunction(
        spec=spec, created=row["created"], updated=row["updated"], code_size=row["code_size"]
    )


def activation_from_row(row: Row) -> Activation:
    """An activation from its row."""
    return Activation(
        id=row["id"],
        tenant=row["tenant"],
        function=row["function"],
        version=row["version"],
        status=Status(row["status"]),
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        logs=json.loads(row["logs"]),
        start=row["start"],
        end=row["end"],
        duration_ms=row["duration_ms"],
        init_ms=row["init_ms"],
        wait_ms=row["wait_ms"],
        cold_start=None if row["cold_start"] is None else bool(row["cold_start"]),
        memory_mb=row["memory_mb"],
        node=row["node"],
        trigger=row["trigger"],
        peak_memory_mb=row["peak_memory_mb"],
        cpu_seconds=row["cpu_seconds"],
        attempts=row["attempts"],
        dead_letter=bool(row["dead_letter"]),
    )


def trigger_from_row(row: Row) -> Trigger:
    """A trigger from its row."""
    return Trigger(
        tenant=row["tenant"],
        name=row["name"],
        type=row["type"],
        config=json.loads(row["config"]),
        secret_hash=row["secret_hash"],
        last_fire=row["last_fire"],
        created=row["created"],
        updated=row["updated"],
    )


def rule_from_row(row: Row) -> Rule:
    """A rule from its row."""
    return Rule(
        tenant=row["tenant"],
        name=row["name"],
        trigger=row["trigger"],
        function=row["function"],
        enabled=bool(row["enabled"]),
        created=row["created"],
        updated=row["updated"],
    )


def queued_from_row(row: Row) -> QueuedCall:
    """A queued call from its row."""
    return QueuedCall(
        activation_id=row["activation_id"],
        tenant=row["tenant"],
        function=row["function"],
        args=json.loads(row["args"]),
        trigger=row["trigger"],
        attempts=row["attempts"],
        created=row["created"],
    )
