"""A container the engine refuses to start is removed at once, whatever step failed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from invoker.drivers.base import ContainerSpec, DriverError
from invoker.drivers.docker import DockerDriver

pytestmark = pytest.mark.asyncio


@pytest.fixture
def one_core_parent() -> Iterator[str]:
    """A parent cgroup with one core's CPU quota (cgroup v1)."""
    root = Path("/sys/fs/cgroup/cpu")
    if not root.is_dir():
        pytest.skip("needs cgroup v1's cpu controller")
    parent = f"nimbus-refuse-{os.getpid()}"
    (root / parent).mkdir()
    (root / parent / "cpu.cfs_quota_us").write_text("100000")
    yield parent
    (root / parent).rmdir()


async def test_a_container_the_engine_refuses_to_start_is_not_left_behind(
    runtime_images: dict[str, str],
    docker_client: docker.DockerClient,
    one_core_parent: str,
) -> None:
    # A two-core container under a one-core parent is created, then refused at start
    # (the engine leaves such a container in state Created).
    run_dir = Path("/tmp") / f"nbrf-{os.getpid()}"
    run_dir.mkdir(exist_ok=True)
    driver = DockerDriver(run_dir, lambda runtime: runtime_images[runtime])
    name = f"nimbus-refused-{os.getpid()}"
    spec = ContainerSpec(
        name=name,
        runtime="python:3.11",
        memory_mb=128,
        cpus=2.0,
        labels={"io.nimbus.managed": "refuse-test"},
        cgroup_parent=f"/{one_core_parent}",
    )
    try:
        with pytest.raises(DriverError):
            await driver.create(spec)
        assert docker_client.api.containers(all=True, filters={"name": name}) == []
        assert not (run_dir / name).exists()
    finally:
        await driver.close()
        for leftover in docker_client.api.containers(all=True, filters={"name": name}):
            docker_client.api.remove_container(leftover["Id"], force=True)
