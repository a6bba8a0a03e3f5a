"""The rows a call's record is written as: the same text whichever shortcut built them
(invoker/store/sql/activations.py), so a record reads back as it always did."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from invoker.metering import meter_activation
from invoker.store.activations import dumped_size
from invoker.store.sql.activations import activation_args, usage_args
from invoker.store.sqlite.dialect import SqliteDialect
from tests.unit.store_suite import finished


class _ReadOnly(Mapping[str, Any]):
    """A usage record handed over as a Mapping that is not a dict."""

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __getitem__(self, key: str) -> Any:
        return self._row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


def test_logs_and_result_are_stored_as_their_json() -> None:
    d = SqliteDialect()
    for logs in ([], ["one", 'two "quoted" \u00e9']):
        for result in (None, {"ok": True, "n": [1, 2.5, None]}, "text"):
            a = replace(finished("a1"), logs=logs, result=result)
            args = activation_args(d, a)
            assert args[5] == (None if result is None else json.dumps(result))
            assert args[7] == json.dumps(logs)
            assert args[-1] == dumped_size(a)  # the size pages are cut by


def test_the_usage_record_is_stored_as_its_json_whatever_mapping_it_came_in() -> None:
    a = finished("a2")
    row = meter_activation(a).to_row()
    expected = (a.id, max(1, a.attempts), a.tenant, row["start"], json.dumps(row))
    assert usage_args(a, row) == expected
    assert usage_args(a, _ReadOnly(row)) == expected
