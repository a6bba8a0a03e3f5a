"""Tables as the CLI prints them: aligned columns under upper-case headers, cut to the
terminal's width (the widest columns give way first, a cut cell ends in `…`). Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GAP = "  "
MIN_WIDTH = 4
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """A column: its header, and whether its cells are right-aligned (numbers)."""

    header: str
    right: bool = False


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in `…` when cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def fit(widths: Sequence[int], floors: Sequence[int], limit: int) -> list[int]:
    """Column widths whose sum plus gaps is at most `limit`, if the floors allow: the
    widest column shrinks first, one character at a time."""
    sized = list(widths)
    total = sum(sized) + len(GAP) * (len(sized) - 1)
    while total > limit:
        shrinkable = [i for i, w in enumerate(sized) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: sized[i])
        sized[widest] -= 1
        total -= 1
    return sized


def render(
    columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int | None = None
) -> list[str]:
    """The table's lines (none at all for no rows); `width` None: never cut."""
    if not rows:
        return []
    cells = [[cell_text(value) for value in row] for row in rows]
    natural = [
        max(len(col.header), *(len(row[i]) for row in cells)) for i, col in enumerate(columns)
    ]
    floors = [
        min(w, max(MIN_WIDTH, len(col.header))) for w, col in zip(natural, columns, strict=True)
    ]
    sized = natural if width is None else fit(natural, floors, width)
    lines = [_line([c.header.upper() for c in columns], columns, sized)]
    lines += [_line(row, columns, sized) for row in cells]
    return [cut(line, width) if width is not None else line for line in lines]


def _line(cells: Sequence[str], columns: Sequence[Column], widths: Sequence[int]) -> str:
    parts = [
        f"{cut(text, w):>{w}}" if col.right else f"{cut(text, w):<{w}}"
        for text, col, w in zip(cells, columns, widths, strict=True)
    ]
    return GAP.join(parts).rstrip()


def cell_text(value: Any) -> str:
    """A value as a cell: text as is, None empty, booleans yes/no, lists joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(cell_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(str(value).split())  # one line per row, whatever a value holds


def fields(record: Mapping[str, Any], width: int | None = None) -> list[str]:
    """One record as `field  value` lines, fields aligned (nested values as compact JSON)."""
    rows = [
        (key, value if not isinstance(value, dict | list) else json.dumps(value, sort_keys=True))
        for key, value in record.items()
    ]
    return render([Column("field"), Column("value")], rows, width)[1:]
