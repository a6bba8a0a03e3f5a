"""Ballooning on Kubernetes: idle pods deflated by in-place resize where the cluster can.

The invoker runs on the real Kubernetes driver against kube_fake (an API server, its
kubelet, and the metrics API as metrics-server serves it), as in
test_kubernetes_memory_change.py; ballooning runs as the maintenance loop runs it
(`Balloons.deflate_idle`), on the invoker's clock.
"""

from __future__ import annotations

from typing import Any

from invoker.api import FunctionSpec, Status
from invoker.containers.ballooning import Balloons
from invoker.containers.slots import Slot
from invoker.drivers.kubernetes_metrics import container_working_set_mb
from invoker.runtime_client import RunResponse
from tests.unit import kube_fake
from tests.unit.call_path_fakes import until
from tests.unit.kube_fake import NS, Cluster
from tests.unit.test_kubernetes_memory_change import PodRig, pod_rig, running_mb

cluster = kube_fake.cluster

WORKING_SET = "40960Ki"  # 40 MiB: deflated to 40 + 16 headroom = 56 MiB
GRACE_S = 2.0  # BalloonConfig's default idle grace


def balloons(r: PodRig) -> Balloons:
    assert r.invoker.balloons is not None
    return r.invoker.balloons


async def warm_pod(r: PodRig) -> tuple[FunctionSpec, Slot, dict[str, Any]]:
    """`hello` at 256 MB, called once: its idle pod, whose working set the metrics API
    reports, and where each call ran (the pod's limit as its kubelet ran it)."""
    spec = await r.deploy(256)
    assert (await r.call(spec)).cold_start
    slot, pod = r.the_pod()
    assert slot.handle is not None
    r.api.working_sets[slot.handle.name] = WORKING_SET
    return spec, slot, pod


async def maintain(r: PodRig, after_s: float) -> None:
    """One pass of the maintenance loop's ballooning, `after_s` later, to its end."""
    r.clock.advance(after_s)
    await balloons(r).deflate_idle()
    await balloons(r).settled()


def note_sizes(r: PodRig, pod: dict[str, Any]) -> list[str]:
    ran_at: list[str] = []

    async def run(address: str, payload: dict[str, Any]) -> RunResponse:
        ran_at.append(running_mb(pod))
        return RunResponse(200, {"result": "ok"})

    r.runtime.on_run = run
    return ran_at


