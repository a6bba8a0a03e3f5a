"""A function pod's working set, from the resource metrics API (metrics.k8s.io).

`GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}` (served by metrics-server,
or by any adapter registered for the group) answers `containers[].usage.memory`, which is
the kubelet's working set of each container: usage minus inactive page cache, the figure
ballooning sizes an idle container by. It is a sample the kubelet took at most one
resolution ago (metrics-server's default: 15 s), so it is read once per resolution at most.

Where the API is absent (no metrics-server: the group is not registered, 404 for the
resource) or the Role lacks `get` on `pods` in `metrics.k8s.io` (403), the driver says so
once and reads nothing again: pods then keep their full size. A pod the metrics server has
not scraped yet (404 naming the pod) is only unknown for now.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes.client import CustomObjectsApi

from invoker.drivers.kubernetes_resize import ApiCall
from invoker.drivers.kubernetes_status import MIB, KubernetesApiError, quantity_bytes

log = logging.getLogger("nimbus.invoker")

GROUP, VERSION, PLURAL = "metrics.k8s.io", "v1beta1", "pods"


def container_working_set_mb(metrics: Mapping[str, Any], container: str) -> float | None:
    """The container's working set (MiB) in a PodMetrics object (pure); None when the
    object does not report it."""
    for entry in metrics.get("containers") or ():
        if entry.get("name") == container:
            size = quantity_bytes((entry.get("usage") or {}).get("memory"))
            return None if size is None else size / MIB
    return None


def _pod_not_scraped(exc: KubernetesApiError, name: str) -> bool:
    """A 404 about this pod's metrics (not yet scraped), rather than about the API."""
    text = str(exc)
    return exc.status == 404 and name in text and "not found" in text


class PodMetrics:
    """Reads function pods' working sets where the cluster serves the metrics API."""

    def __init__(
        self, api: ApiCall, custom: CustomObjectsApi, namespace: str, container: str
    ) -> None:
        self._api = api
        self._custom = custom
        self._namespace = namespace
        self._container = container
        self.available: bool | None = None
        """False once the API said it has no metrics for us (absent, or forbidden)."""

    async def working_set_mb(self, name: str) -> float | None:
        """Pod `name`'s working set in MiB; None when unknown (the API is absent or
        forbidden, or has not scraped the pod yet)."""
        if self.available is False:
            return None
        try:
            answer = await self._api(
                "get",
                "pods.metrics.k8s.io",
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self._namespace,
                PLURAL,
                name,
            )
        except KubernetesApiError as exc:
            if _pod_not_scraped(exc, name):
                return None
            if exc.status in (401, 403, 404):
                self.available = False
                log.warning(
                    "no pod metrics from the cluster (metrics.k8s.io: is metrics-server "
                    "installed, and does the Role grant `get` on its pods?): function pods "
                    "keep their full memory: %s",
                    exc,
                )
            else:
                log.info("pod %s: working set not read: %s", name, exc)
            return None
        self.available = True
        return container_working_set_mb(answer, self._container)
