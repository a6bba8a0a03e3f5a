"""Triggers and rules in SQL, for both dialects.

Create-or-replace is an insert that does nothing on the key, then (when it did nothing) an
update of what the caller may change: a trigger keeps its created time and fire history,
a rule its created time, and of two concurrent creates exactly one says it created.
"""

from __future__ import annotations

import json
from typing import Any

from invoker.store.sql.rows import first, from_row
from invoker.store.sql.statements import SqlStore, Steps, Stmt, command, query
from invoker.store.triggers import Rule, Trigger

_ADD_TRIGGER = (
    "INSERT INTO triggers (tenant, name, type, config, secret_hash, last_fire, created, "
    "updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT (tenant, name) DO NOTHING RETURNING name"
)
_REPLACE_TRIGGER = (
    "UPDATE triggers SET type = ?3, config = ?4, secret_hash = ?5, updated = ?6 "
    "WHERE tenant = ?1 AND name = ?2"
)
_TRIGGERS = (
    "SELECT * FROM triggers WHERE (CAST(?1 AS TEXT) IS NULL OR tenant = ?1) "
    "AND (CAST(?2 AS TEXT) IS NULL OR type = ?2) ORDER BY tenant, name"
)
# Only forward: a slot fires once, and the last fire never moves back.
_FIRED = (
    "UPDATE triggers SET last_fire = ?3 WHERE tenant = ?1 AND name = ?2 "
    "AND (last_fire IS NULL OR last_fire < ?3)"
)
_ADD_RULE = (
    "INSERT INTO rules (tenant, name, trigger, function, enabled, created, updated) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant, name) DO NOTHING RETURNING name"
)
_REPLACE_RULE = (
    "UPDATE rules SET trigger = ?3, function = ?4, enabled = ?5, updated = ?6 "
    "WHERE tenant = ?1 AND name = ?2"
)
_RULES = (
    "SELECT * FROM rules WHERE tenant = ?1 AND (CAST(?2 AS TEXT) IS NULL OR trigger = ?2) "
    "ORDER BY name"
)


def trigger_from_row(row: Any) -> Trigger:
    """A trigger from its row."""
    return from_row(Trigger, row, config=json.loads(row["config"]))


def rule_from_row(row: Any) -> Rule:
    """A rule from its row."""
    return from_row(Rule, row, enabled=bool(row["enabled"]))


def put_steps(add: Stmt, replace: Stmt) -> Steps[bool]:
    """Insert, or else update, one row by its key; True when it was inserted."""
    if (yield add).rows:
        return True
    yield replace
    return False


def put_trigger_steps(t: Trigger) -> Steps[bool]:
    """A new trigger, or the changeable fields of the one of that name."""
    config = json.dumps(dict(t.config), sort_keys=True)
    last_fire = None if t.last_fire is None else float(t.last_fire)
    key = (t.tenant, t.name)
    add = query(_ADD_TRIGGER, *key, t.type, config, t.secret_hash, last_fire, t.created, t.updated)
    return put_steps(add, command(_REPLACE_TRIGGER, *key, t.type, config, t.secret_hash, t.updated))


def put_rule_steps(r: Rule) -> Steps[bool]:
    """A new rule, or the changeable fields of the one of that name."""
    key, fields = (r.tenant, r.name), (r.trigger, r.function, r.enabled)
    add = query(_ADD_RULE, *key, *fields, r.created, r.updated)
    return put_steps(add, command(_REPLACE_RULE, *key, *fields, r.updated))


def delete_trigger_steps(tenant: str, name: str) -> Steps[bool]:
    """The trigger, and the rules that name it."""
    gone = yield command("DELETE FROM triggers WHERE tenant = ?1 AND name = ?2", tenant, name)
    yield command("DELETE FROM rules WHERE tenant = ?1 AND trigger = ?2", tenant, name)
    return gone.count == 1


class SqlTriggers(SqlStore):
    """Triggers and rules, for either dialect."""

    async def put_trigger(self, trigger: Trigger) -> bool:
        """`put_trigger_steps` in one transaction."""
        return await self._steps(put_trigger_steps(trigger))

    async def get_trigger(self, tenant: str, name: str) -> Trigger | None:
        """By its key."""
        sql = "SELECT * FROM triggers WHERE tenant = ?1 AND name = ?2"
        row = first(await self._once(query(sql, tenant, name)))
        return None if row is None else trigger_from_row(row)

    async def list_triggers(self, tenant: str | None, type_: str | None = None) -> list[Trigger]:
        """By tenant, then name."""
        done = await self._once(query(_TRIGGERS, tenant, type_))
        return [trigger_from_row(r) for r in done.rows]

    async def trigger_by_secret(self, secret_hash: str) -> Trigger | None:
        """Through the unique `secret_hash` index."""
        sql = "SELECT * FROM triggers WHERE secret_hash = ?1"
        row = first(await self._once(query(sql, secret_hash)))
        return None if row is None else trigger_from_row(row)

    async def delete_trigger(self, tenant: str, name: str) -> bool:
        """`delete_trigger_steps` in one transaction."""
        return await self._steps(delete_trigger_steps(tenant, name))

    async def mark_fired(self, tenant: str, name: str, slot: float) -> bool:
        """One conditional update: of several gateways, one moves the slot forward."""
        done = await self._once(command(_FIRED, tenant, name, float(slot)))
        return done.count == 1

    async def put_rule(self, rule: Rule) -> bool:
        """`put_rule_steps` in one transaction."""
        return await self._steps(put_rule_steps(rule))

    async def get_rule(self, tenant: str, name: str) -> Rule | None:
        """By its key."""
        row = first(
            await self._once(
                query("SELECT * FROM rules WHERE tenant = ?1 AND name = ?2", tenant, name)
            )
        )
        return None if row is None else rule_from_row(row)

    async def list_rules(self, tenant: str, trigger: str | None = None) -> list[Rule]:
        """By name."""
        return [rule_from_row(r) for r in (await self._once(query(_RULES, tenant, trigger))).rows]

    async def delete_rule(self, tenant: str, name: str) -> bool:
        """By its key."""
        sql = "DELETE FROM rules WHERE tenant = ?1 AND name = ?2"
        return (await self._once(command(sql, tenant, name))).count == 1
