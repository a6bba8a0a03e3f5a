"""Admin: the VM nodes functions are packed onto. Tenants never see nodes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import require_admin
from gateway.requests import json_object, reject_unknown
from gateway.schemas import NODE_FIELDS
from invoker.nodes.model import NoCapacity, Node
from invoker.operations import NoPool, UnknownFlavor

routes = web.RouteTableDef()


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


@routes.get("/v1/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    """Every node with its capacity, allocation (full limits), resident memory (deflated
    idle containers at their limit now), overcommit ratio, memory pressure and containers."""
    require_admin(request)
    report = request.app[PLATFORM].ops.nodes_report()
    if report is None:
        return web.json_response({"provider": "none", "nodes": []})
    return web.json_response(
        {
            "provider": report.provider,
            "enforced": report.enforced,
            "nodes": [_node_json(v.node, v.containers) for v in report.nodes],
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


@routes.delete("/v1/nodes/{id}")
async def remove_node(request: web.Request) -> web.Response:
    """Drain a node, then release it once its running calls have finished."""
    require_admin(request)
    node_id = request.match_info["id"]
    state = await request.app[PLATFORM].ops.drain_node(node_id)
    if state is None:
        raise not_found(f"node {node_id!r}")
    return web.json_response({"id": node_id, "state": state}, status=202)
