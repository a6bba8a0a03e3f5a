"""Keep-alive state in SQL, for both dialects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from invoker.store.keepalive import KeepAliveState
from invoker.store.sql.statements import SqlStore, command_many, each, query

_SAVE = (
    "INSERT INTO keepalive (policy, tenant, function, state, updated) "
    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (policy, tenant, function) "
    "DO UPDATE SET state = excluded.state, updated = excluded.updated"
)


class SqlKeepAlive(SqlStore):
    """A keep-alive policy's snapshots, for either dialect."""

    async def save_keepalive(
        self, policy: str, states: Sequence[KeepAliveState], now: float
    ) -> None:
        """Every snapshot in one transaction, each replacing the function's older one."""
        if states:
            rows = [(policy, t, f, json.dumps(dict(state)), float(now)) for t, f, state in states]
            await self._steps(each([command_many(_SAVE, rows)]))

    async def load_keepalive(self, policy: str) -> list[tuple[str, str, dict[str, Any]]]:
        """The policy's snapshots, state decoded."""
        sql = "SELECT tenant, function, state FROM keepalive WHERE policy = ?1"
        done = await self._once(query(sql, policy))
        return [(r["tenant"], r["function"], json.loads(r["state"])) for r in done.rows]
