"""A function's new memory on Kubernetes: its idle pods resized in place, or replaced.

The invoker runs on the real Kubernetes driver against kube_fake (a 1.33 API server and the
kubelet behind it, tests/unit/kube_fake.py), with simulated nodes for the books and the
runtime client faked. A deploy goes through `Operations.deploy`, as the gateway's does; only
the memory changes, so the function's idle pod carries over to the new version.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoker.api import FunctionSpec, InvokeRequest, InvokeResult, Status
from invoker.containers.balloon import BalloonConfig
from invoker.containers.keepalive import FixedTTL
from invoker.containers.slots import Slot
from invoker.dispatcher import Dispatcher
from invoker.nodes.model import Flavor, Node
from invoker.nodes.node_pool import NodePool, NodePoolConfig
from invoker.nodes.placement import FirstFit, PlacementLimits
from invoker.operations import Operations
from invoker.providers.simulated import SimulatedProvider
from invoker.runtime_client import RunResponse
from invoker.service import Invoker, InvokerConfig
from invoker.store.base import FunctionDraft
from invoker.store.factory import open_store
from tests.unit import kube_fake
from tests.unit.call_path_fakes import Clock, FakeRuntime, Ledger, until
from tests.unit.kube_fake import NS, Cluster, FakeKubeApi, driver, fixture

cluster = kube_fake.cluster

NODE = Flavor("worker", 4.0, 2048, 0.1)


@dataclass
class PodRig:
    """An invoker on the Kubernetes driver, its deploy face, the fake cluster, one node."""

    invoker: Invoker
    ops: Operations
    api: FakeKubeApi
    runtime: FakeRuntime
    clock: Clock
    node: Node

    async def deploy(self, memory_mb: int) -> FunctionSpec:
        """Deploy `hello` (the same code every time) at `memory_mb`."""
        draft = FunctionDraft(
            "t", "hello", "python:3.11", "main.handler", "source",
            b"def handler(event):\n    return event\n", memory_mb, 2.0, 1, {}, False,
        )  # fmt: skip
        stored, _ = await self.ops.deploy(draft, self.clock.wall())
        return stored.spec

    async def call(self, spec: FunctionSpec) -> InvokeResult:
        return await self.ops.invoke(InvokeRequest(uuid.uuid4().hex, spec, {"n": 1}))

    def the_pod(self) -> tuple[Slot, dict[str, Any]]:
        """The function's one container, and its pod as the API server and kubelet keep it
        from now on (running at the size the driver created it with)."""
        (slot,) = self.invoker.containers("t", "hello")
        assert slot.handle is not None
        name = slot.handle.name
        if name not in self.api.pods:
            created = next(r.body for r in self.api.sent("POST") if r.path.endswith("/pods")
                           and r.body["metadata"]["name"] == name)  # fmt: skip
            pod = fixture("pod-running-resizable.json")
            pod["metadata"]["name"] = name
            size = pod_memory(created)
            pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = size
            pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = size
            pod["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] = size
            pod["status"]["containerStatuses"][0]["resources"]["requests"]["memory"] = size
            self.api.pods[name] = pod
        return slot, self.api.pods[name]

    def booked(self) -> dict[str, int]:
        """Memory booked on the node, by container."""
        return {cid: int(demand[1]) for cid, demand in self.node.allocations.items()}

    def pods_created(self) -> list[str]:
        """The memory of each pod the driver created, in order."""
        return [pod_memory(r.body) for r in self.api.sent("POST")]

    def resizes(self) -> list[str]:
        """The memory each resize patch asked for, in order (withdrawals included)."""
        return [pod_memory(r.body) for r in self.api.sent("PATCH") if r.path.endswith("/resize")]


def pod_memory(pod: dict[str, Any]) -> str:
    """A pod's (or a resize patch's) memory limit as desired."""
    return str(pod["spec"]["containers"][0]["resources"]["limits"]["memory"])


def running_mb(pod: dict[str, Any]) -> str:
    """The pod's memory limit as its kubelet reports it running."""
    return str(pod["status"]["containerStatuses"][0]["resources"]["limits"]["memory"])


