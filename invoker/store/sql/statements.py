"""How the store's SQL, written once, runs on either dialect. Pure: no I/O here.

Each store operation is written as *steps*: a generator that yields statements (`Stmt`)
and receives what each did (`Done`), deciding from those results what comes next, and
returns the operation's answer. It never touches a connection, so one text of the rules
serves both dialects, and each dialect drives it in the way its I/O wants: SQLite runs
the whole generator on its store thread inside one transaction (`drive`), PostgreSQL
awaits each statement on a pooled connection inside one transaction (`drive_async`).

Statements use SQLite's numbered placeholders (`?1`, `?2`, a number may repeat), standard
`CAST(?1 AS TEXT)` where PostgreSQL must know a type, and are rendered for a dialect by
`Dialect.render`. What cannot be said the same way in both (list parameters, row locks,
advisory locks, a new activation's `seq`) is asked of the `Dialect`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Stmt:
    """One statement and its arguments; with `many`, run once per argument tuple."""

    sql: str
    args: tuple[Any, ...] = ()
    rows: bool = False  # whether its rows are read (PostgreSQL: fetch, not execute)
    many: Sequence[tuple[Any, ...]] | None = None


@dataclass(frozen=True)
class Done:
    """What a statement did: the rows it returned, and how many rows it changed (or
    returned)."""

    rows: list[Any] = field(default_factory=list)  # read as `invoker.store.sql.rows` says
    count: int = 0


Steps = Generator[Stmt, Done, T]
"""An operation: yields statements, is sent what each did, returns its answer."""


def query(sql: str, *args: Any) -> Stmt:
    """A statement whose rows the steps read (a SELECT, or anything RETURNING)."""
    return Stmt(sql, args, rows=True)


def command(sql: str, *args: Any) -> Stmt:
    """A statement whose changed-row count is all the steps read."""
    return Stmt(sql, args)


def command_many(sql: str, args: Sequence[tuple[Any, ...]]) -> Stmt:
    """One statement run for each of several argument tuples."""
    return Stmt(sql, many=args)


def each(stmts: Sequence[Stmt]) -> Steps[None]:
    """Steps of several statements whose results nobody reads (`yield from each(...)`)."""
    # Not `yield from stmts`: a tuple's iterator cannot be sent the results.
    for stmt in stmts:  # noqa: UP028
        yield stmt


class Dialect(ABC):
    """What the shared SQL needs said differently by one database."""

    lateral: bool  # joins a LATERAL subquery (`invoker.fairness.candidates_sql`)
    for_update: str  # after a SELECT: lock its rows against other writers to the end
    skip_locked: str  # after a claim's SELECT: lock its rows, skipping rows others hold
    keeps_nul: bool  # text columns can hold U+0000
    row_key: str  # the column that finds an activation's row cheapest
    stored_size: str  # an activation's `size` (as `a`), for rows written before it too
    tenant_by_time: str  # `a.tenant` where activations are found by time

    @abstractmethod
    def render(self, sql: str) -> str:
        """The dialect's text of a statement written with `?N` placeholders."""

    @abstractmethod
    def in_list(self, column: str, param: int) -> str:
        """A condition: `column` is one of the list given as parameter `param`."""

    @abstractmethod
    def list_position(self, column: str, param: int) -> str:
        """An expression ordering rows as `column` stands in the list parameter `param`."""

    @abstractmethod
    def seq(self) -> tuple[str, str]:
        """The column and value giving a new activation its `seq`, as ("", "") where the
        database numbers rows itself; each text starts with ", " otherwise."""

    def blob_lock(self, *, shared: bool) -> tuple[Stmt, ...]:
        """Statements that hold the code-blob lock to the end of the transaction: shared by
        deploys, exclusive for blob collection; none where writers are serialised anyway."""
        return ()

    def backlog_lock(self, tenant: str) -> tuple[Stmt, ...]:
        """Statements that hold the tenant's enqueue lock to the end of the transaction."""
        return ()


def drive(steps: Steps[T], execute: Callable[[Stmt], Done]) -> T:
    """Run steps to their answer with a blocking `execute` (inside one transaction)."""
    try:
        stmt = next(steps)
        while True:
            stmt = steps.send(execute(stmt))
    except StopIteration as finished:
        answer: T = finished.value
        return answer


async def drive_async(steps: Steps[T], execute: Callable[[Stmt], Awaitable[Done]]) -> T:
    """Run steps to their answer with an awaitable `execute` (inside one transaction)."""
    try:
        stmt = next(steps)
        while True:
            stmt = steps.send(await execute(stmt))
    except StopIteration as finished:
        answer: T = finished.value
        return answer


class SqlStore(ABC):
    """What every shared kind implementation runs on: a dialect and a way to run steps.

    The kinds (`invoker.store.sql.*`) are mixed into one store class per dialect, whose
    connection (`invoker.store.sqlite.connection`, `invoker.store.postgres.connection`)
    provides these.
    """

    dialect: Dialect

    @abstractmethod
    async def _steps(self, steps: Steps[T]) -> T:
        """Run `steps` in one transaction; its answer."""

    @abstractmethod
    async def _once(self, stmt: Stmt) -> Done:
        """Run one statement on its own (no transaction of ours around it)."""
