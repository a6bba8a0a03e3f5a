"""Reading the Kubernetes API's answers (pure): a pod's status, a failed call's error.

These work on the API's JSON (the shapes of the API reference and of the
recorded fixtures in tests/fixtures/k8s/), not on the client's generated models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from invoker.drivers.base import DriverError

# Waiting reasons that will not resolve by themselves: failing at once beats
# waiting out the whole start timeout. (ImagePullBackOff may still recover.)
_FATAL_WAITING_REASONS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
)


def pod_phase(pod: Mapping[str, Any]) -> str:
    """The pod's phase; a pod the API has just accepted may have none yet."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    """The pod's IP once it has one."""
    ip = (pod.get("status") or {}).get("podIP")
    return str(ip) if ip else None


def pod_address(ip: str, port: int) -> str:
    """``http://ip:port``, bracketing IPv6 addresses."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def _waiting(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            out.append((str(waiting.get("reason", "")), str(waiting.get("message", ""))))
    return out


def fatal_waiting_reason(pod: Mapping[str, Any]) -> str | None:
    """A container waiting reason that will not resolve by itself, if any."""
    for reason, message in _waiting(pod):
        if reason in _FATAL_WAITING_REASONS:
            return f"{reason}: {message}" if message else reason
    return None


def pending_reason(pod: Mapping[str, Any]) -> str:
    """Why a pod is not running yet, from its conditions and container states."""
    status = pod.get("status") or {}
    reasons = []
    for condition in status.get("conditions") or ():
        if condition.get("status") == "False" and (
            condition.get("reason") or condition.get("message")
        ):
            text = condition.get("reason", "")
            if condition.get("message"):
                text = f"{text}: {condition['message']}" if text else condition["message"]
            reasons.append(f"{condition.get('type', 'condition')} {text}")
    for reason, message in _waiting(pod):
        reasons.append(f"container {reason}: {message}" if message else f"container {reason}")
    if reasons:
        return "; ".join(reasons)
    node = (pod.get("spec") or {}).get("nodeName")
    if node and not status.get("conditions"):
        # Bound by nodeName, so no scheduler writes a condition: only the kubelet
        # of that node can report, and it has not.
        return f"no status from the kubelet of node {node!r} (is the node gone or NotReady?)"
    return "no reason reported by the API"


def failed_reason(pod: Mapping[str, Any]) -> str:
    """Why a pod ended (phase Failed or Succeeded) before it was ready."""
    status = pod.get("status") or {}
    parts = [str(status[k]) for k in ("reason", "message") if status.get(k)]
    for container in status.get("containerStatuses") or ():
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            parts.append(
                f"container {terminated.get('reason', 'terminated')} "
                f"(exit code {terminated.get('exitCode')})"
            )
    return "; ".join(parts) or "no reason reported by the API"


_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\w+) resource "(?P<resource>[^"]*)"'
)


def explain_api_error(
    status: int | None, message: str, *, verb: str, resource: str, namespace: str
) -> str:
    """A message a person can act on for a failed API call (pure)."""
    if status == 403:
        match = _FORBIDDEN.search(message)
        who = f"{match['user']} " if match else "Nimbus's service account "
        verb_needed = match["verb"] if match else verb
        resource_needed = match["resource"] if match else resource
        return (
            f"forbidden: {who}is missing RBAC permission {verb_needed!r} on {resource_needed!r} "
            f"in namespace {namespace!r} (grant it in a Role bound to that account, see "
            f"k8s/base/rbac-pods.yaml); API said: {message}"
        )
    if status == 409:
        return (
            f"a {resource[:-1] if resource.endswith('s') else resource} with this name already "
            f"exists in namespace {namespace!r} (names must be unique: another invoker or a "
            f"leftover holds it); API said: {message}"
        )
    if status == 401:
        return f"unauthorized: the Kubernetes API rejected Nimbus's credentials: {message}"
    return f"{verb} {resource} in namespace {namespace!r} failed ({status}): {message}"


