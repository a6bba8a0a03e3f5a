"""What keep-alive learned of a function survives a restart of the platform."""

from __future__ import annotations

from pathlib import Path

from gateway.auth import ADMIN_TENANT
from gateway.keys import PLATFORM
from tests.conftest import start_platform


async def test_histories_survive_a_restart_and_go_with_the_function(
    runtime_images: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    key = (ADMIN_TENANT, "ticker")
    runner, running = await start_platform(data, keep_alive_policy="budget", stem_cells=())
    try:
        await running.api.deploy("ticker", "def handler(e):\n    return 1\n")
        for _ in range(4):
            assert (await running.api.invoke("ticker"))[0] == 200
        learned = running.app[PLATFORM].ops.invoker.keep_alive.export_state(key)
        assert learned is not None and learned["calls"] == 4
    finally:
        await running.api.session.close()
        await runner.cleanup()  # a clean stop saves what was learned

    runner, running = await start_platform(data, keep_alive_policy="budget", stem_cells=())
    try:
        policy = running.app[PLATFORM].ops.invoker.keep_alive
        assert policy.export_state(key) == learned
        assert (await running.api.invoke("ticker"))[0] == 200
        assert (policy.export_state(key) or {})["calls"] == 5  # and it goes on learning
        status, _, _ = await running.api.call("DELETE", "/v1/functions/ticker")
        assert status == 200
        assert policy.export_state(key) is None
    finally:
        await running.api.session.close()
        await runner.cleanup()

    runner, running = await start_platform(data, keep_alive_policy="budget", stem_cells=())
    try:  # a deleted function's history is gone from the store too
        assert running.app[PLATFORM].ops.invoker.keep_alive.export_state(key) is None
    finally:
        await running.api.session.close()
        await runner.cleanup()
