"""A function's row (the latest, or one of its versions) read back as a `StoredFunction`,
shared by `invoker.store.sql.functions` and `invoker.store.sql.versions`."""

from __future__ import annotations

import json
from typing import Any

from invoker.api import FunctionSpec
from invoker.store.functions import StoredFunction
from invoker.store.sql.rows import from_row


def function_from_row(row: Any) -> StoredFunction:
    """A stored function from its row (a version's reads `created AS updated`)."""
    components = row["components"]
    spec = from_row(
        FunctionSpec,
        row,
        env=json.loads(row["env"]),
        network=bool(row["network"]),
        params=json.loads(row["params"]),
        secret_params=tuple(json.loads(row["secret_params"])),
        web=bool(row["web"]),
        web_raw=bool(row["web_raw"]),
        sequence=tuple(json.loads(components)) if components is not None else (),
        annotations=json.loads(row["annotations"]),
    )
    return from_row(StoredFunction, row, spec=spec)
