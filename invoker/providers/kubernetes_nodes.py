"""The cluster's nodes as Nimbus's node pool (a read-only VM provider).

On Kubernetes, Nimbus does not own machines: the cluster does. This provider
lists the nodes and reports, for each, what a pod can use (allocatable CPU and
memory), whether its kubelet is Ready, and whether a Nimbus pod may be put
there (not cordoned, no NoSchedule/NoExecute taint that Nimbus does not
tolerate). Placement then packs function pods onto them.

Node lifecycle belongs to the cluster autoscaler, so `provision` and `release`
raise `NodeLifecycleNotSupported`: when nothing fits, the pod is created without
a node and left Pending, and the autoscaler sees it and adds a node.

The pure part (`parse_quantity`, `node_from_api`, `tolerates`) works on the
API's JSON shapes and does no I/O; `KubernetesNodeProvider` does the I/O, off
the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any, NoReturn

import urllib3
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

# --- quantities -------------------------------------------------------------

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# The grammar of resource.Quantity (k8s.io/apimachinery/pkg/api/resource):
#   <quantity> ::= <signedNumber><suffix>
#   <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
#   <suffix>   ::= <binarySI> | <decimalExponent> | <decimalSI>
#   <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
# "E" alone is exa; "E" followed by a number is an exponent, hence the order below.
_QUANTITY = re.compile(
    r"""
    (?P<sign>[+-]?)
    (?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)
    (?:
        (?P<exponent>[eE][+-]?[0-9]+)
      | (?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)
      | (?P<decimal>[numkMGTPE])
    )?
    """,
    re.VERBOSE,
)


def parse_quantity(text: str) -> Decimal:
    """Parse a Kubernetes resource quantity ("3920m", "16Gi", "1e3", "8123456Ki") exactly.

    Returns the value in base units (cores for CPU, bytes for memory).
    Raises ValueError on anything the API server would reject, including the
    suffixes people often get wrong ("K", "KB", "gi", "1 Gi").
    """
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    value = Decimal(match["number"])
    if match["exponent"] is not None:
        # The grammar says <signedNumber>, but apimachinery parses the exponent as an
        # integer (strconv.ParseInt), so "1e1.5" is rejected there and here.
        try:
            value = value.scaleb(int(match["exponent"][1:]))
        except ArithmeticError as exc:  # decimal.Overflow on absurd exponents
            raise ValueError(f"quantity out of range: {text!r}") from exc
    elif match["binary"] is not None:
        value *= Decimal(1024) ** _BINARY[match["binary"]]
    else:
        value = value.scaleb(_DECIMAL[match["decimal"] or ""])
    return -value if match["sign"] == "-" else value


def cpu_cores(text: str) -> float:
    """A CPU quantity ("3920m", "4") in cores."""
    return float(parse_quantity(text))


def memory_mb(text: str) -> int:
    """A memory quantity ("16Gi", "1G", "8123456Ki") in whole MiB, rounded down.

    Rounded down because this is capacity: promising a fraction of a MiB that
    is not there would let placement overcommit the node.
    """
    mib = parse_quantity(text) / Decimal(1024 * 1024)
    return int(mib.to_integral_value(rounding=ROUND_FLOOR))


# --- taints and tolerations --------------------------------------------------

_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True)
class Taint:
    """A node taint as the API reports it."""

    key: str
    effect: str
    value: str = ""


@dataclass(frozen=True)
class Toleration:
    """A pod toleration, with the API's matching rules.

    `operator` is "Equal" (key and value must match) or "Exists" (any value);
    an empty `key` with "Exists" tolerates every taint; an empty `effect`
    matches every effect.
    """

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def __post_init__(self) -> None:
        if self.operator not in ("Equal", "Exists"):
            raise ValueError(f"toleration operator must be Equal or Exists, not {self.operator!r}")
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists takes no value")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration with an empty key must use operator Exists")

    def matches(self, taint: Taint) -> bool:
        """True when this toleration tolerates `taint`."""
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return True  # empty key + Exists: everything
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value

    def to_api(self) -> dict[str, str]:
        """The toleration as a pod spec carries it."""
        out = {"operator": self.operator}
        if self.key:
            out["key"] = self.key
        if self.value:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        return out


def tolerates(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    """True when some toleration in `tolerations` tolerates `taint`."""
    return any(t.matches(taint) for t in tolerations)


def blocking_taints(taints: Iterable[Taint], tolerations: Sequence[Toleration]) -> list[Taint]:
    """The taints that keep a Nimbus pod off the node.

    PreferNoSchedule is only a preference of the scheduler, so it never blocks.
    """
    return [t for t in taints if t.effect in _BLOCKING_EFFECTS and not tolerates(tolerations, t)]


# --- nodes -------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNode:
    """One node of the cluster as the node pool sees it."""

    id: str
    vcpu: float  # allocatable cores
    memory_mb: int  # allocatable MiB
    ready: bool
    schedulable: bool  # not cordoned and no blocking taint
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()

    @property
    def usable(self) -> bool:
        """Ready and schedulable: placement may put a function pod here."""
        return self.ready and self.schedulable


def node_from_api(node: Mapping[str, Any], tolerations: Sequence[Toleration] = ()) -> ClusterNode:
    """Build a ClusterNode from one item of GET /api/v1/nodes (the API's JSON shape)."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    # Allocatable is capacity minus what the kubelet reserves for the system:
    # what pods can actually have. Fall back to capacity only if it is missing.
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    taints = tuple(
        Taint(key=t.get("key", ""), effect=t.get("effect", ""), value=t.get("value", ""))
        for t in spec.get("taints") or ()
    )
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    schedulable = not spec.get("unschedulable", False) and not blocking_taints(taints, tolerations)
    return ClusterNode(
        id=str(metadata.get("name", "")),
        vcpu=cpu_cores(str(allocatable.get("cpu", "0"))),
        memory_mb=memory_mb(str(allocatable.get("memory", "0"))),
        ready=ready,
        schedulable=schedulable,
        labels=dict(metadata.get("labels") or {}),
        taints=taints,
    )


# --- the provider (I/O) --------------------------------------------------------


class NodeLifecycleNotSupported(NotImplementedError):
    """Raised by provision/release: the cluster autoscaler owns node lifecycle, not Nimbus."""


class NodeListError(Exception):
    """The node list could not be read (API unreachable or permission missing)."""


class KubernetesNodeProvider:
    """Reads the cluster's nodes as the node pool. Read-only: see NodeLifecycleNotSupported.

    Needs a ClusterRole with `list` on `nodes` (k8s/base/rbac-nodes.yaml).
    The caller owns `api_client` and closes it.
    """

    name = "kubernetes"

    def __init__(
        self,
        api_client: ApiClient,
        *,
        tolerations: Sequence[Toleration] = (),
        label_selector: str | None = None,
        request_timeout_s: float = 10.0,
        page_size: int = 500,
    ) -> None:
        self._core = CoreV1Api(api_client)
        self._tolerations = tuple(tolerations)
        self._label_selector = label_selector
        self._timeout = request_timeout_s
        self._page_size = page_size

    async def list_nodes(self) -> list[ClusterNode]:
        """Every node (matching the label selector, if one was given), ready or not."""
        items = await asyncio.to_thread(self._list_raw)
        return [node_from_api(item, self._tolerations) for item in items]

    def _list_raw(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self._page_size}
            if self._label_selector:
                kwargs["label_selector"] = self._label_selector
            if token:
                kwargs["_continue"] = token
            try:
                response = self._core.list_node(
                    _preload_content=False, _request_timeout=self._timeout, **kwargs
                )
            except ApiException as exc:
                raise NodeListError(_explain_node_error(exc)) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise NodeListError(f"cannot reach the Kubernetes API: {exc}") from exc
            page = response_json(response)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    async def provision(self, flavor: object) -> NoReturn:
        """Not supported: the cluster autoscaler adds nodes when pods are Pending."""
        raise NodeLifecycleNotSupported(
            "a Kubernetes cluster's nodes are added by its cluster autoscaler, not by Nimbus: "
            "leave the pod unbound (no node) and Pending, and the autoscaler scales up"
        )

    async def release(self, node_id: str) -> NoReturn:
        """Not supported: the cluster autoscaler removes nodes that stay empty."""
        raise NodeLifecycleNotSupported(
            f"cannot release node {node_id!r}: a Kubernetes cluster's nodes are removed by its "
            "cluster autoscaler once they are empty, not by Nimbus"
        )


def _explain_node_error(exc: ApiException) -> str:
    message = api_status_message(exc)
    if exc.status == 403:
        return (
            "missing permission to list nodes (a ClusterRole with verbs list, watch on "
            f"resource nodes, bound to Nimbus's ServiceAccount): {message}"
        )
    return f"listing nodes failed ({exc.status} {exc.reason}): {message}"


def api_status_message(exc: ApiException) -> str:
    """The `message` of the API's Status object in an error, or the raw body when it is not one."""
    body = exc.body or ""
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return str(body).strip() or str(exc.reason)
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return str(status["message"])
    return str(body)


def response_json(response: object) -> dict[str, Any]:
    """The JSON object of a call made with `_preload_content=False`.

    The client's stubs type such calls as returning the model, but they return
    the raw urllib3 response. Nimbus reads the API's JSON itself, so a field the
    generated models do not know (or validate too strictly) cannot break it.
    """
    data = getattr(response, "data", None)
    if not isinstance(data, bytes | str):
        raise TypeError(f"expected a raw HTTP response, got {type(response).__name__}")
    parsed = json.loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("the Kubernetes API answered with JSON that is not an object")
    return parsed
