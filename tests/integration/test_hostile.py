"""Hostile functions: each test plays a tenant trying a hole, on the real engine.

Everything a function controls is hostile: the files it can write, the socket the gateway
reaches it on, its output, its result, the processes it leaves behind and its network.
Each test asserts the attempt fails cleanly or stays contained, and that the host is not
the worse for it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
from pathlib import Path

import docker
import pytest

from gateway.keys import PLATFORM, RUN_DIR
from invoker.drivers.base import DriverError
from tests.conftest import Running

pytestmark = pytest.mark.asyncio

VICTIM = """
import os
def handler(event):
    return {"secret": os.environ["SECRET"], "event": event}
"""

# Tries to take over the directory the gateway reaches it through, and can make the
# gateway drop its open connections (by patching the proxy it runs in).
INTRUDER = """
import os
def handler(event):
    mode = event.get("mode")
    if mode == "probe":
        out = {}
        tries = {
            "unlink": lambda: os.unlink("/run/nimbus/p.sock"),
            "rename": lambda: os.rename("/run/nimbus/p.sock", "/run/nimbus/old"),
            "create": lambda: open("/run/nimbus/fill", "wb").write(b"x" * 4096),
            "symlink": lambda: os.symlink(event["target"], "/run/nimbus/p2.sock"),
            "chmod": lambda: os.chmod("/run/nimbus", 0o777),
        }
        for name, attempt in tries.items():
            try:
                attempt()
                out[name] = "allowed"
            except OSError as exc:
                out[name] = exc.errno
        return out
    if mode == "drop":
        # The function runs inside the proxy's process: make it answer with
        # "Connection: close", so the gateway has to connect again for the next call.
        import __main__
        send = __main__.Server._send
        def closing(conn, status, payload, keep):
            send(conn, status, payload, False)
        __main__.Server._send = staticmethod(closing)
        return {"dropped": True}
    return {"me": "intruder"}
"""


def container_of(client: docker.DockerClient, tenant: str, function: str) -> dict:
    found = client.api.containers(
        filters={"label": [f"io.nimbus.tenant={tenant}", f"io.nimbus.function={function}"]}
    )
    assert len(found) == 1, found
    return client.api.inspect_container(found[0]["Id"])


def socket_dir(platform: Running, container: dict) -> Path:
    return platform.app[RUN_DIR] / container["Name"].lstrip("/")


async def test_a_function_cannot_redirect_the_gateway_to_another_tenant(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api = platform.api
    victim, intruder = await api.tenant("victim"), await api.tenant("intruder")
    await api.deploy("vault", VICTIM, key=victim, env={"SECRET": "s3cr3t-of-victim"})
    status, body, _ = await api.invoke("vault", {"x": 1}, key=victim)
    assert status == 200 and body["secret"] == "s3cr3t-of-victim"
    victim_sock = socket_dir(platform, container_of(docker_client, "victim", "vault")) / "p.sock"

    await api.deploy("evil", INTRUDER, key=intruder)
    status, probe, _ = await api.invoke(
        "evil", {"mode": "probe", "target": str(victim_sock)}, key=intruder
    )
    assert status == 200, probe
    assert "allowed" not in probe.values(), probe  # the directory is not the tenant's

    # Suppose the tenant got past that: the host path now leads to the victim's proxy,
    # and the gateway's open connections are dropped, so it must connect again.
    evil_dir = socket_dir(platform, container_of(docker_client, "intruder", "evil"))
    (evil_dir / "p.sock").unlink()
    (evil_dir / "p.sock").symlink_to(victim_sock)
    status, dropped, _ = await api.invoke("evil", {"mode": "drop"}, key=intruder)
    assert status == 200 and dropped == {"dropped": True}, dropped

    for _ in range(3):
        status, body, _ = await api.invoke("evil", {"mode": "whoami"}, key=intruder)
        assert status == 200, body
        assert body == {"me": "intruder"}, body  # never the victim's function or secret


FLOOD = """
import os
def handler(event):
    out = {}
    print("x" * 2_000_000)                  # captured: bounded per call
    chunk = b"y" * 65536
    for _ in range(event["raw_mb"] * 16):   # raw fd writes bypass the capture
        os.write(1, chunk)
    for path in ("/tmp/fill", "/fill", "/run/nimbus/fill", "/run/nimbus-api/fill",
                 "/dev/shm/fill", "/home/fill"):
        written = 0
        try:
            with open(path, "wb") as f:
                while written < 200 * 2**20:
                    f.write(b"z" * 2**20)
                    written += 2**20
                f.flush()
            out[path] = written
        except OSError as exc:
            out[path] = f"refused after {written} bytes: errno {exc.errno}"
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
    return out
