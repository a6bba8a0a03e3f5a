"""What the facade's handlers share: the tenant a path names, and its actions' facts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from gateway.middleware import caller
from gateway.openwhisk.auth import resolve_namespace
from gateway.openwhisk.documents import action_kind
from gateway.openwhisk.records import ActionFacts
from invoker.store.base import StoredFunction

ACTIVATION_HEADER = "X-OpenWhisk-Activation-Id"


class Background:
    """Calls that outlived their blocking window: kept referenced until they end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold `task` until it is done (its outcome is in its activation record)."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a throttled call is no unhandled error

    async def close(self) -> None:
        """Stop what is still running (the invoker is stopping too)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


BACKGROUND = web.AppKey("openwhisk_background", Background)


def tenant_of(request: web.Request) -> str:
    """The tenant of the `{namespace}` in the path: the caller's own, or a 403."""
    return resolve_namespace(request.match_info["namespace"], caller(request))


def facts_of(stored: StoredFunction) -> ActionFacts:
    """What an activation record tells of its action."""
    return ActionFacts(
        kind=action_kind(stored.to_json()),
        timeout_s=stored.spec.timeout_s,
        concurrency=stored.spec.concurrency,
        sequence=bool(stored.spec.sequence),
    )


def facts_by_name(functions: Iterable[StoredFunction]) -> dict[str, ActionFacts]:
    """Facts of every function, by name."""
    return {f.spec.name: facts_of(f) for f in functions}
