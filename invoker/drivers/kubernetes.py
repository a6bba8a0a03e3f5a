"""Kubernetes driver: each function container is one pod, reached at its pod IP.

The pod it asks for is built in `kubernetes_pods` (hardened, Guaranteed QoS,
bound to the node placement chose); the API's answers are read by the pure
functions of `kubernetes_status`. This module holds the I/O: creating the pod,
watching it until its runtime proxy answers, deleting and listing pods.

Every client call runs in a worker thread (`asyncio.to_thread`): the official
client is synchronous. Responses are read as the API's JSON, not as the
client's generated models, so the pure functions work on the same shapes as
the API reference and the recorded fixtures in tests/fixtures/k8s/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import urllib3
from kubernetes import config as k8s_config
from kubernetes.client import (
    ApiClient,
    Configuration,
    CoreV1Api,
    CustomObjectsApi,
    V1DeleteOptions,
    V1Pod,
    VersionApi,
)
from kubernetes.client.exceptions import ApiException

from invoker.api import RUNTIMES
from invoker.containers.cgroups import CallMeter
from invoker.drivers.base import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    ContainerHandle,
    ContainerSpec,
    ContainerStats,
    DriverError,
)
from invoker.drivers.kubernetes_metrics import PodMetrics
from invoker.drivers.kubernetes_pods import CONTAINER_NAME, KubernetesDriverConfig, pod_manifest
from invoker.drivers.kubernetes_resize import PodResizer
from invoker.drivers.kubernetes_status import (
    KubernetesApiError,
    explain_api_error,
    failed_reason,
    fatal_waiting_reason,
    pending_reason,
    pod_address,
    pod_ip,
    pod_phase,
)
from invoker.drivers.readiness import http_healthz_probe
from invoker.providers.kubernetes_nodes import api_status_message, response_json

ReadinessProbe = Callable[[str], Awaitable[bool]]
"""Given the pod's address (``http://ip:port``), True once the runtime proxy answers."""

ImageFor = Callable[[str], str] | Mapping[str, str]
"""Runtime name ("python:3.11") -> container image."""


def default_images() -> dict[str, str]:
    """One image per known runtime: "python:3.11" -> "nimbus/python:3.11"."""
    return {runtime: f"nimbus/{runtime}" for runtime in RUNTIMES}