"""


async def test_output_and_files_stay_bounded(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api = platform.api
    await api.deploy("flood", FLOOD, memory_mb=256, timeout_s=60)
    status, body, headers = await api.invoke("flood", {"raw_mb": 30})
    assert status == 200, body
    for path, outcome in body.items():
        # Nothing accepts 200 MB: every writable place is small (tmpfs charged to the
        # container's memory) or refused outright.
        assert isinstance(outcome, str) or outcome < 200 * 2**20, (path, outcome)
    for path in ("/fill", "/run/nimbus/fill", "/run/nimbus-api/fill", "/home/fill"):
        assert isinstance(body[path], str) and "after 0 bytes" in body[path], (path, body)

    info = container_of(docker_client, "admin", "flood")
    log_size = os.stat(info["LogPath"]).st_size
    assert log_size <= 2 * 2**20, log_size  # 30 MB were written
    host_dir = socket_dir(platform, info)
    names = os.listdir(host_dir)
    on_disk = sum(os.lstat(host_dir / name).st_size for name in names if name != "p.sock")
    assert on_disk == 0 and names == ["p.sock"], names

    activation = headers["X-Nimbus-Activation-Id"]
    status, record, _ = await api.call("GET", f"/v1/activations/{activation}")
    assert status == 200
    assert sum(len(line) for line in record["logs"]) <= 2**20 + 200
    assert any("logs truncated" in line for line in record["logs"]) or len(record["logs"]) == 1


async def test_a_huge_result_is_the_functions_error_and_is_not_stored(platform: Running) -> None:
    api = platform.api
    await api.deploy("huge", "def handler(event):\n    return 'x' * (50 * 2**20)\n", memory_mb=512)
    status, body, headers = await api.invoke("huge")
    assert status == 502, body
    assert body["error"]["type"] == "application_error"
    assert "larger than" in body["error"]["message"]
    status, record, _ = await api.call(
        "GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}"
    )
    assert status == 200 and record["result"] is None
    store = platform.config.data_dir / "nimbus.db"
    assert not store.exists() or store.stat().st_size < 20 * 2**20
    # The function still works for results under the limit.
    await api.deploy("small", "def handler(event):\n    return 'x' * (5 * 2**20)\n")
    status, body, _ = await api.invoke("small")
    assert status == 200 and len(body) == 5 * 2**20


LEFTOVERS = """
import os, threading, time
def spin():
    while True:
        pass
def handler(event):
    time.sleep(event.get("sleep", 0))
    for _ in range(event.get("threads", 0)):
        threading.Thread(target=spin, daemon=True).start()
    for _ in range(event.get("forks", 0)):
        if os.fork() == 0:
            spin()
    return {"left": True}
"""


def cpu_seconds(info: dict) -> float:
    parent = (info["HostConfig"].get("CgroupParent") or "docker").strip("/")
    for path in (
        Path("/sys/fs/cgroup/cpuacct") / parent / info["Id"] / "cpuacct.usage",
        Path("/sys/fs/cgroup") / parent / info["Id"] / "cpu.stat",
    ):
        if path.exists():
            raw = path.read_text()
            if path.name == "cpu.stat":
                return int(raw.split("usage_usec ")[1].split()[0]) / 1e6
            return int(raw) / 1e9
    raise AssertionError("no cpu accounting file for the container")


async def warm_p50_ms(api, name: str, key: str, calls: int = 40) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        status, _, _ = await api.invoke(name, key=key)
        assert status == 200
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def test_work_left_behind_does_not_run_between_calls(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api = platform.api
    neighbour = await api.tenant("neighbour")
    await api.deploy("quiet", "def handler(event):\n    return 1\n", key=neighbour)
    await api.invoke("quiet", key=neighbour)
    quiet_p50 = await warm_p50_ms(api, "quiet", neighbour)

    await api.deploy("leftover", LEFTOVERS, memory_mb=256)
    status, body, _ = await api.invoke("leftover", {"threads": 2, "forks": 40})
    assert status == 200, body
    info = container_of(docker_client, "admin", "leftover")
    before = cpu_seconds(info)
    await asyncio.sleep(1.5)
    idle_cpu = cpu_seconds(info) - before
    assert idle_cpu < 0.05, f"an idle container used {idle_cpu:.3f} CPU seconds"
    loaded_p50 = await warm_p50_ms(api, "quiet", neighbour)
    print(
        f"\nneighbour warm p50: quiet {quiet_p50:.2f} ms, beside a container left with "
        f"42 spinning tasks {loaded_p50:.2f} ms ({loaded_p50 / quiet_p50:.2f}x); "
        f"that container's CPU while idle: {idle_cpu:.3f} s over 1.5 s"
    )
    # The next call thaws what it left: that CPU is inside a call, and billed to it.
    status, _, headers = await api.invoke("leftover", {"sleep": 0.5})
    assert status == 200
    status, record, _ = await api.call(
        "GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}"
    )
    assert status == 200 and record["cpu_seconds"] > 0.1, record


NETWORK = """
import socket
def handler(event):
    if event.get("listen"):
        srv = socket.socket()
        srv.bind(("0.0.0.0", 9999))
        srv.listen()
        srv.settimeout(event["listen"])
        try:
            srv.accept()
            return {"accepted": True}
        except OSError:
            return {"accepted": False}
    out = {}
    for host, port in event.get("targets", []):
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            out[f"{host}:{port}"] = "connected"
        except OSError as exc:
            out[f"{host}:{port}"] = type(exc).__name__
    return out
