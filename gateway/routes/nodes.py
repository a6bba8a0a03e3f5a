"""Admin: the VM nodes functions are packed onto, resized, drained, and containers migrated
between them. Tenants never see nodes."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import require_admin
from gateway.requests import json_object, reject_unknown
from gateway.schemas import NODE_FIELDS
from invoker.containers.migrations import NotMovable
from invoker.nodes.model import NoCapacity, Node
from invoker.operations import ContainerView, NodeView, NoPool, UnknownFlavor
from invoker.providers.base import NotResizable, ResizeRefused

routes = web.RouteTableDef()

RESIZE_FIELDS = frozenset({"vcpu", "memory_mb"})  # PATCH /v1/nodes/{id}
MIGRATE_FIELDS = frozenset({"target"})  # POST /v1/nodes/{id}/containers/{cid}/migrate
MAX_NODE_VCPU = 1024.0
MAX_NODE_MEMORY_MB = 2**24  # 16 TiB: anything larger is a typo


def _node_json(node: Node, containers: tuple[str, ...] | list[str]) -> dict[str, Any]:
    vcpu, memory = node.allocated
    return {
        "id": node.id,
        "flavor": node.flavor.name,
        "state": node.state.value,
        "price_per_hour": node.flavor.price_per_hour,
        "capacity": {"vcpu": node.flavor.vcpu, "memory_mb": node.flavor.memory_mb},
        "allocated": {"vcpu": round(vcpu, 4), "memory_mb": memory},
        "utilisation": {
            "vcpu": round(vcpu / node.flavor.vcpu, 4) if node.flavor.vcpu else None,
            "memory": round(memory / node.flavor.memory_mb, 4),
        },
        "containers": list(containers),
        # Ballooning: what the containers' limits hold now (idle ones deflated), the full
        # limits over the node's memory, and how full its memory is at the limits now.
        "resident": {"memory_mb": node.resident_mb},
        "overcommit_ratio": round(node.overcommit_ratio, 4),
        "memory_pressure": round(node.memory_pressure, 4),
    }


def _container_json(c: ContainerView) -> dict[str, Any]:
    return {
        "id": c.id,
        "tenant": c.tenant,
        "function": c.function,
        "version": c.version,
        "memory_mb": c.memory_mb,
        "resident_mb": c.resident_mb,
        "state": c.state,
    }


def _view_json(view: NodeView) -> dict[str, Any]:
    """A node in `GET /v1/nodes`: the books, plus whether it is hot and what it uses."""
    node = view.node
    out = _node_json(node, view.containers)
    out["hot"] = view.hot
    out["container_details"] = [_container_json(c) for c in view.details]
    if view.load is not None:  # measured at the last hot-spot sample
        busy, used = view.load
        out["load"] = {"vcpu": round(busy, 4), "memory_mb": round(used, 1)}
        out["cpu_pressure"] = round(busy / node.flavor.vcpu, 4) if node.flavor.vcpu else None
    return out


@routes.get("/v1/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    """Every node with its capacity, allocation (full limits), resident memory (deflated
    idle containers at their limit now), overcommit ratio, memory pressure, whether it is
    hot, and its containers (ids, and details: function, memory, resident)."""
    require_admin(request)
    report = request.app[PLATFORM].ops.nodes_report()
    if report is None:
        return web.json_response({"provider": "none", "nodes": []})
    return web.json_response(
        {
            "provider": report.provider,
            "enforced": report.enforced,
            "nodes": [_view_json(v) for v in report.nodes],
            # How tightly the fleet is packed: ready nodes vs what a fresh packing of the
            # same containers needed at the last consolidation round (null before the
            # first round, or when ready nodes differ in size).
            "packing": {"nodes_ready": report.nodes_ready, "nodes_needed": report.nodes_needed},
        }
    )


@routes.post("/v1/nodes")
async def add_node(request: web.Request) -> web.Response:
    """Provision a node of a flavor: `{"flavor": "small"}`."""
    require_admin(request)
    body = await json_object(request)
    reject_unknown(body, NODE_FIELDS)
    name = body.get("flavor")
    if not isinstance(name, str):
        raise bad_request("flavor must name a flavor", "flavor")
    try:
        node = await request.app[PLATFORM].ops.add_node(name)
    except NoPool as exc:
        raise ApiError(409, str(exc)) from None
    except UnknownFlavor as exc:
        known = ", ".join(exc.known)
        raise bad_request(f"unknown flavor {name!r}; known: {known}", "flavor") from None
    except NoCapacity as exc:
        raise ApiError(409, str(exc)) from None
    return web.json_response(_node_json(node, []), status=201)


def _size(body: dict[str, Any], field: str, ceiling: float, integer: bool) -> Any:
    value = body.get(field)
    if value is None:
        return None
    number_ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not number_ok or not (0 < value <= ceiling):
        kind = "an integer" if integer else "a number"
        raise bad_request(f"{field} must be {kind} above 0 and at most {ceiling:g}", field)
    if not integer and not math.isfinite(value):
        raise bad_request(f"{field} must be finite", field)
    return value


@routes.patch("/v1/nodes/{id}")
async def resize_node(request: web.Request) -> web.Response:
    """Resize a node while it runs: `{"vcpu": 2, "memory_mb": 4096}` (either may be left
    out). 409 when what is allocated would not fit (nothing changes); 400 where the
    provider's nodes are fixed machines."""
    require_admin(request)
    node_id = request.match_info["id"]
    body = await json_object(request)
    reject_unknown(body, RESIZE_FIELDS)
    vcpu = _size(body, "vcpu", MAX_NODE_VCPU, integer=False)
    memory_mb = _size(body, "memory_mb", MAX_NODE_MEMORY_MB, integer=True)
    if vcpu is None and memory_mb is None:
        raise bad_request("give vcpu, memory_mb or both", "body")
    ops = request.app[PLATFORM].ops
    try:
        node = await ops.resize_node(node_id, vcpu, memory_mb)
    except KeyError:
        raise not_found(f"node {node_id!r}") from None
    except NoPool as exc:
        raise ApiError(409, str(exc)) from None
    except NotResizable as exc:
        raise bad_request(str(exc), "id") from None
    except (ValueError, ResizeRefused) as exc:
        raise ApiError(409, f"cannot resize node {node_id}: {exc}") from None
    return web.json_response(_node_json(node, sorted(node.allocations)))


