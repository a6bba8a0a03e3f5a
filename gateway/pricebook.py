"""The price book: list prices, VM flavor costs and per-tenant overrides.

Read from TOML or JSON (`nimbus serve --price-book FILE`); every price is an exact
Decimal, and a bad book fails with a message naming the file and key.
"""

from __future__ import annotations

import decimal
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

_PRICE_KEYS = (
    "price_per_million_requests",
    "price_per_gb_second",
    "free_tier_requests",
    "free_tier_gb_seconds",
)


class PriceBookError(ValueError):
    """A price book that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class PriceBook:
    """List prices, VM flavor costs and per-tenant price books.

    Defaults are AWS Lambda's public list prices with no free tier. Each entry
    of `tenants` is a complete book (`from_mapping` fills a tenant's missing keys
    from the top level; in code, use `dataclasses.replace(book, ...)`).
    """

    price_per_million_requests: Decimal = Decimal("0.20")
    price_per_gb_second: Decimal = Decimal("0.0000166667")
    free_tier_requests: int = 0
    free_tier_gb_seconds: Decimal = Decimal(0)
    flavors: Mapping[str, Decimal] = field(default_factory=dict)  # flavor -> USD per hour
    tenants: Mapping[str, PriceBook] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("price_per_million_requests", "price_per_gb_second", "free_tier_gb_seconds"):
            _decimal(getattr(self, key), key, strict=True)
        _count(self.free_tier_requests, "free_tier_requests")
        for name, price in self.flavors.items():
            _decimal(price, f"flavors.{name}", strict=True)
        for name, book in self.tenants.items():
            if book.tenants:
                raise PriceBookError(f"tenants.{name}: a tenant's book cannot have tenants")

    def for_tenant(self, name: str) -> PriceBook:
        """The book that prices `name`'s calls: its override, else this one."""
        return self.tenants.get(name, self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "price book") -> PriceBook:
        """Build and validate a book from parsed TOML/JSON.

        Keys: the four price keys, `flavors` (name -> USD/hour) and `tenants`
        (name -> any of the price keys). Prices may be strings, integers or
        Decimals; unknown keys and negative or non-finite values are errors.
        """
        try:
            _known_keys(data, (*_PRICE_KEYS, "flavors", "tenants"), "")
            base = cls(**_prices(data, ""), flavors=_flavors(data.get("flavors", {})))
            tenants_raw = data.get("tenants", {})
            if not isinstance(tenants_raw, Mapping):
                raise PriceBookError("tenants: expected a table of tenant names")
            tenants: dict[str, PriceBook] = {}
            for name, override in tenants_raw.items():
                where = f"tenants.{name}."
                if not isinstance(override, Mapping):
                    raise PriceBookError(f"tenants.{name}: expected a table of prices")
                _known_keys(override, _PRICE_KEYS, where)
                values = {k: getattr(base, k) for k in _PRICE_KEYS} | _prices(override, where)
                tenants[str(name)] = cls(**values, flavors=base.flavors)
            return cls(
                **{k: getattr(base, k) for k in _PRICE_KEYS}, flavors=base.flavors, tenants=tenants
            )
        except PriceBookError as exc:
            raise PriceBookError(f"{source}: {exc}") from None


def parse_price_book(text: str, fmt: str, *, source: str = "price book") -> PriceBook:
    """Parse a price book from TOML or JSON text (`fmt` is "toml" or "json").

    Floats are read as Decimals, so `0.0000166667` means exactly that.
    """
    try:
        if fmt == "toml":
            data: Any = tomllib.loads(text, parse_float=Decimal)
        elif fmt == "json":
            data = json.loads(text, parse_float=Decimal)
        else:
            raise PriceBookError(f"unknown format {fmt!r} (use toml or json)")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PriceBookError(f"{source}: not valid {fmt}: {exc}") from None
    if not isinstance(data, Mapping):
        raise PriceBookError(f"{source}: expected a table at the top level")
    return PriceBook.from_mapping(data, source=source)


def load_price_book(path: str | Path) -> PriceBook:
    """Read a price book file; the format follows the suffix (.toml or .json)."""
    p = Path(path)
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in ("toml", "json"):
        raise PriceBookError(f"{p}: unknown price book format (use .toml or .json)")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceBookError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_price_book(text, fmt, source=str(p))


def _known_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(map(str, data)) - set(allowed))
    if unknown:
        raise PriceBookError(f"{where}{unknown[0]}: unknown key (allowed: {', '.join(allowed)})")


def _prices(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _PRICE_KEYS:
        if key in data:
            check = _count if key == "free_tier_requests" else _decimal
            out[key] = check(data[key], where + key)
    return out


def _flavors(raw: Any) -> dict[str, Decimal]:
    if not isinstance(raw, Mapping):
        raise PriceBookError("flavors: expected a table of flavor = USD per hour")
    return {str(name): _decimal(price, f"flavors.{name}") for name, price in raw.items()}


def _decimal(value: Any, key: str, *, strict: bool = False) -> Decimal:
    if strict and not isinstance(value, Decimal):
        raise PriceBookError(f"{key}: expected a Decimal, got {type(value).__name__}")
    if isinstance(value, bool):
        raise PriceBookError(f"{key}: expected a number, got {value!r}")
    try:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int | str):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))  # what the writer typed, not the binary expansion
        else:
            raise PriceBookError(f"{key}: expected a number, got {type(value).__name__}")
    except decimal.InvalidOperation:
        raise PriceBookError(f"{key}: not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PriceBookError(f"{key}: must be a finite number >= 0, got {value!r}")
    return number


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PriceBookError(f"{key}: expected a whole number >= 0, got {value!r}")
    return value
