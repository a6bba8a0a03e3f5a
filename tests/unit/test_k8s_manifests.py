"""k8s/: what the base and the ha overlay render, and how the objects fit together.

Schemas cannot see that a Service selects nothing or a Role grants too much, so these
tests check the objects against each other (rendering is k8s_objects'; schema checks are
in test_k8s_schemas.py, function pods and their network in test_k8s_function_pods.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from invoker.drivers.kubernetes_pods import KubernetesDriverConfig
from tests.unit.k8s_objects import (
    BASE,
    CLUSTER_SCOPED,
    FUNCTIONS_NS,
    HA,
    PLATFORM_NS,
    gateway_workload,
    kinds,
    matches,
    one,
    render,
    restricted_violations,
)

# --- the base: what is there and how it fits together ----------------------------------


def test_base_renders_exactly_the_expected_objects() -> None:
    assert kinds(render(BASE)) == [
        ("ClusterRole", "nimbus-node-reader"),
        ("ClusterRoleBinding", "nimbus-node-reader"),
        ("ConfigMap", "nimbus-config"),
        ("Deployment", "nimbus-gateway"),
        ("Namespace", PLATFORM_NS),
        ("Namespace", FUNCTIONS_NS),
        ("NetworkPolicy", "function-egress-deny"),
        ("NetworkPolicy", "function-egress-internet-only"),
        ("NetworkPolicy", "function-ingress-from-gateway"),
        ("PersistentVolumeClaim", "nimbus-data"),
        ("Role", "nimbus-function-pods"),
        ("RoleBinding", "nimbus-function-pods"),
        ("Service", "nimbus-gateway"),
        ("ServiceAccount", "nimbus"),
        ("ServiceMonitor", "nimbus-gateway"),
    ]


@pytest.mark.parametrize("overlay", [BASE, HA], ids=["base", "ha"])
def test_every_object_is_labelled_and_namespaced_on_purpose(overlay: Path) -> None:
    for obj in render(overlay):
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "nimbus", obj["kind"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
        else:
            assert meta.get("namespace") in (PLATFORM_NS, FUNCTIONS_NS), (obj["kind"], meta)


def test_both_namespaces_enforce_the_restricted_pod_security_profile() -> None:
    objs = render(BASE)
    for ns in (PLATFORM_NS, FUNCTIONS_NS):
        labels = one(objs, "Namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_role_allows_pods_only_in_the_functions_namespace() -> None:
    objs = render(BASE)
    role = one(objs, "Role", "nimbus-function-pods")
    assert role["metadata"]["namespace"] == FUNCTIONS_NS
    rule, resize, metrics = role["rules"]
    assert rule["apiGroups"] == [""]
    assert rule["resources"] == ["pods"]
    assert sorted(rule["verbs"]) == ["create", "delete", "get", "list", "watch"]
    # In-place resize: patch on the subresource, never on the pod itself.
    assert resize == {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]}
    # Ballooning: an idle pod's working set from the metrics API, read only.
    assert metrics == {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get"]}
    binding = one(objs, "RoleBinding", "nimbus-function-pods")
    assert binding["metadata"]["namespace"] == FUNCTIONS_NS
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "nimbus-function-pods",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nimbus", "namespace": PLATFORM_NS}
    ]


def test_the_cluster_role_only_reads_nodes() -> None:
    objs = render(BASE)
    (rule,) = one(objs, "ClusterRole", "nimbus-node-reader")["rules"]
    assert (rule["apiGroups"], rule["resources"]) == ([""], ["nodes"])
    assert set(rule["verbs"]) <= {"list", "watch"} and "list" in rule["verbs"]
    binding = one(objs, "ClusterRoleBinding", "nimbus-node-reader")
    assert binding["roleRef"]["name"] == "nimbus-node-reader"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nimbus", "namespace": PLATFORM_NS}
    ]


@pytest.mark.parametrize("overlay", [BASE, HA], ids=["base", "ha"])
def test_no_rbac_rule_uses_a_wildcard(overlay: Path) -> None:
    for obj in render(overlay):
        for rule in obj.get("rules") or ():
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, ()), (obj["metadata"]["name"], rule)


def test_the_config_points_the_driver_at_the_functions_namespace() -> None:
    objs = render(BASE)
    data = one(objs, "ConfigMap", "nimbus-config")["data"]
    assert data["NIMBUS_DRIVER"] == "kubernetes"
    assert data["NIMBUS_K8S_NAMESPACE"] == FUNCTIONS_NS == KubernetesDriverConfig().namespace
    assert data["NIMBUS_STORE_URL"].startswith("sqlite:////data/")


@pytest.mark.parametrize("overlay", [BASE, HA], ids=["base", "ha"])
def test_the_gateway_is_hardened_probed_and_sized(overlay: Path) -> None:
    objs = render(overlay)
    workload = gateway_workload(objs)
    pod = workload["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["serviceAccountName"] == "nimbus"
    one(objs, "ServiceAccount", "nimbus")
    (container,) = pod["containers"]
    assert container["image"] == "nimbus/gateway:latest"
    assert container["command"] == ["nimbus"]
    assert container["args"][:5] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert container["args"][5] == "--data-dir"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8080}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] in port_names, probe
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    env = {e["name"]: e for e in container.get("env", ())}
    assert env["NIMBUS_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "nimbus-admin",
        "key": "admin-key",
    }
    (env_from,) = container["envFrom"]
    one(objs, "ConfigMap", env_from["configMapRef"]["name"])
    # Every mount has a volume, and /data and /tmp are writable despite the read-only root.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts) == {"/data", "/tmp"} and set(mounts.values()) <= set(volumes)
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            one(objs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize("overlay", [BASE, HA], ids=["base", "ha"])
def test_service_and_service_monitor_select_the_gateway(overlay: Path) -> None:
    objs = render(overlay)
    workload = gateway_workload(objs)
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert matches(workload["spec"]["selector"]["matchLabels"], pod_labels)
    service = one(objs, "Service", "nimbus-gateway")
    assert matches(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    container_ports = {
        p["name"] for p in workload["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert port["targetPort"] in container_ports
    monitor = one(objs, "ServiceMonitor", "nimbus-gateway")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o for o in objs if o["kind"] == "Service" and matches(wanted, o["metadata"]["labels"])
    ]
    assert services == [service]  # exactly one target Service: no double scraping
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == port["name"]


def test_the_single_gateway_is_replaced_not_rolled() -> None:
    deployment = one(render(BASE), "Deployment", "nimbus-gateway")
    assert deployment["spec"]["replicas"] == 1
    # A second gateway on the same data dir would remove the first one's pods as orphans.
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


# --- the ha overlay -------------------------------------------------------------------------


def test_ha_runs_several_gateways_each_with_its_own_owner() -> None:
    objs = render(HA)
    names = kinds(objs)
    assert ("Deployment", "nimbus-gateway") not in names
    assert ("PersistentVolumeClaim", "nimbus-data") not in names
    workload = gateway_workload(objs)
    assert workload["kind"] == "StatefulSet"
    assert workload["spec"]["replicas"] >= 2
    # A stable, distinct data dir per replica: the owner label derives from it.
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--data-dir") + 1] == "/data/$(POD_NAME)"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    peers = one(objs, "Service", workload["spec"]["serviceName"])
    assert peers["spec"]["clusterIP"] == "None"
    budget = one(objs, "PodDisruptionBudget", "nimbus-gateway")
    assert matches(
        budget["spec"]["selector"]["matchLabels"],
        workload["spec"]["template"]["metadata"]["labels"],
    )


def test_ha_takes_the_store_url_from_the_postgres_secret() -> None:
    objs = render(HA)
    (container,) = gateway_workload(objs)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NIMBUS_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "nimbus-postgres",
        "key": "url",
    }
    # Not also in the ConfigMap, where a SQLite URL would be a trap.
    assert "NIMBUS_STORE_URL" not in one(objs, "ConfigMap", "nimbus-config")["data"]