@routes.delete("/v1/nodes/{id}")
async def remove_node(request: web.Request) -> web.Response:
    """Drain a node (its warm containers migrate away), then release it once empty."""
    require_admin(request)
    node_id = request.match_info["id"]
    state = await request.app[PLATFORM].ops.drain_node(node_id)
    if state is None:
        raise not_found(f"node {node_id!r}")
    return web.json_response({"id": node_id, "state": state}, status=202)


@routes.post("/v1/nodes/{id}/drain")
async def drain_node(request: web.Request) -> web.Response:
    """Drain a node: no new containers; its warm containers migrate to other nodes
    (make-before-break), the rest finish; released once empty. Answers the migrations
    started (follow them in `GET /v1/migrations`)."""
    require_admin(request)
    node_id = request.match_info["id"]
    drained = await request.app[PLATFORM].ops.drain(node_id)
    if drained is None:
        raise not_found(f"node {node_id!r}")
    state, started = drained
    body = {"id": node_id, "state": state, "migrations": [r.to_json() for r in started]}
    return web.json_response(body, status=202)


@routes.post("/v1/nodes/{id}/containers/{cid}/migrate")
async def migrate_container(request: web.Request) -> web.Response:
    """Move one warm container to another node, `{"target": "node-2"}` or `{}` (policy
    picks the least loaded node that fits). 202 with the migration's record."""
    require_admin(request)
    node_id, cid = request.match_info["id"], request.match_info["cid"]
    body = await json_object(request, empty_ok=True)
    reject_unknown(body, MIGRATE_FIELDS)
    target = body.get("target")
    if target is not None and not isinstance(target, str):
        raise bad_request("target must name a node", "target")
    try:
        record = request.app[PLATFORM].ops.migrate(node_id, cid, target)
    except KeyError:
        raise not_found(f"container {cid!r} on node {node_id!r}") from None
    except (NotMovable, NoCapacity) as exc:
        raise ApiError(409, str(exc)) from None
    return web.json_response(record.to_json(), status=202)


@routes.get("/v1/migrations")
async def list_migrations(request: web.Request) -> web.Response:
    """The latest live migrations (newest first) with their measured cost, and totals."""
    require_admin(request)
    return web.json_response(request.app[PLATFORM].ops.migrations())
