"""The invoker's call path with a fake driver and runtime: warm, cold, stem cells, failures.

Everything the invoker decides and records runs for real (pool, keep-alive, replies, a
SQLite store); only the container engine and the /init,/run protocol are fakes, and time
moves only when a fake says so. Assertions are what a user sees: the call's result, the
activation and usage the store holds afterwards, and the containers that exist.
The real-Docker versions of these paths are in tests/integration (test_pool.py and others).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from invoker.api import Status
from invoker.runtime_client import (
    MAX_RESULT_BYTES,
    ProxyError,
    ReplyTooLarge,
    RunResponse,
    RunTimeout,
)
from tests.unit.call_path_fakes import INIT_S, RUN_S, START_S, echo, rig

SOURCE = b"def handler(event):\n    return event\n"


async def test_cold_start_starts_loads_runs_and_records(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        spec = await r.deploy("hello")
        result = await r.call(spec, {"who": "you"})

        assert result.status is Status.SUCCESS
        assert result.result == {"who": "you"}
        assert result.logs == ["ran"]
        assert result.cold_start is True
        assert result.init_ms == (START_S + INIT_S) * 1000  # container start + /init
        assert result.duration_ms == RUN_S * 1000
        assert result.peak_memory_mb == 42.0  # measured by the container's meter
        assert r.driver.functions() == ["hello"]
        [init] = r.runtime.inits
        assert init.code == SOURCE and not init.binary and init.main == "main.handler"
        assert init.env["GREETING"] == "hi"
        assert init.env["NIMBUS_FUNCTION_NAME"] == "hello"
        assert init.env["NIMBUS_FUNCTION_VERSION"] == "1"

        stored = await r.stored(result)
        assert stored.status is Status.SUCCESS and stored.result == {"who": "you"}
        assert stored.cold_start is True and stored.init_ms == result.init_ms
        [usage] = await r.usage()
        assert usage.activation_id == result.activation_id
        assert usage.cold_start is True and usage.peak_memory_mb == 42.0


async def test_warm_call_reuses_the_container_until_keep_alive_ends(tmp_path: Path) -> None:
    async with rig(tmp_path, keep_alive_s=60.0) as r:
        spec = await r.deploy("hello")
        first = await r.call(spec)
        r.clock.advance(30)
        second = await r.call(spec)

        assert first.cold_start is True
        assert second.cold_start is False and second.init_ms == 0.0
        assert second.status is Status.SUCCESS
        assert len(r.driver.created) == 1 and len(r.runtime.inits) == 1
        assert (await r.stored(second)).cold_start is False

        r.clock.advance(61)  # idle past its keep-alive
        assert await r.invoker.reap() == 1
        assert r.driver.live == {}
        third = await r.call(spec)
        assert third.cold_start is True and len(r.driver.created) == 2


async def test_a_new_version_never_runs_in_a_container_of_the_old_one(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        v1 = await r.deploy("hello")
        await r.call(v1)
        v2 = await r.deploy("hello", code=b"def handler(event):\n    return 2\n")
        result = await r.call(v2)

        assert v2.version == 2
        assert result.cold_start is True and len(r.driver.created) == 2
        assert r.runtime.inits[-1].code == b"def handler(event):\n    return 2\n"
        assert r.runtime.inits[-1].env["NIMBUS_FUNCTION_VERSION"] == "2"


async def test_a_stem_cell_is_specialised_instead_of_starting_a_container(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, stem_cells=(("python:3.11", 128, 1),)) as r:
        await r.invoker.refill_stems()
        assert r.driver.functions() == [None]  # a generic container, no function yet
        [stem] = r.driver.live
        spec = await r.deploy("hello")
        result = await r.call(spec)

        assert result.status is Status.SUCCESS
        assert result.cold_start is True
        assert result.init_ms == INIT_S * 1000  # /init only: the container was already up
        assert list(r.driver.live) == [stem]
        [init] = r.runtime.inits
        assert init.address == r.driver.addresses[stem] and init.code == SOURCE

        await r.invoker.refill_stems()  # the stem used is replaced
        assert len(r.driver.live) == 2
        again = await r.call(spec)  # and the specialised one now serves warm
        assert again.cold_start is False and len(r.runtime.inits) == 1


async def test_a_function_with_network_never_takes_a_stem_cell(tmp_path: Path) -> None:
    async with rig(tmp_path, stem_cells=(("python:3.11", 128, 1),)) as r:
        await r.invoker.refill_stems()
        [stem] = r.driver.live
        spec = await r.deploy("online", network=True)
        result = await r.call(spec)

        assert result.status is Status.SUCCESS and result.init_ms == (START_S + INIT_S) * 1000
        assert r.driver.functions() == [None, "online"]
        assert r.driver.live[stem].network is False
        assert [i.address for i in r.runtime.inits] != [r.driver.addresses[stem]]


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


async def test_zip_code_reaches_the_container_intact_small_or_large(tmp_path: Path) -> None:
    small = _zip({"main.py": SOURCE})
    # Over the size past which /init's body is built off the event loop.
    large = _zip({"main.py": SOURCE, "blob.bin": os.urandom(1_200_000)})
    async with rig(tmp_path) as r:
        for name, code in (("small", small), ("large", large)):
            spec = await r.deploy(name, code=code, kind="zip")
            result = await r.call(spec)
            assert result.status is Status.SUCCESS
            assert r.runtime.inits[-1].binary and r.runtime.inits[-1].code == code


async def test_a_timeout_destroys_the_container_and_says_timeout(tmp_path: Path) -> None:
    async def never_answers(address: str, payload: dict[str, Any]) -> RunResponse:
        raise RunTimeout("/run did not answer within 2.5 s")

    async with rig(tmp_path) as r:
        spec = await r.deploy("slow", timeout_s=2)
        r.runtime.on_run = never_answers
        result = await r.call(spec)

        assert result.status is Status.TIMEOUT and result.result is None
        assert result.error == "the function did not finish within its timeout of 2 s"
        assert r.driver.live == {}  # what the call left running must not serve another
        assert r.runtime.forgotten == [r.driver.addresses["c1"]]
        stored = await r.stored(result)
        assert stored.status is Status.TIMEOUT and stored.error == result.error

        r.runtime.on_run = echo
        after = await r.call(spec)
        assert after.status is Status.SUCCESS and after.cold_start is True


async def test_a_result_over_6_mib_is_the_functions_error(tmp_path: Path) -> None:
    big = "x" * (MAX_RESULT_BYTES + 1)

    async def huge(address: str, payload: dict[str, Any]) -> RunResponse:
        return RunResponse(200, {"result": big}, len(big) + 12)

    async with rig(tmp_path) as r:
        spec = await r.deploy("big")
        r.runtime.on_run = huge
        result = await r.call(spec)

        assert result.status is Status.APPLICATION_ERROR and result.result is None
        assert result.error is not None
        assert f"larger than the {MAX_RESULT_BYTES} byte limit" in result.error
        stored = await r.stored(result)
        assert stored.status is Status.APPLICATION_ERROR and stored.result is None
        # The container answered the protocol: it stays warm for the next call.
        r.runtime.on_run = echo
        assert (await r.call(spec)).cold_start is False


async def test_an_answer_past_the_reply_bound_drops_the_container(tmp_path: Path) -> None:
    async def flood(address: str, payload: dict[str, Any]) -> RunResponse:
        raise ReplyTooLarge("/run answered 9000000 bytes")

    async with rig(tmp_path) as r:
        spec = await r.deploy("flood")
        r.runtime.on_run = flood
        result = await r.call(spec)

        assert result.status is Status.APPLICATION_ERROR
        assert result.error is not None and "byte limit" in result.error
        assert r.driver.live == {}


async def test_a_container_that_ends_mid_call_says_why(tmp_path: Path) -> None:
    async def killed(address: str, payload: dict[str, Any]) -> RunResponse:
        raise ProxyError("/run failed: Connection reset by peer")

    async with rig(tmp_path) as r:
        spec = await r.deploy("hungry")
        r.runtime.on_run = killed
        r.driver.end_reason = "it ran out of memory"
        result = await r.call(spec)

        assert result.status is Status.APPLICATION_ERROR
        assert result.error == (
            "the function's container ran out of memory (limit 128 MB) and was stopped "
            "during the call"
        )
        assert r.driver.live == {}
        assert (await r.stored(result)).error == result.error

        r.driver.end_reason = None  # the driver cannot tell why
        other = await r.call(spec)
        assert other.error == "the function's container stopped during the call"


async def test_code_that_does_not_load_is_the_functions_error(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        spec = await r.deploy("broken")
        r.runtime.init_reply = RunResponse(502, {"error": "SyntaxError: invalid syntax"})
        result = await r.call(spec)

        assert result.status is Status.APPLICATION_ERROR
        assert result.error == "init failed: SyntaxError: invalid syntax"
        assert r.driver.live == {}
        assert (await r.stored(result)).status is Status.APPLICATION_ERROR
