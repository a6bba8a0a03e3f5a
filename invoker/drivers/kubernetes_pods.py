"""The Pod Nimbus asks Kubernetes for, built from a ContainerSpec (pure).

The pod is hardened (non-root, read-only root filesystem, no privilege
escalation, every capability dropped, the runtime's default seccomp profile,
no service account token), sized with requests = limits (Guaranteed QoS, so
what Nimbus bills is what the node reserves), and bound to the node Nimbus's
placement chose through `spec.nodeName`, which bypasses the scheduler. When
placement chose no node, the scheduler places the pod; if nothing fits it
stays Pending, which is the signal a cluster autoscaler acts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from invoker.drivers.base import ContainerSpec, DriverError
from invoker.providers.kubernetes_nodes import Toleration

EGRESS_LABEL = "io.nimbus.egress"
""""deny" on pods of functions without network access; k8s/base's NetworkPolicy enforces it."""

CONTAINER_NAME = "runtime"


@dataclass(frozen=True)
class KubernetesDriverConfig:
    """Where and how function pods run."""

    namespace: str = "nimbus-functions"
    port: int = 8080  # the runtime proxy's port inside the pod (NIMBUS_PORT)
    runtime_class: str | None = None  # e.g. "gvisor" or "kata" (a RuntimeClass in the cluster)
    tmp_size_mb: int = 64  # the in-memory /tmp; counts against the pod's memory limit
    start_timeout_s: float = 120.0  # create(): pod Running and /healthz answering
    poll_initial_s: float = 0.1  # pod status polling backs off from here...
    poll_max_s: float = 1.0  # ...to here
    probe_interval_s: float = 0.05
    request_timeout_s: float = 10.0  # one API call
    delete_grace_s: int = 1
    image_pull_policy: str = "IfNotPresent"
    tolerations: tuple[Toleration, ...] = ()  # the same ones the node provider was given
    list_page_size: int = 500
    resize_timeout_s: float = 10.0  # set_memory_limit(): the kubelet applying a pod resize


def cpu_quantity(cpus: float) -> str:
    """CPU cores as a Kubernetes quantity: 1.0 -> "1", 0.5 -> "500m"."""
    millis = round(cpus * 1000)
    if millis <= 0:
        raise DriverError(f"a pod needs a positive CPU size, got {cpus}")
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def pod_manifest(
    spec: ContainerSpec, *, image: str, config: KubernetesDriverConfig
) -> dict[str, Any]:
    """The Pod object that `create` sends for `spec` (pure).

    The spec's labels (owner, instance, tenant, function...) go on the pod
    as they are; the driver adds only the egress label its NetworkPolicy reads.
    """
    if spec.memory_mb <= 0:
        raise DriverError(f"a pod needs a positive memory size, got {spec.memory_mb} MB")
    size = {"cpu": cpu_quantity(spec.cpus), "memory": f"{spec.memory_mb}Mi"}
    labels = {**spec.labels, EGRESS_LABEL: "allow" if spec.network else "deny"}
    env = {**spec.env, "NIMBUS_PORT": str(config.port)}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        # Service env vars would leak the namespace's services into every function.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": config.delete_grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": image,
                "imagePullPolicy": config.image_pull_policy,
                "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                "ports": [{"name": "http", "containerPort": config.port, "protocol": "TCP"}],
                "resources": {"requests": dict(size), "limits": dict(size)},
                # In-place resize (ballooning, a function's new memory) without a restart:
                # the pod's restartPolicy is Never, so a restart would end it.
                "resizePolicy": [
                    {"resourceName": "cpu", "restartPolicy": "NotRequired"},
                    {"resourceName": "memory", "restartPolicy": "NotRequired"},
                ],
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [
            {
                "name": "tmp",
                "emptyDir": {"medium": "Memory", "sizeLimit": f"{config.tmp_size_mb}Mi"},
            }
        ],
    }
    if spec.node is not None:
        pod_spec["nodeName"] = spec.node
    if config.runtime_class:
        pod_spec["runtimeClassName"] = config.runtime_class
    if config.tolerations:
        pod_spec["tolerations"] = [t.to_api() for t in config.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": spec.name, "namespace": config.namespace, "labels": labels},
        "spec": pod_spec,
    }


def resize_patch(memory_mb: int) -> dict[str, Any]:
    """The strategic merge patch for the pod's `resize` subresource that sets the runtime
    container's memory to `memory_mb` (pure). Requests move with limits: a Guaranteed
    pod's QoS class cannot change in a resize, and requests = limits is what keeps it."""
    if memory_mb <= 0:
        raise DriverError(f"a pod needs a positive memory size, got {memory_mb} MB")
    memory = f"{memory_mb}Mi"
    resources = {"requests": {"memory": memory}, "limits": {"memory": memory}}
    return {"spec": {"containers": [{"name": CONTAINER_NAME, "resources": resources}]}}