class KubernetesDriver:
    """ContainerDriver over the Kubernetes API: a container is a pod.

    The caller owns `api_client` (a configured `kubernetes.client.ApiClient`)
    and closes it; the node provider may share it.
    """

    name = "kubernetes"

    def __init__(
        self,
        api_client: ApiClient,
        *,
        config: KubernetesDriverConfig | None = None,
        image_for: ImageFor | None = None,
        readiness: ReadinessProbe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = CoreV1Api(api_client)
        self._host = str(getattr(getattr(api_client, "configuration", None), "host", "?"))
        self._cfg = config or KubernetesDriverConfig()
        images = default_images() if image_for is None else image_for
        self._image_for: Callable[[str], str | None] = (
            images.get if isinstance(images, Mapping) else images
        )
        self._ready = readiness or http_healthz_probe
        self._clock = clock
        self._resizer = PodResizer(self._api, self._core, VersionApi(api_client), self._cfg, clock)
        self._metrics = PodMetrics(
            self._api, CustomObjectsApi(api_client), self._cfg.namespace, CONTAINER_NAME
        )

    # -- ContainerDriver -------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        """Create the pod, wait until it runs and its proxy answers /healthz, return its address."""
        image = self._image_for(spec.runtime)
        if not image:
            raise DriverError(f"no container image for runtime {spec.runtime!r}")
        manifest = pod_manifest(spec, image=image, config=self._cfg)
        body = V1Pod.from_dict(manifest)
        deadline = self._clock() + self._cfg.start_timeout_s
        creating = asyncio.ensure_future(
            self._api("create", "pods", self._core.create_namespaced_pod, self._cfg.namespace, body)
        )
        try:
            # On an API error nothing of ours exists (on 409 the name is another pod's).
            await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The POST is in flight in its thread and may still create the pod:
            # let it finish (bounded by the request timeout), then remove the pod.
            with contextlib.suppress(Exception):
                await creating
            await self._discard(spec.name)
            raise
        try:
            pod = await self._wait_running(spec.name, deadline)
            address = pod_address(pod_ip(pod) or "", self._cfg.port)
            await self._wait_ready(spec.name, address, deadline)
        except BaseException:
            await self._discard(spec.name)
            raise
        metadata = pod.get("metadata") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        return ContainerHandle(
            id=str(metadata.get("uid") or spec.name),
            name=spec.name,
            address=address,
            node=str(node) if node else spec.node,
        )

    async def destroy(self, handle: ContainerHandle) -> None:
        """Delete the pod; one that is already gone is fine."""
        await self._delete(handle.name)

    async def ended(self, handle: ContainerHandle) -> str | None:
        """Not read: the pod's status would need another API call on a failure path."""
        return None

    def call_meter(self, handle: ContainerHandle) -> CallMeter | None:
        """Pods' cgroups live on other machines: per-call figures are unknown (None)."""
        return None

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        """Resize the pod in place (requests and limits, so it stays Guaranteed) and wait
        until its kubelet runs it at `limit_mb`; False where the cluster has no in-place
        resize, or the kubelet refused it (Infeasible, Deferred) or did not apply it in
        time: the pod then keeps its size (`kubernetes_resize`)."""
        return await self._resizer.resize(handle.name, limit_mb)

    async def can_resize(self) -> bool | None:
        """Whether this cluster resizes pods in place: found out once per driver (True
        from 1.33; None until an older server's first resize tells)."""
        return await self._resizer.detect()

    def can_lower_memory(self) -> bool | None:
        """False once the cluster refused to lower a memory limit in place (1.33), or
        cannot resize at all; None until then."""
        return self._resizer.lowers

    async def working_set_mb(self, handle: ContainerHandle) -> float | None:
        """The pod's working set now (MiB, the kubelet's figure through metrics.k8s.io,
        at most one metrics resolution old); None where the metrics API is absent or
        forbidden, or has not scraped the pod yet (`kubernetes_metrics`)."""
        return await self._metrics.working_set_mb(handle.name)

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        """Unknown on Kubernetes: (None, None).

        metrics.k8s.io reports a current working set and a CPU rate, not the
        peak memory and CPU seconds this asks for; the kubelet's summary has
        cumulative CPU but needs `nodes/proxy`, which is close to node-admin.
        Reporting nothing beats reporting a different quantity under this name.
        """
        return ContainerStats(peak_memory_mb=None, cpu_seconds=None)

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        """Delete `owner`'s pods that another instance started; return how many.

        The API selects by owner; the instance is compared here, so pods of
        other Nimbus deployments sharing the namespace are never touched.
        Pods already terminating are left to finish.
        """
        pods = await self._list_owned(owner)
        removed = 0
        for pod in pods:
            metadata = pod.get("metadata") or {}
            started_by = (metadata.get("labels") or {}).get(INSTANCE_LABEL)
            if started_by == instance_id or metadata.get("deletionTimestamp"):
                continue
            if await self._delete(str(metadata["name"])):
                removed += 1
        return removed

    async def close(self) -> None:
        """Nothing to release: the API client belongs to the caller."""

    # -- internals ----------------------------------------------------------------

    async def _wait_running(self, name: str, deadline: float) -> dict[str, Any]:
        delay = self._cfg.poll_initial_s
        while True:
            pod = await self._read(name)
            phase = pod_phase(pod)
            if phase == "Running" and pod_ip(pod):
                return pod
            if phase in ("Failed", "Succeeded"):
                raise DriverError(
                    f"pod {name} ended ({phase}) before it was ready: {failed_reason(pod)}"
                )
            fatal = fatal_waiting_reason(pod)
            if fatal:
                raise DriverError(f"pod {name} cannot start: {fatal}")
            now = self._clock()
            if now >= deadline:
                raise DriverError(
                    f"pod {name} still {phase} after {self._cfg.start_timeout_s:g}s: "
                    f"{pending_reason(pod)}"
                )
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, self._cfg.poll_max_s)

    async def _wait_ready(self, name: str, address: str, deadline: float) -> None:
        next_check = self._clock() + self._cfg.poll_max_s
        while not await self._ready(address):
            now = self._clock()
            if now >= deadline:
                raise DriverError(
                    f"pod {name} is running at {address} but GET /healthz did not answer "
                    f"within {self._cfg.start_timeout_s:g}s"
                )
            if now >= next_check:
                # The proxy may have crashed (restartPolicy Never): stop waiting if so.
                pod = await self._read(name)
                if pod_phase(pod) in ("Failed", "Succeeded"):
                    raise DriverError(
                        f"pod {name} ended before /healthz answered: {failed_reason(pod)}"
                    )
                next_check = now + self._cfg.poll_max_s
            await asyncio.sleep(min(self._cfg.probe_interval_s, deadline - now))

    async def _read(self, name: str) -> dict[str, Any]:
        try:
            return await self._api(
                "get", "pods", self._core.read_namespaced_pod, name, self._cfg.namespace
            )
        except KubernetesApiError as exc:
            if exc.status == 404:
                raise DriverError(
                    f"pod {name} disappeared while starting (deleted or evicted)"
                ) from exc
            raise

    async def _discard(self, name: str) -> None:
        """Best-effort delete of a pod whose start failed or was cancelled.

        No handle reaches the caller then, so nobody else would ever delete it.
        Shielded so that a second cancellation cannot cut the delete short.
        """
        with contextlib.suppress(DriverError):
            await asyncio.shield(self._delete(name))

    async def _delete(self, name: str) -> bool:
        """Delete one pod; False when it was already gone."""
        try:
            await self._api(
                "delete",
                "pods",
                self._core.delete_namespaced_pod,
                name,
                self._cfg.namespace,
                body=V1DeleteOptions(grace_period_seconds=self._cfg.delete_grace_s),
            )
        except KubernetesApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _list_owned(self, owner: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "label_selector": f"{MANAGED_LABEL}={owner}",
                "limit": self._cfg.list_page_size,
            }
            if token:
                kwargs["_continue"] = token
            page = await self._api(
                "list", "pods", self._core.list_namespaced_pod, self._cfg.namespace, **kwargs
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    async def _api(
        self, verb: str, resource: str, call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """Run one client call in a thread and return the API's JSON answer."""

        def run() -> dict[str, Any]:
            response = call(
                *args,
                _preload_content=False,
                _request_timeout=self._cfg.request_timeout_s,
                **kwargs,
            )
            return response_json(response)

        try:
            return await asyncio.to_thread(run)
        except ApiException as exc:
            status = int(exc.status or 0)
            message = explain_api_error(
                status,
                api_status_message(exc),
                verb=verb,
                resource=resource,
                namespace=self._cfg.namespace,
            )
            raise KubernetesApiError(status, message) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubernetesApiError(
                0, f"cannot reach the Kubernetes API at {self._host}: {exc}"
            ) from exc


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """An ApiClient for the cluster Nimbus runs in, or the one a kubeconfig names.

    Inside a pod (KUBERNETES_SERVICE_HOST set) the mounted service account is
    used; otherwise the kubeconfig (default: ~/.kube/config). Reads files: call
    it from the wiring code at start-up, not at import.
    """
    # A fresh Configuration each time: the client's loaders would otherwise set
    # a process-wide default.
    configuration = Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return ApiClient(configuration)