@asynccontextmanager
async def pod_rig(cluster: Cluster, tmp_path: Path) -> AsyncIterator[PodRig]:
    """The invoker as assembled for Kubernetes (ballooning on, as by default), on one node."""
    clock, ledger = Clock(), Ledger()
    store = open_store(None, tmp_path)
    await store.open()
    limits = PlacementLimits()
    nodes = NodePool(
        SimulatedProvider(clock.now),
        FirstFit(limits),
        limits,
        NodePoolConfig((NODE,), min_nodes=1, max_nodes=1, min_node_age_s=0),
        clock=clock.now,
    )
    await nodes.start()
    runtime = FakeRuntime(clock, ledger)
    config = InvokerConfig(owner="unit", stem_cells=(), host_cpus=2.0, balloon=BalloonConfig())
    invoker = Invoker(
        driver(cluster),
        runtime,  # type: ignore[arg-type]  # the methods of RuntimeClient the invoker calls
        store,
        config,
        clock=clock.now,
        wall=clock.wall,
        keep_alive=FixedTTL(600.0),
        nodes=nodes,
    )
    ops = Operations(store, invoker, Dispatcher(store, invoker))
    (node,) = nodes.nodes.values()
    try:
        yield PodRig(invoker, ops, cluster.api, runtime, clock, node)
    finally:
        await invoker.close()
        await nodes.close()
        await store.close()


async def test_an_idle_pod_is_resized_in_place_and_serves_the_new_memory_warm(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with pod_rig(cluster, tmp_path) as r:
        first = await r.call(await r.deploy(256))
        assert first.status is Status.SUCCESS and first.cold_start
        slot, pod = r.the_pod()

        ran_at: list[str] = []

        async def note_size(address: str, payload: dict[str, Any]) -> RunResponse:
            ran_at.append(running_mb(pod))
            return RunResponse(200, {"result": payload["memory_limit_mb"]})

        r.runtime.on_run = note_size
        spec = await r.deploy(512)
        assert r.booked() == {slot.id: 512}  # the room is promised before the resize
        second = await r.call(spec)  # at once: it waits for the kubelet, not a new pod

        assert second.status is Status.SUCCESS and not second.cold_start
        assert second.result == 512 and second.memory_mb == 512
        assert ran_at == ["512Mi"]  # the call ran only once the pod ran at its new size
        assert r.pods_created() == ["256Mi"]  # no new pod
        assert r.resizes() == ["512Mi"]
        assert (pod_memory(pod), running_mb(pod)) == ("512Mi", "512Mi")
        assert r.invoker.containers("t", "hello") == [slot]
        assert slot.memory_mb == 512 and r.booked() == {slot.id: 512}

        # Lowering it (1.34) frees the node's room once the kubelet has done it.
        spec = await r.deploy(128)
        assert r.booked() == {slot.id: 512}
        third = await r.call(spec)
        assert third.result == 128 and not third.cold_start
        assert ran_at == ["512Mi", "128Mi"] and r.pods_created() == ["256Mi"]
        assert slot.memory_mb == 128 and r.booked() == {slot.id: 128}


async def test_a_resize_the_kubelet_refuses_replaces_the_pod_with_the_books_as_they_were(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with pod_rig(cluster, tmp_path) as r:
        await r.call(await r.deploy(256))
        old, pod = r.the_pod()
        r.api.kubelet = "infeasible"

        spec = await r.deploy(512)
        assert await until(lambda: old.retired)
        # Asked, refused, withdrawn: the pod runs as it did, booked at its old size.
        assert r.resizes() == ["512Mi", "256Mi"]
        assert (pod_memory(pod), running_mb(pod)) == ("256Mi", "256Mi")
        assert old.memory_mb == 256 and r.booked() == {old.id: 256}

        call = await r.call(spec)
        assert call.status is Status.SUCCESS and call.cold_start
        assert r.pods_created() == ["256Mi", "512Mi"]
        assert await r.invoker.reap() == 1  # the retired pod goes at the next reap
        (new,) = r.invoker.containers("t", "hello")
        assert new is not old and r.booked() == {new.id: 512}
        assert old.handle is not None
        deleted = [q.path for q in r.api.sent("DELETE")]
        assert deleted == [f"/api/v1/namespaces/{NS}/pods/{old.handle.name}"]


async def test_a_cluster_without_in_place_resize_replaces_pods_and_is_asked_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.api.version = fixture("version-1.31.json")
    cluster.api.resize_subresource = False
    async with pod_rig(cluster, tmp_path) as r:
        await r.call(await r.deploy(256))
        first, _ = r.the_pod()
        spec = await r.deploy(512)
        assert await until(lambda: first.retired)
        assert (await r.call(spec)).cold_start
        await r.invoker.reap()
        second, _ = r.the_pod()

        # The cluster said no: the next change replaces the pod without asking again.
        await r.deploy(384)
        assert second.retired
        assert r.resizes() == ["512Mi"]
        assert r.pods_created() == ["256Mi", "512Mi"]
