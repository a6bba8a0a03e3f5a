"""Versions and aliases: which version of a function a call runs. Pure: no I/O here.

Every deploy makes an immutable version (1, 2, ...); the function's own row is the latest.
A call names its function plain (the latest), as `name:N` or with `?version=N` (version
N), or as `name:alias` or with `?alias=` (an alias: one version, or a weighted split of
at most `MAX_SPLIT_VERSIONS` versions). `name:latest` is the latest too.

A split picks each call's version in one of two ways:

- with a request id (the `X-Nimbus-Request-Id` header), the id is hashed to a point in
  [0, 1) and the version whose band of the cumulative weights holds it runs: one id gets
  one version for as long as the split stays (sticky);
- without one, a per-alias counter (`SplitCounter`) deals the calls out by smooth
  weighted round robin over exact fractions: after n calls, each version of a two-way
  split has had n * weight calls to within one, so a 0.9 / 0.1 split over 200 calls is
  exactly 180 / 20, on every gateway, from the first call on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MAX_SPLIT_VERSIONS = 4
"""The most versions one alias splits its calls between (a canary, or an A/B/C/D test)."""
DEFAULT_VERSION_RETENTION = 20
"""Versions kept per function by default: the newest this many, plus any an alias names."""
LATEST = "latest"
"""The qualifier naming the latest version; no alias may take it."""
REQUEST_ID_HEADER = "X-Nimbus-Request-Id"
"""The header whose value makes an alias's choice sticky."""
MAX_REQUEST_ID = 256

_ALIAS_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VERSION = re.compile(r"[0-9]{1,15}")
_WEIGHT_SLACK = Fraction(1, 10**6)  # how far from 1 the weights' sum may be (float input)

Split = tuple[tuple[int, float], ...]
"""An alias's versions and their weights, by version; weights sum to 1."""


