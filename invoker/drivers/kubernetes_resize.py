"""In-place pod resize (KEP-1287): a function pod's memory changed without a restart.

Kubernetes 1.33 turned it on by default (beta): the pod's `resize` subresource takes a
patch of `spec.containers[].resources`, and the kubelet of the pod's node applies it some
time later, or says why not (`PodResizePending` Infeasible / Deferred). 1.32 has the
subresource behind the `InPlacePodVerticalScaling` feature gate; older servers have none
(their alpha patched the pod itself), and there containers keep their size.

Support is found out once per driver: /version at 1.33 or later says yes; an older or
silent server is asked through the subresource itself, and a 404 for the subresource
(not for the pod) says no for good. Lowering a memory limit in place needs 1.34: 1.33's
API refuses it (422), which is a resize not done like any other, and is remembered
(`lowers`): ballooning then stops asking to deflate pods.

A resize counts as done only once the kubelet reports the container's actual limit at
the new size. One the kubelet refuses, or that does not land within the timeout, is not
done: the pod's desired size is patched back to what it runs with, so that a Deferred
resize cannot land later behind the caller's books.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes.client import CoreV1Api, VersionApi

from invoker.drivers.kubernetes_pods import CONTAINER_NAME, KubernetesDriverConfig, resize_patch
from invoker.drivers.kubernetes_status import (
    KubernetesApiError,
    ResizeReading,
    ResizeState,
    container_memory_mb,
    resize_reading,
    resize_supported_by,
)

log = logging.getLogger("nimbus.invoker")

ApiCall = Callable[..., Awaitable[dict[str, Any]]]
"""The driver's `_api(verb, resource, call, *args, **kwargs)`: one client call in a
thread, the API's JSON back, a `KubernetesApiError` on failure."""

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
"""What `kubectl patch --subresource resize` sends: containers are merged by name. (The
client would pick JSON Patch, the first type the API lists, for a dict body.)"""


_DECREASE_FORBIDDEN = "memory limits cannot be decreased"
"""1.33's validation message for a lowered memory limit (422)."""


class PodResizer:
    """Resizes function pods in place where the cluster can; says so where it cannot."""

    def __init__(
        self,
        api: ApiCall,
        core: CoreV1Api,
        version: VersionApi,
        config: KubernetesDriverConfig,
        clock: Callable[[], float],
    ) -> None:
        self._api = api
        self._core = core
        self._version = version
        self._cfg = config
        self._clock = clock
        self._supported: bool | None = None
        self._lowers: bool | None = None
        self._asked_version = False
        self._asking = asyncio.Lock()

    @property
    def supported(self) -> bool | None:
        """True or False once known; None before (no /version answer nor resize yet)."""
        return self._supported

    @property
    def lowers(self) -> bool | None:
        """False once the API refused to lower a memory limit in place (1.33); None before
        (a lowering the kubelet refuses for the container's usage says nothing of this)."""
        return False if self._supported is False else self._lowers

    async def detect(self) -> bool | None:
        """Ask the API server's version, once; True (1.33+), False (no subresource) or
        None (older or silent: the first resize will tell)."""
        async with self._asking:
            if not self._asked_version and self._supported is None:
                try:
                    answer = await self._api("get", "version", self._version.get_code)
                except KubernetesApiError as exc:
                    log.warning("cannot read the Kubernetes API's version: %s", exc)
                    return None  # asked again next time
                self._asked_version = True
                self._supported = resize_supported_by(answer)
        return self._supported

    async def resize(self, name: str, memory_mb: int) -> bool:
        """Set pod `name`'s memory (requests and limits) to `memory_mb` and wait until the
        kubelet runs it so; False, with the pod as it was, when it cannot or did not."""
        if await self.detect() is False:
            return False
        try:
            pod = await self._patch(name, memory_mb)
        except KubernetesApiError as exc:
            if exc.status == 404 and f'"{name}" not found' not in str(exc):
                self._supported = False
                log.warning(
                    "this Kubernetes API has no pod resize subresource (in-place resize "
                    "needs 1.33, or 1.32 with InPlacePodVerticalScaling): function pods "
                    "keep their full memory"
                )
            elif exc.status == 422 and _DECREASE_FORBIDDEN in str(exc):
                if self._lowers is not False:
                    log.warning(
                        "this Kubernetes API cannot lower a memory limit in place (1.33; "
                        "1.34 can): idle function pods are not deflated"
                    )
                self._lowers = False
            elif exc.status != 404:
                # 403: the Role lacks `patch` on pods/resize (k8s/base/rbac-pods.yaml).
                level = logging.WARNING if exc.status in (401, 403) else logging.INFO
                log.log(level, "pod %s not resized to %dMi: %s", name, memory_mb, exc)
            return False
        self._supported = True
        before = container_memory_mb(pod, CONTAINER_NAME)
        generation = (pod.get("metadata") or {}).get("generation")
        reading = await self._follow(name, pod, memory_mb, generation)
        if reading.state is ResizeState.DONE:
            return True
        log.info("pod %s not resized to %dMi: %s", name, memory_mb, reading.detail)
        if before is not None and round(before) != memory_mb:
            await self._undo(name, round(before))
        return False

    async def _follow(
        self, name: str, pod: dict[str, Any], memory_mb: int, generation: object
    ) -> ResizeReading:
        """Read the pod until the resize is done or refused, or the timeout passes."""
        gen = generation if isinstance(generation, int) else None
        deadline = self._clock() + self._cfg.resize_timeout_s
        delay = self._cfg.poll_initial_s
        reading = resize_reading(pod, CONTAINER_NAME, memory_mb, gen)
        while reading.state is ResizeState.PENDING:
            now = self._clock()
            if now >= deadline:
                return ResizeReading(
                    ResizeState.REFUSED,
                    f"not applied within {self._cfg.resize_timeout_s:g}s ({reading.detail})",
                )
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, self._cfg.poll_max_s)
            try:
                pod = await self._api(
                    "get", "pods", self._core.read_namespaced_pod, name, self._cfg.namespace
                )
            except KubernetesApiError as exc:
                return ResizeReading(ResizeState.REFUSED, str(exc))
            reading = resize_reading(pod, CONTAINER_NAME, memory_mb, gen)
        return reading

    async def _undo(self, name: str, memory_mb: int) -> None:
        """Put the desired size back to the size the pod runs with."""
        try:
            await self._patch(name, memory_mb)
        except KubernetesApiError as exc:
            log.warning("pod %s: cannot withdraw its resize (%s); it may change later", name, exc)

    async def _patch(self, name: str, memory_mb: int) -> dict[str, Any]:
        return await self._api(
            "patch",
            "pods/resize",
            self._core.patch_namespaced_pod_resize,
            name,
            self._cfg.namespace,
            resize_patch(memory_mb),
            _content_type=STRATEGIC_MERGE,
        )
