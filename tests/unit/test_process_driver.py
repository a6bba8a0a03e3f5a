"""The process driver removes a proxy's working directory, whatever its function wrote there."""

from __future__ import annotations

from pathlib import Path

from invoker.drivers.base import ContainerSpec
from invoker.drivers.process import ProcessDriver

PROXY = Path(__file__).resolve().parents[2] / "runtimes" / "python" / "proxy.py"


async def test_destroy_removes_the_working_directory_and_what_is_in_it(tmp_path: Path) -> None:
    driver = ProcessDriver(tmp_path, PROXY)
    handle = await driver.create(ContainerSpec(name="p1", runtime="python:3.11", memory_mb=128))
    workdir = tmp_path / "p1"
    try:
        nested = workdir / "out" / "deep"
        nested.mkdir(parents=True)
        for i in range(200):  # as a function writing scratch files in its directory
            (nested / f"f{i}").write_bytes(b"x" * 100)
        assert (workdir / "p.sock").exists()
    finally:
        await driver.destroy(handle)

    assert not workdir.exists()
    assert await driver.ended(handle) is None  # forgotten: nothing left to report on
    await driver.close()
