"""How the CLI prints what the gateway answered: pure formatting, one string per line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def as_json(value: Any) -> str:
    """A payload as the CLI shows JSON: indented, keys sorted."""
    return json.dumps(value, indent=2, sort_keys=True)


def deployed(status: int, function: Mapping[str, Any]) -> str:
    """One line for a deploy: created (201) or updated, the version and the code's hash."""
    verb = "created" if status == 201 else "updated"
    sha = function["code_sha256"][:12]
    return f"{verb} {function['name']} version {function['version']} ({sha})"


def accepted(answer: Mapping[str, Any]) -> str:
    """`invoke --async`: the queued activation and the version it will run."""
    return f"accepted: activation {answer['activation_id']} (version {answer.get('version')})"


def invoke_details(headers: Mapping[str, str]) -> str:
    """`invoke -v`: the activation, whether it was a cold start, and how long it ran."""
    return (
        f"activation {headers.get('X-Nimbus-Activation-Id')} "
        f"cold={headers.get('X-Nimbus-Cold-Start')} "
        f"duration={headers.get('X-Nimbus-Duration-Ms')} ms"
        f" version={headers.get('X-Nimbus-Function-Version')}"
        + (f" alias={headers['X-Nimbus-Alias']}" if headers.get("X-Nimbus-Alias") else "")
    )


def bill_table(bill: Mapping[str, Any], group_by: str) -> list[str]:
    """`nimbus bill`: a heading, one row per line of the bill, and the total under a rule."""
    header = f"{group_by:<28}{'calls':>8}{'GB-s':>16}{'requests':>12}{'compute':>12}{'total':>12}"
    rule = "-" * len(header)
    return [
        f"bill for {bill['tenant']} from {bill['from']} to {bill['to']} ({bill['currency']})",
        header,
        rule,
        *(_bill_row(line) for line in bill["lines"]),
        rule,
        _bill_row(bill["total"]),
    ]


def _bill_row(line: Mapping[str, Any]) -> str:
    return (
        f"{line['key']:<28}{line['invocations']:>8}{line['billed_gb_seconds']:>16}"
        f"{line['request_cost']:>12}{line['compute_cost']:>12}{line['total']:>12}"
    )
