"""Reading the Kubernetes API's answers (pure): a pod's status, a failed call's error.

These work on the API's JSON (the shapes of the API reference and of the
recorded fixtures in tests/fixtures/k8s/), not on the client's generated models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


class KubernetesApiError(DriverError):
    """An API call failed; `status` is the HTTP status (0 when none came back)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
