"""The store's triggers (sources of events) and rules (which function an event calls)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Trigger:
    """A source of events: http (fired by POST or a webhook), schedule (cron) or bucket."""

    tenant: str
    name: str
    type: str
    config: Mapping[str, Any]
    secret_hash: str | None  # the webhook secret's hash, for http triggers with a webhook
    last_fire: float | None
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        """As the API shows it (never the secret)."""
        return {
            "name": self.name,
            "type": self.type,
            **dict(self.config),
            "webhook": self.secret_hash is not None,
            "last_fire": self.last_fire,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class Rule:
    """When `trigger` fires, call `function` asynchronously with the event."""

    tenant: str
    name: str
    trigger: str
    function: str
    enabled: bool
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "name": self.name,
            "trigger": self.trigger,
            "function": self.function,
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
        }


class TriggerStore(Protocol):
    """Triggers and the rules that name them, per tenant."""

    async def put_trigger(self, trigger: Trigger) -> bool:
        """Create or replace a trigger (keeping its fire history); True when created."""
        ...

    async def get_trigger(self, tenant: str, name: str) -> Trigger | None:
        """One trigger of one tenant."""
        ...

    async def list_triggers(self, tenant: str | None, type_: str | None = None) -> list[Trigger]:
        """A tenant's triggers (None: every tenant's), optionally of one type."""
        ...

    async def trigger_by_secret(self, secret_hash: str) -> Trigger | None:
        """The trigger whose webhook secret hashes to `secret_hash`."""
        ...

    async def delete_trigger(self, tenant: str, name: str) -> bool:
        """Remove a trigger and the rules that name it."""
        ...

    async def mark_fired(self, tenant: str, name: str, slot: float) -> bool:
        """Claim a schedule slot for firing; False when this or a later slot is claimed
        (another gateway fired it, or a later one), so a slot fires once and never moves
        the trigger's last fire backwards."""
        ...

    async def put_rule(self, rule: Rule) -> bool:
        """Create or replace a rule (keeping its created time); True when created."""
        ...

    async def get_rule(self, tenant: str, name: str) -> Rule | None:
        """One rule of one tenant."""
        ...

    async def list_rules(self, tenant: str, trigger: str | None = None) -> list[Rule]:
        """A tenant's rules, optionally only those of one trigger."""
        ...

    async def delete_rule(self, tenant: str, name: str) -> bool:
        """Remove a rule."""
        ...