"""


def host_addresses(client: docker.DockerClient) -> list[str]:
    """The host's own addresses on the engine's bridges (the egress one and docker0).

    The host firewall drops whatever arrives from the egress bridge, whichever of the
    host's addresses it is sent to; these two stay on this machine.
    """
    found = []
    for name in ("nimbus-egress", "bridge"):
        for config in client.api.inspect_network(name)["IPAM"]["Config"] or []:
            if config.get("Gateway"):
                found.append(config["Gateway"])
    assert found
    return found


async def test_network_functions_reach_neither_the_host_nor_other_tenants(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api = platform.api
    a, b = await api.tenant("net-a"), await api.tenant("net-b")
    await api.deploy("probe", NETWORK, key=a, network=True)
    await api.deploy("server", NETWORK, key=b, network=True, timeout_s=10)
    assert (await api.invoke("server", {}, key=b))[0] == 200
    b_info = container_of(docker_client, "net-b", "server")
    b_ip = next(iter(b_info["NetworkSettings"]["Networks"].values()))["IPAddress"]

    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        targets = [[address, port] for address in host_addresses(docker_client)]
        serving = asyncio.create_task(api.invoke("server", {"listen": 4}, key=b))
        await asyncio.sleep(1.0)
        status, reached, _ = await api.invoke("probe", {"targets": [*targets, [b_ip, 9999]]}, key=a)
        assert status == 200, reached
        assert "connected" not in reached.values(), reached
        status, served, _ = await serving
        assert status == 200 and served == {"accepted": False}, served
    finally:
        listener.close()


async def test_platform_failures_do_not_show_host_details(platform: Running) -> None:
    api = platform.api
    invoker = platform.app[PLATFORM].ops.invoker
    real_create = invoker.driver.create

    async def failing(spec):  # what an engine error looks like, paths and all
        raise DriverError(
            "cannot start container nimbus-abc-1: 500 Server Error for "
            "http+docker://localhost/v1.41/containers/create: "
            "/sys/fs/cgroup/memory/nimbus/x/node-1 cpu quota"
        )

    await api.deploy("fails", "def handler(event):\n    return 1\n")
    invoker.driver.create = failing  # type: ignore[method-assign]
    try:
        status, body, _ = await api.invoke("fails")
    finally:
        invoker.driver.create = real_create  # type: ignore[method-assign]
    assert status == 503, body
    text = str(body)
    for leak in ("/sys/fs", "docker", "nimbus-abc", "cgroup", "v1.41"):
        assert leak not in text, (leak, body)
    assert body["error"]["activation_id"]


async def test_memory_a_node_cannot_hold_is_refused_at_deploy(platform: Running) -> None:
    api = platform.api
    status, body, _ = await api.call(
        "PUT",
        "/v1/functions/big",
        {
            "runtime": "python:3.11",
            "handler": "main.handler",
            "memory_mb": 9000,
            "code": {"source": "def handler(e):\n    return 1\n"},
        },
    )
    assert status == 400 and body["error"]["field"] == "memory_mb", body
    # Over one core's worth of memory: its CPU share must still fit its node.
    await api.deploy("wide", "def handler(e):\n    return 2\n", memory_mb=1536)
    status, body, _ = await api.invoke("wide")
    assert status == 200 and body == 2, body
