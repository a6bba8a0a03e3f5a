"""Nothing lost under a benchmark's load: what the gateway answered, it recorded, billed and
counted, each call once (issue 17, item 5). A benchmark calls `accounted` after its load."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import aiohttp


async def accounted(
    http: aiohttp.ClientSession, url: str, data_dir: Path, names: list[str], answered: int
) -> None:
    """Nothing lost under the load: every call the gateway answered has its activation and
    its usage row, is billed once and counted once by /metrics (issue 17, item 5)."""
    async with http.get(f"{url}/v1/billing?group_by=function") as resp:
        bill = await resp.json()  # a read: every worker commits its queued records first
    billed = sum(line["invocations"] for line in bill["lines"] if line["key"] in names)
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    counted = 0
    for line in text.splitlines():
        if line.startswith("nimbus_invocations_total{"):
            labels, value = line.rsplit(" ", 1)
            if any(f'function="{name}"' in labels for name in names):
                counted += int(float(value))
    marks = ",".join("?" * len(names))
    with contextlib.closing(
        sqlite3.connect(f"file:{data_dir / 'nimbus.db'}?mode=ro", uri=True)
    ) as db:
        acts = db.execute(
            f"SELECT COUNT(*) FROM activations WHERE function IN ({marks})", names
        ).fetchone()[0]
        usage = db.execute(
            "SELECT COUNT(*) FROM usage u JOIN activations a ON a.id = u.activation_id "
            f"WHERE a.function IN ({marks})",
            names,
        ).fetchone()[0]
    figures = {"activations": acts, "usage rows": usage, "billed": billed, "/metrics": counted}
    lost = {name: n for name, n in figures.items() if n != answered}
    print(
        f"accounting: {answered} calls answered; "
        + ", ".join(f"{name} {n}" for name, n in figures.items())
        + ("; LOST OR DOUBLED: " + ", ".join(lost) if lost else "; nothing lost")
    )
    if lost:
        raise SystemExit(1)