class VersionError(ValueError):
    """A version, alias or split that cannot be (a 400 naming `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class UnknownVersion(LookupError):
    """The function has no such version (never had, or it was pruned)."""

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"function {name!r} has no version {version}")
        self.version = version


class UnknownAlias(LookupError):
    """The function has no such alias."""

    def __init__(self, name: str, alias: str) -> None:
        super().__init__(f"function {name!r} has no alias {alias!r}")
        self.alias = alias


@dataclass(frozen=True)
class Qualifier:
    """What a call asks for: a version, an alias, or (neither) the latest."""

    version: int | None = None
    alias: str | None = None

    @property
    def latest(self) -> bool:
        """Whether the call runs the latest version."""
        return self.version is None and self.alias is None


def split_target(raw: str) -> tuple[str, str | None]:
    """`name:qualifier` as (name, qualifier); a plain name as (name, None)."""
    name, colon, qualifier = raw.partition(":")
    return name, (qualifier if colon else None)


def check_alias_name(alias: str) -> str:
    """An alias name: letters, digits, `_-`, at most 64, not all digits (that would read
    as a version) and not `latest`."""
    if not _ALIAS_NAME.fullmatch(alias):
        raise VersionError("alias", "alias names are 1-64 letters, digits, '_' or '-'")
    if alias.isdigit():
        raise VersionError("alias", f"alias {alias!r} looks like a version number")
    if alias.lower() == LATEST:
        raise VersionError("alias", f"{LATEST!r} names the latest version, not an alias")
    return alias


def parse_version(text: str, field: str = "version") -> int:
    """A version number given as text (1 or more)."""
    if not _VERSION.fullmatch(text) or int(text) < 1:
        raise VersionError(field, f"version must be a whole number from 1, not {text!r}")
    return int(text)


def parse_qualifier(text: str) -> Qualifier:
    """What follows `name:`: digits are a version, `latest` the latest, else an alias."""
    if text.lower() == LATEST:
        return Qualifier()
    if text.isdigit():
        return Qualifier(version=parse_version(text))
    return Qualifier(alias=check_alias_name(text))


def qualifier_of(path: str | None, version: str | None, alias: str | None) -> Qualifier:
    """A call's qualifier from its three spellings (`name:q`, `?version=`, `?alias=`), of
    which it may use one."""
    spelled = [f for f, v in (("name", path), ("version", version), ("alias", alias)) if v]
    if len(spelled) > 1:
        raise VersionError(spelled[1], "give only one of name:qualifier, ?version= and ?alias=")
    if path is not None:
        return parse_qualifier(path)
    if version is not None:
        return Qualifier(version=parse_version(version))
    if alias is not None:
        return Qualifier(alias=check_alias_name(alias))
    return Qualifier()


def split_from_body(body: Mapping[str, Any]) -> Split:
    """An alias's target from its PUT body: `{"version": 3}` or a weighted split
    `{"versions": {"3": 0.9, "4": 0.1}}` (weights above 0 summing to 1, at most
    `MAX_SPLIT_VERSIONS` versions)."""
    unknown = sorted(set(body) - {"version", "versions"})
    if unknown:
        raise VersionError(unknown[0], f"unknown field {unknown[0]!r}")
    if ("version" in body) == ("versions" in body):
        raise VersionError("version", "give either version or versions")
    if "version" in body:
        version = body["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise VersionError("version", "version must be a whole number from 1")
        return ((version, 1.0),)
    versions = body["versions"]
    if not isinstance(versions, Mapping) or not versions:
        raise VersionError("versions", 'versions maps versions to weights: {"3": 0.9, ...}')
    if len(versions) > MAX_SPLIT_VERSIONS:
        raise VersionError("versions", f"an alias splits at most {MAX_SPLIT_VERSIONS} versions")
    split: list[tuple[int, float]] = []
    for key, weight in versions.items():
        number = parse_version(str(key), "versions")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
            raise VersionError("versions", f"version {key}'s weight must be in (0, 1]")
        split.append((number, float(weight)))
    total = sum((Fraction(str(w)) for _, w in split), Fraction(0))
    if not 1 - _WEIGHT_SLACK <= total <= 1 + _WEIGHT_SLACK:
        raise VersionError("versions", "the weights must sum to 1")
    return tuple(sorted(split))


def split_json(split: Split) -> dict[str, Any]:
    """An alias's target as the API shows it: `version` when it names one, and
    `versions` (version -> weight) always."""
    return {
        "version": split[0][0] if len(split) == 1 else None,
        "versions": {str(v): w for v, w in split},
    }


def _exact(split: Split) -> tuple[tuple[int, Fraction], ...]:
    """The weights as fractions summing to exactly 1 (given as decimals, within slack)."""
    weights = [(v, Fraction(str(w))) for v, w in split]
    total = sum(w for _, w in weights)
    return tuple((v, w / total) for v, w in weights)


def point_of(request_id: str) -> float:
    """A request id's point in [0, 1): the same id always lands on the same point."""
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_at(split: Split, point: float) -> int:
    """The version whose band of the cumulative weights holds `point` (in [0, 1))."""
    at = Fraction(point)
    band = Fraction(0)
    for version, weight in _exact(split):
        band += weight
        if at < band:
            return version
    return split[-1][0]


class SplitCounter:
    """Deals an alias's calls out in its exact proportions (smooth weighted round robin).

    Each call adds every version's weight to its credit and runs the version with the
    most credit, which then pays 1. A split that changes starts over. Bounded: past
    `capacity` aliases the one used longest ago is forgotten (and starts over when used).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._state: dict[Hashable, tuple[Split, dict[int, Fraction]]] = {}

    def next(self, key: Hashable, split: Split) -> int:
        """The version the next call of the alias `key` runs."""
        if len(split) == 1:
            return split[0][0]
        state = self._state.pop(key, None)
        if state is None or state[0] != split:
            state = (split, {v: Fraction(0) for v, _ in split})
        credit = state[1]
        for version, weight in _exact(split):
            credit[version] += weight
        chosen = max(credit, key=lambda v: (credit[v], -v))  # ties: the older version
        credit[chosen] -= 1
        self._state[key] = state  # last used goes to the end
        while len(self._state) > self._capacity:
            del self._state[next(iter(self._state))]
        return chosen


def choose(
    counter: SplitCounter, key: Hashable, split: Split, request_id: str | None = None
) -> int:
    """The version an alias's call runs: sticky by request id when given, else dealt by
    the counter."""
    if request_id:
        return pick_at(split, point_of(request_id))
    return counter.next(key, split)
