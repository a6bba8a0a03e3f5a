"""Cold and warm calls on a remote Docker engine (docker-hosts) vs this machine's engine.

Runs Nimbus in this process with the `docker-hosts` provider over two engines: this
machine's (unix socket, the local fast path) and a second, independent dockerd on
tcp://127.0.0.1:23760 with mutual TLS, which Nimbus treats as another VM's engine (TCP
data path, published port, per-container token). `scripts/ensure-docker-host2.sh` starts
it. Each round deploys two new 384 MB no-ops (512 MB nodes: they cannot share one, so one
lands on each engine), times each one's first call (cold) and then its warm calls, and
removes them. The local engine's figures are the baseline of the same run.

    .venv/bin/python bench/docker_hosts.py [--rounds 5] [--warm-calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from common import free_port, percentile

from gateway.app import create_app
from gateway.config import Config

ROOT = Path(__file__).resolve().parents[1]
KEY = "nmb_admin_bench_key"
CERTS = Path(os.environ.get("NIMBUS_HOST2_CERTS", "/var/lib/nimbus-docker2-certs")) / "client"
PORT2 = int(os.environ.get("NIMBUS_HOST2_PORT", "23760"))
HOSTS = """
[[host]]
id = "local"
url = "unix:///var/run/docker.sock"
vcpu = 1
memory_mb = 512

[[host]]
id = "remote"
url = "tcp://127.0.0.1:{port}"
tls = "{certs}"
vcpu = 1
memory_mb = 512
"""


async def bench(args: argparse.Namespace, tmp: Path) -> None:
    hosts = tmp / "hosts.toml"
    hosts.write_text(HOSTS.format(port=PORT2, certs=CERTS))
    port = free_port()
    config = Config(
        data_dir=tmp / "data",
        port=port,
        admin_key=KEY,
        vm_provider="docker-hosts",
        docker_hosts_file=hosts,
        min_nodes=2,
        max_nodes=2,
        placement_policy="first-fit",
        stem_cells=(),
    )
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    cold: dict[str, list[float]] = {}
    warm: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:

        async def invoke(name: str) -> tuple[float, str]:
            start = time.perf_counter()
            async with http.post(f"{url}/v1/functions/{name}/invoke", json={}) as resp:
                await resp.read()
                assert resp.status == 200, await resp.text()
                activation = resp.headers["X-Nimbus-Activation-Id"]
            return (time.perf_counter() - start) * 1000, activation

        try:
            for rnd in range(args.rounds):
                names = [f"a{rnd}", f"b{rnd}"]
                for name in names:
                    body = {
                        "handler": "main.handler",
                        "code": {"source": "def handler(e):\n    return e\n"},
                        "memory_mb": 384,
                    }
                    async with http.put(f"{url}/v1/functions/{name}", json=body) as resp:
                        assert resp.status in (200, 201), await resp.text()
                for name in names:
                    took, activation = await invoke(name)
                    async with http.get(f"{url}/v1/activations/{activation}") as resp:
                        node = (await resp.json())["node"]
                    cold.setdefault(node, []).append(took)
                    warm.setdefault(node, []).extend(
                        [(await invoke(name))[0] for _ in range(args.warm_calls)]
                    )
                for name in names:
                    async with http.delete(f"{url}/v1/functions/{name}") as resp:
                        assert resp.status in (200, 204), await resp.text()
                await asyncio.sleep(1)  # let the containers go before the next round
        finally:
            await runner.cleanup()
    print(f"{args.rounds} rounds; cold = first call of a new function, warm = the next calls")
    print(f"{'engine':<10}{'cold p50':>10}{'cold max':>10}{'warm p50':>10}{'warm p99':>10}")
    for node in ("local", "remote"):
        c, w = cold.get(node, []), warm.get(node, [])
        if not c:
            print(f"{node:<10} no calls landed here")
            continue
        print(
            f"{node:<10}{statistics.median(c):>10.1f}{max(c):>10.1f}"
            f"{percentile(w, 50):>10.2f}{percentile(w, 99):>10.2f}"
        )
    if cold.get("local") and cold.get("remote"):
        ratio = statistics.median(cold["remote"]) / statistics.median(cold["local"])
        print(f"remote/local cold p50: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm-calls", type=int, default=200)
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker-host2.sh")], check=True)
    with tempfile.TemporaryDirectory(prefix="nb-hosts-", dir="/tmp") as tmp:
        asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
