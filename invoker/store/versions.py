"""The store's function versions and aliases: what a deploy keeps and an alias names.

Every deploy also stores its version, immutable, beside the function's own row (the
latest): its code (the blob is shared by content), handler, sizes, env and params. An
alias names one version, or splits its calls between a few (`invoker.versions`).
Deleting a function deletes its versions and aliases; `prune_versions` keeps the newest
few and every version an alias names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from invoker.store.functions import StoredFunction
from invoker.versions import Split, split_json


@dataclass(frozen=True)
class Alias:
    """A named pointer to one version of a function, or a weighted split of a few."""

    tenant: str
    function: str
    name: str
    split: Split
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        """The alias as the HTTP API shows it."""
        return {
            "name": self.name,
            "function": self.function,
            **split_json(self.split),
            "created": self.created,
            "updated": self.updated,
        }


class MissingVersions(LookupError):
    """An alias named versions the function does not have (nothing was stored)."""

    def __init__(self, versions: Sequence[int]) -> None:
        super().__init__(f"no version {', '.join(str(v) for v in versions)}")
        self.versions = tuple(versions)


def version_json(stored: StoredFunction, aliases: Sequence[str] = ()) -> dict[str, Any]:
    """One version as the API shows it: the function's fields as they were deployed,
    `created` the time of that deploy, and the aliases that name it."""
    shown = stored.to_json()
    del shown["updated"]
    return {**shown, "aliases": list(aliases)}


class VersionStore(Protocol):
    """Functions' immutable versions and their aliases (within the functions kind)."""

    async def get_version(self, tenant: str, name: str, version: int) -> StoredFunction | None:
        """One version of a function (`created` and `updated`: when it was deployed)."""
        ...

    async def list_versions(self, tenant: str, name: str) -> list[StoredFunction]:
        """A function's versions, newest first."""
        ...

    async def prune_versions(self, tenant: str, name: str, keep: int) -> list[int]:
        """Delete the versions older than the newest `keep` that no alias names (never
        the latest), and code no function or version uses; the versions deleted."""
        ...

    async def put_alias(
        self, tenant: str, name: str, alias: str, split: Split, now: float
    ) -> tuple[Alias, bool] | None:
        """Create or move an alias: (alias, created); None without the function.
        Raises MissingVersions when the split names a version the function lacks."""
        ...

    async def get_alias(self, tenant: str, name: str, alias: str) -> Alias | None:
        """One alias of a function."""
        ...

    async def list_aliases(self, tenant: str, name: str) -> list[Alias]:
        """A function's aliases, by name."""
        ...

    async def delete_alias(self, tenant: str, name: str, alias: str) -> bool:
        """Remove an alias; False when there was none."""
        ...
