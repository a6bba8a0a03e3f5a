"""Which engine answers mean a start failed on its way (tried once more) and which refuse."""

from __future__ import annotations

import docker.errors
import pytest

from invoker.drivers.engine import start_failed_in_runtime


@pytest.mark.parametrize(
    "explanation",
    [
        "OCI runtime start failed: container process is already dead: unknown",
        "cannot start a stopped process: unknown",
    ],
)
def test_a_runtime_that_lost_the_process_is_worth_one_more_try(explanation: str) -> None:
    assert start_failed_in_runtime(docker.errors.APIError("500", explanation=explanation))


@pytest.mark.parametrize(
    "explanation",
    ["No such image: nimbus/python:3.11", "Conflict. The container name is already in use"],
)
def test_a_refusal_is_not_retried(explanation: str) -> None:
    assert not start_failed_in_runtime(docker.errors.APIError("409", explanation=explanation))