# --- in-place pod resize (KEP-1287) ---------------------------------------------------

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?P<suffix>[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
MIB = 1024 * 1024


def quantity_bytes(quantity: object) -> float | None:
    """A Kubernetes quantity ("256Mi", "1G", "268435456", "2.5e8") in bytes; None when
    it is not one."""
    match = _QUANTITY.match(str(quantity).strip()) if quantity is not None else None
    if match is None:
        return None
    number, suffix = float(match["num"]), match["suffix"] or ""
    if suffix in _BINARY:
        return number * float(1024 ** _BINARY[suffix])
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:] or 0)
    return number * 10.0**exponent


def resize_supported_by(version: Mapping[str, Any]) -> bool | None:
    """True when the API server's /version answer says in-place resize is on by default
    (1.33+: beta, through the pod's `resize` subresource); None when the server is older
    or does not say: only the subresource's own answer can tell then (1.32 has it behind
    a feature gate)."""
    major = re.match(r"\d+", str(version.get("major") or ""))
    minor = re.match(r"\d+", str(version.get("minor") or ""))  # GKE and EKS say "33+"
    if major is None or minor is None:
        return None
    if (int(major[0]), int(minor[0])) >= (1, 33):
        return True
    return None


def container_memory_mb(pod: Mapping[str, Any], container: str) -> float | None:
    """The memory limit the container runs with now (MiB), as the kubelet reports it in
    `status.containerStatuses[].resources` (its allocated request where that is all there
    is); None when the kubelet reports neither (a node older than in-place resize)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") != container:
            continue
        actual = ((status.get("resources") or {}).get("limits") or {}).get("memory")
        allocated = (status.get("allocatedResources") or {}).get("memory")
        size = quantity_bytes(actual if actual is not None else allocated)
        return None if size is None else size / MIB
    return None


class ResizeState(Enum):
    """Where a requested pod resize stands."""

    DONE = "done"  # the container runs with the size asked for
    PENDING = "pending"  # not yet: the kubelet has not acted, or is acting
    REFUSED = "refused"  # Infeasible, Deferred, an error, or the pod ended: not done


@dataclass(frozen=True)
class ResizeReading:
    """A resize's state read from the pod, and why, in the kubelet's words."""

    state: ResizeState
    detail: str


# `status.resize` values of the API before 1.33 that mean "still on its way"; any other
# value counts as Deferred, as the KEP asks of consumers.
_LEGACY_UNDER_WAY = frozenset({"", "Proposed", "InProgress"})


def resize_reading(
    pod: Mapping[str, Any], container: str, memory_mb: int, generation: int | None = None
) -> ResizeReading:
    """How far a resize of `container` to `memory_mb` has come (pure).

    Done once the kubelet reports the container's actual limit at the size asked for.
    Refused when the kubelet says it will not do it now: the condition `PodResizePending`
    (reason Infeasible or Deferred; 1.33+), `PodResizeInProgress` with reason Error (1.34+:
    usage above a lowered limit, or the runtime failed), or `status.resize` Infeasible or
    Deferred (before 1.33). Conditions observed for an older `generation` of the pod than
    the resize's are stale and ignored.
    """
    if pod_phase(pod) in ("Failed", "Succeeded"):
        return ResizeReading(ResizeState.REFUSED, f"the pod ended: {failed_reason(pod)}")
    actual = container_memory_mb(pod, container)
    if actual is not None and abs(actual - memory_mb) < 0.5:
        return ResizeReading(ResizeState.DONE, f"running with {memory_mb}Mi")
    status = pod.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("status") != "True":
            continue
        seen = condition.get("observedGeneration")
        if generation is not None and seen is not None and int(seen) < generation:
            continue
        kind, reason = condition.get("type"), str(condition.get("reason") or "")
        why = f"{kind} {reason}: {condition.get('message') or 'no message'}"
        if kind == "PodResizePending" or (kind == "PodResizeInProgress" and reason == "Error"):
            return ResizeReading(ResizeState.REFUSED, why)
        if kind == "PodResizeInProgress":
            return ResizeReading(ResizeState.PENDING, why)
    legacy = str(status.get("resize") or "")
    if legacy not in _LEGACY_UNDER_WAY:
        return ResizeReading(ResizeState.REFUSED, f"status.resize {legacy}")
    now = "unknown" if actual is None else f"{actual:g}Mi"
    return ResizeReading(ResizeState.PENDING, f"the kubelet has not applied it (now {now})")


class KubernetesApiError(DriverError):
    """An API call failed; `status` is the HTTP status (0 when none came back)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
