"""Price books: tenant overrides, both file formats, and bad books named by key."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.billing import build_report
from gateway.pricebook import PriceBook, PriceBookError, load_price_book, parse_price_book
from tests.unit.billing_records import APRIL_1, MARCH_1, usage_record

# --- price book ---------------------------------------------------------------

BOOK_TOML = """
price_per_million_requests = 0.25
price_per_gb_second = 0.0000166667
free_tier_requests = 1000

[flavors]
"m5.large" = "0.096"

[tenants.acme]
price_per_gb_second = "0.00001"

[tenants.globex]
free_tier_requests = 0
"""


def test_tenant_override_replaces_only_what_it_names() -> None:
    book = parse_price_book(BOOK_TOML, "toml")
    acme = book.for_tenant("acme")
    assert acme.price_per_gb_second == Decimal("0.00001")
    assert acme.price_per_million_requests == Decimal("0.25")  # inherited
    assert acme.free_tier_requests == 1000
    assert book.for_tenant("globex").free_tier_requests == 0
    assert book.for_tenant("initech") is book
    assert book.flavors == {"m5.large": Decimal("0.096")}
    # Floats in the file are read as the decimals written, not binary approximations.
    assert book.price_per_gb_second == Decimal("0.0000166667")


def test_reports_use_the_tenants_prices() -> None:
    book = PriceBook(tenants={"acme": replace(PriceBook(), price_per_gb_second=Decimal("0.001"))})
    records = [
        usage_record(MARCH_1 + 1, billed=1000, memory=1024, tenant=t) for t in ("acme", "globex")
    ]
    kwargs = {"group_by": "function", "period_from": MARCH_1, "period_to": APRIL_1}
    acme = build_report(records, book, tenant="acme", **kwargs)  # type: ignore[arg-type]
    globex = build_report(records, book, tenant="globex", **kwargs)  # type: ignore[arg-type]
    assert acme.total.compute_cost == Decimal("0.001")  # 1 GB-s at the override
    assert globex.total.compute_cost == Decimal("0.000017")  # 1 GB-s at list price, rounded up


def test_price_book_files_load_in_both_formats(tmp_path: Path) -> None:
    toml_path = tmp_path / "prices.toml"
    toml_path.write_text(BOOK_TOML)
    json_path = tmp_path / "prices.json"
    json_path.write_text(
        json.dumps(
            {
                "price_per_million_requests": 0.25,
                "price_per_gb_second": 0.0000166667,
                "free_tier_requests": 1000,
                "flavors": {"m5.large": "0.096"},
                "tenants": {
                    "acme": {"price_per_gb_second": "0.00001"},
                    "globex": {"free_tier_requests": 0},
                },
            }
        )
    )
    assert load_price_book(toml_path) == load_price_book(json_path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("price_per_gb_secnd = 1", "price_per_gb_secnd: unknown key"),
        ("price_per_gb_second = -1", "price_per_gb_second: must be a finite number >= 0"),
        ('price_per_gb_second = "cheap"', "price_per_gb_second: not a number"),
        ("free_tier_requests = 1.5", "free_tier_requests: expected a whole number"),
        ("[tenants.acme]\nflavors = 1", "tenants.acme.flavors: unknown key"),
        ("[tenants.acme]\nprice_per_million_requests = nan", "tenants.acme.price_per_million"),
        ("[flavors]\nsmall = true", "flavors.small: expected a number"),
        ("price_per_gb_second = ", "not valid toml"),
    ],
)
def test_bad_price_books_name_the_key(text: str, fragment: str) -> None:
    with pytest.raises(PriceBookError, match=r"prices\.toml") as info:
        parse_price_book(text, "toml", source="prices.toml")
    assert fragment in str(info.value)


def test_unreadable_or_unknown_price_book_files(tmp_path: Path) -> None:
    with pytest.raises(PriceBookError, match="cannot read"):
        load_price_book(tmp_path / "missing.toml")
    with pytest.raises(PriceBookError, match="unknown price book format"):
        load_price_book(tmp_path / "prices.yaml")