async def test_an_idle_pod_is_deflated_after_the_grace_and_inflated_before_its_next_call(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(34)
    async with pod_rig(cluster, tmp_path) as r:
        spec, slot, pod = await warm_pod(r)
        ran_at = note_sizes(r, pod)

        await maintain(r, GRACE_S / 2)  # within the grace: not even measured
        assert r.api.metrics_reads() == 0 and r.resizes() == []

        await maintain(r, GRACE_S)
        assert r.resizes() == ["56Mi"] and running_mb(pod) == "56Mi"
        assert balloons(r).limit_mb(slot) == 56
        assert r.node.deflated == {slot.id: 56} and r.node.resident_mb == 56
        assert r.booked() == {slot.id: 256}  # still its function's size, once called

        call = await r.call(spec)
        assert call.status is Status.SUCCESS and not call.cold_start
        assert ran_at == ["256Mi"]  # it ran only once the kubelet ran it at full size
        assert r.resizes() == ["56Mi", "256Mi"] and r.pods_created() == ["256Mi"]
        assert balloons(r).limit_mb(slot) == 256 and r.node.deflated == {}

        # Idle again: deflated again, after the grace (the working set is read again once
        # metrics-server has a new sample).
        await maintain(r, 20.0)
        assert r.resizes() == ["56Mi", "256Mi", "56Mi"] and r.api.metrics_reads() == 2


async def test_a_call_given_a_pod_being_deflated_waits_and_runs_at_full_size(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(34)
    async with pod_rig(cluster, tmp_path) as r:
        spec, slot, pod = await warm_pod(r)
        ran_at = note_sizes(r, pod)
        r.clock.advance(GRACE_S + 1)
        await balloons(r).deflate_idle()
        assert await until(lambda: balloons(r).changing(slot.id))

        call = await r.call(spec)
        assert call.status is Status.SUCCESS and not call.cold_start
        assert ran_at == ["256Mi"] and r.resizes() == ["56Mi", "256Mi"]
        assert running_mb(pod) == "256Mi" and r.node.deflated == {}


async def test_a_pod_whose_inflation_is_refused_is_replaced_and_the_call_goes_elsewhere(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(34)
    async with pod_rig(cluster, tmp_path) as r:
        spec, old, pod = await warm_pod(r)
        await maintain(r, GRACE_S + 1)
        assert running_mb(pod) == "56Mi"
        r.api.kubelet = "deferred"  # the node has no room for it now

        call = await r.call(spec)
        assert call.status is Status.SUCCESS and call.cold_start
        assert r.pods_created() == ["256Mi", "256Mi"]
        (new,) = r.invoker.containers("t", "hello")
        assert new is not old and r.booked() == {new.id: 256}
        assert old.handle is not None
        assert [q.path for q in r.api.sent("DELETE")] == [
            f"/api/v1/namespaces/{NS}/pods/{old.handle.name}"
        ]


async def test_a_cluster_that_refuses_lowering_a_limit_is_asked_once(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(33)
    async with pod_rig(cluster, tmp_path) as r:
        spec, slot, pod = await warm_pod(r)
        await maintain(r, GRACE_S + 1)
        assert r.resizes() == ["56Mi"]  # refused (422): the pod keeps its size
        assert running_mb(pod) == "256Mi" and balloons(r).limit_mb(slot) == 256
        assert r.node.deflated == {}

        await maintain(r, 60.0)
        assert r.resizes() == ["56Mi"] and r.api.metrics_reads() == 1
        call = await r.call(spec)
        assert not call.cold_start and r.resizes() == ["56Mi"]


async def test_without_the_metrics_api_pods_keep_their_size_and_it_is_asked_once(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(34)
    cluster.api.metrics_api = False
    async with pod_rig(cluster, tmp_path) as r:
        _, slot, pod = await warm_pod(r)
        await maintain(r, GRACE_S + 1)
        await maintain(r, 60.0)
        assert r.api.metrics_reads() == 1 and r.resizes() == []
        assert running_mb(pod) == "256Mi" and balloons(r).limit_mb(slot) == 256


async def test_a_pod_not_scraped_yet_is_measured_again_at_the_next_sample(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(34)
    async with pod_rig(cluster, tmp_path) as r:
        _, slot, pod = await warm_pod(r)
        assert slot.handle is not None
        del r.api.working_sets[slot.handle.name]  # metrics-server has no sample of it yet
        await maintain(r, GRACE_S + 1)
        await maintain(r, 1.0)  # within the same metrics resolution: not asked again
        assert r.api.metrics_reads() == 1 and r.resizes() == []

        r.api.working_sets[slot.handle.name] = WORKING_SET
        await maintain(r, 15.0)
        assert r.api.metrics_reads() == 2 and r.resizes() == ["56Mi"]
        assert running_mb(pod) == "56Mi"


async def test_an_idle_pod_that_outgrew_its_headroom_gets_room_back(
    cluster: Cluster, tmp_path: Any
) -> None:
    cluster.api.as_release(34)
    async with pod_rig(cluster, tmp_path) as r:
        _, slot, pod = await warm_pod(r)
        await maintain(r, GRACE_S + 1)
        assert running_mb(pod) == "56Mi"
        assert slot.handle is not None
        r.api.working_sets[slot.handle.name] = "80Mi"  # it allocates while idle (not frozen)
        await maintain(r, 15.0)
        assert r.resizes() == ["56Mi", "96Mi"] and running_mb(pod) == "96Mi"
        assert r.node.deflated == {slot.id: 96}


def test_the_working_set_is_read_in_the_units_metrics_server_reports() -> None:
    def metrics(memory: str) -> dict[str, Any]:
        return {"containers": [{"name": "runtime", "usage": {"cpu": "1m", "memory": memory}}]}

    assert container_working_set_mb(metrics("40960Ki"), "runtime") == 40.0
    assert container_working_set_mb(metrics("64Mi"), "runtime") == 64.0
    assert container_working_set_mb(metrics("52428800"), "runtime") == 50.0
    assert container_working_set_mb(metrics("64Mi"), "sidecar") is None
    assert container_working_set_mb({"containers": []}, "runtime") is None
