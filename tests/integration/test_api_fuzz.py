"""schemathesis against a live gateway on real Docker: no 5xx, statuses and bodies as documented.

The schema is the one the gateway serves at `GET /v1/openapi.json`. Every operation gets a
few positive and negative examples with an admin key, a tenant key and no key, checked by
schemathesis' `not_a_server_error`, `status_code_conformance` and
`response_schema_conformance`; the function routes also get examples aimed at a real,
trivial function so invoke paths run code. Examples are derandomized (the same every run)
and few, so the test stays under a minute or so; `NIMBUS_FUZZ_EXAMPLES` raises them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_KEY, Running

EXAMPLES = int(os.environ.get("NIMBUS_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
FUNCTION = "fuzz-echo"
SOURCE = "def handler(event):\n    return {'ok': True}\n"
# Routes that would change the platform under the fuzzer (provision or drain nodes) answer
# from a deployment without a VM pool here, so they are safe to send anything to.
PLATFORM_OVERRIDES = {"vm_provider": "none"}


@dataclass
class Report:
    """What the fuzzer sent and what failed."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _describe(exc: BaseException) -> str:
    """A failure with its details (a FailureGroup's own text is only a count)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    message = getattr(exc, "message", "")
    return f"{type(exc).__name__}: {exc} {message}".strip()


def _runner(
    report: Report,
    session: requests.Session,
    base_url: str,
    headers: dict[str, str],
    label: str,
) -> Callable[[Any], None]:
    def run(case: Any) -> None:
        try:
            response = case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS
            )
        except (Exception, BaseExceptionGroup) as exc:  # a failed check, or a failed call
            report.failures.append(f"{label}: {_describe(exc)}"[:3000])
            status = getattr(getattr(exc, "response", None), "status_code", None)
            report.statuses[status if isinstance(status, int) else -1] += 1
            return
        report.statuses[response.status_code] += 1

    return run


def _fuzz(operation: Any, strategy: Any, examples: int, run: Callable[[Any], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def test(case: Any) -> None:
        run(case)

    try:
        test()
    except Unsatisfiable:  # nothing to negate: an operation without parameters or body
        pass


def fuzz(base_url: str, keys: dict[str, str | None], examples: int) -> Report:
    """Run every operation of the served schema with every key; blocking (use a thread)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/v1/openapi.json")
    report = Report()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for who, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            run = _runner(report, session, base_url, headers, f"{operation.label} [{who}]")
            # Fewer examples without a key: everything answers 401 before it looks further.
            count = examples if key else 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, operation.as_strategy(generation_mode=mode), count, run)
            if "/v1/functions/{name}" in operation.path and operation.method.upper() != "DELETE":
                # Aim at the real function too: random names only ever find a 404.
                aimed = operation.as_strategy(path_parameters={"name": FUNCTION})
                _fuzz(operation, aimed, count, run)
    session.close()
    return report


@pytest.mark.platform(**PLATFORM_OVERRIDES)
async def test_fuzzed_requests_get_no_server_error_and_match_the_schema(
    platform: Running,
) -> None:
    api = platform.api
    tenant_key = await api.tenant("fuzz")
    await api.deploy(FUNCTION, SOURCE, key=tenant_key)
    await api.deploy(FUNCTION, SOURCE)  # the admin key acts in its own tenant
    status, _, _ = await api.invoke(FUNCTION, key=tenant_key)  # warm: later calls are cheap
    assert status == 200
    started = time.monotonic()
    report = await asyncio.to_thread(
        fuzz, api.url, {"admin": ADMIN_KEY, "tenant": tenant_key, "anonymous": None}, EXAMPLES
    )
    elapsed = time.monotonic() - started
    print(f"fuzz: {report.requests} requests in {elapsed:.1f}s, statuses {dict(report.statuses)}")
    assert report.requests > 100, report.statuses  # it did reach the server, broadly
    server_errors = {s: n for s, n in report.statuses.items() if s >= 500}
    assert not report.failures, "\n\n".join(report.failures[:10])
    assert not server_errors
    # The gateway is still healthy and the function still runs.
    assert (await api.invoke(FUNCTION, {"after": "fuzz"}, key=tenant_key))[0] == 200
