"""The Kubernetes driver removing pods (destroy, orphans), its stats, and reaching the API
through a kubeconfig.

No cluster runs here: kube_fake's aiohttp server on 127.0.0.1 plays kube-apiserver with
the recorded objects in tests/fixtures/k8s/, and the code under test talks to it through a
real `kubernetes.client.ApiClient`.
"""

from __future__ import annotations

from pathlib import Path

from invoker.drivers.base import MANAGED_LABEL, ContainerDriver, ContainerHandle
from invoker.drivers.kubernetes import KubernetesDriver, load_api_client
from tests.unit import kube_fake
from tests.unit.kube_fake import FAST, INSTANCE, NS, OWNER, POD, Cluster, Probe, driver

cluster = kube_fake.cluster


# --- destroy, orphans, stats ----------------------------------------------------------


async def test_destroy_deletes_and_a_pod_already_gone_is_fine(cluster: Cluster) -> None:
    cluster.api.existing.add(POD)
    drv = driver(cluster)
    handle = ContainerHandle(id="uid", name=POD, address="http://10.244.1.17:8080")
    await drv.destroy(handle)
    await drv.destroy(handle)  # the API now answers 404
    first, second = cluster.api.sent("DELETE")
    assert first.path == second.path == f"/api/v1/namespaces/{NS}/pods/{POD}"
    assert first.body == {"gracePeriodSeconds": 1}
    assert POD not in cluster.api.existing


async def test_remove_orphans_deletes_only_this_owners_pods_of_other_instances(
    cluster: Cluster,
) -> None:
    everything = [p["metadata"]["name"] for page in cluster.api.pod_pages for p in page["items"]]
    cluster.api.existing.update(everything)

    removed = await driver(cluster).remove_orphans(OWNER, INSTANCE)

    lists = cluster.api.sent("GET")
    assert [r.query.get("labelSelector") for r in lists] == [f"{MANAGED_LABEL}={OWNER}"] * 2
    assert "continue" in lists[1].query  # followed the second page
    deleted = sorted(r.path.rsplit("/", 1)[1] for r in cluster.api.sent("DELETE"))
    # Ours (this instance) stays; the terminating one is left to finish; the other
    # owner's pod is never even listed.
    assert deleted == ["nimbus-0aa0e7c4-3-a90e12", "nimbus-0aa0e7c4-4-55d0b1"]
    assert removed == 2
    assert {POD, "nimbus-77c0ffee-9-abcdef"} <= cluster.api.existing


async def test_stats_are_unknown_rather_than_invented(cluster: Cluster) -> None:
    stats = await driver(cluster).stats(ContainerHandle(id="u", name=POD, address="http://x:1"))
    assert (stats.peak_memory_mb, stats.cpu_seconds) == (None, None)
    assert cluster.api.requests == []


async def test_a_kubeconfig_client_reaches_the_named_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster: {{server: "http://127.0.0.1:{cluster.port}"}}
users:
  - name: nimbus
    user: {{token: not-a-real-token}}
contexts:
  - name: test
    context: {{cluster: test, user: nimbus, namespace: {NS}}}
current-context: test
"""
    )
    client = load_api_client(str(kubeconfig))
    try:
        cluster.api.existing.add(POD)
        drv = KubernetesDriver(client, config=FAST, readiness=Probe(True))
        await drv.destroy(ContainerHandle(id="u", name=POD, address="http://x:1"))
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert [r.path for r in cluster.api.sent("DELETE")] == [f"/api/v1/namespaces/{NS}/pods/{POD}"]
    assert cluster.api.headers[-1]["Authorization"] == "Bearer not-a-real-token"


def test_the_driver_satisfies_the_protocol(cluster: Cluster) -> None:
    drv = driver(cluster)
    assert isinstance(drv, ContainerDriver)
    assert drv.name == "kubernetes"
