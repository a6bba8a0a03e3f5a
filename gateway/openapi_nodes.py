"""The node and migration routes' entries in the OpenAPI route table (admin only), and the
schemas of what they take and answer (gateway/routes/nodes.py)."""

from __future__ import annotations

from gateway.openapi_model import ADMIN, Route, json_body
from gateway.openapi_schemas import NODE_CREATE
from gateway.openapi_types import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    Schema,
    array,
    nullable,
    obj,
    ref,
)

_CONTAINER = obj(
    {
        "id": STRING,
        "tenant": nullable(STRING),
        "function": nullable(STRING),
        "version": nullable(INTEGER),
        "memory_mb": INTEGER,
        "resident_mb": INTEGER,
        "state": STRING,
    },
    required=("id", "memory_mb", "resident_mb"),
)
_NODE_LIST = obj(
    {
        "provider": STRING,
        "enforced": BOOLEAN,
        "nodes": array(
            {
                "allOf": [
                    ref("Node"),
                    obj(
                        {
                            "resident": obj({"memory_mb": INTEGER}),
                            "overcommit_ratio": NUMBER,
                            "memory_pressure": NUMBER,
                            "hot": BOOLEAN,
                            "load": obj({"vcpu": NUMBER, "memory_mb": NUMBER}),
                            "cpu_pressure": nullable(NUMBER),
                            "container_details": array(_CONTAINER),
                        }
                    ),
                ]
            }
        ),
        "packing": obj({"nodes_ready": INTEGER, "nodes_needed": nullable(INTEGER)}),
    },
    required=("provider", "nodes"),
)
NODE_RESIZE: Schema = obj(
    {
        "vcpu": {"type": "number", "exclusiveMinimum": 0, "maximum": 1024},
        "memory_mb": {"type": "integer", "minimum": 1, "maximum": 2**24},
    },
    closed=True,
)
NODE_RESIZE["examples"] = [{"vcpu": 2, "memory_mb": 4096}]
_COST = obj(
    {
        "downtime_s": NUMBER,
        "init_s": NUMBER,
        "cpu_source_s": NUMBER,
        "cpu_target_s": NUMBER,
        "bytes_moved": INTEGER,
    }
)
MIGRATION: Schema = obj(
    {
        "id": STRING,
        "function": STRING,
        "container": STRING,
        "replacement": nullable(STRING),
        "source": STRING,
        "target": STRING,
        "reason": {"type": "string", "enum": ["admin", "drain", "hot-spot"]},
        "state": {"type": "string", "enum": ["running", "done", "failed"]},
        "started_at": NUMBER,
        "finished_at": nullable(NUMBER),
        "duration_s": nullable(NUMBER),
        "cost": _COST,
        "error": nullable(STRING),
    },
    required=("id", "container", "source", "target", "state", "cost"),
)
_MIGRATIONS = obj(
    {
        "migrations": array(MIGRATION),
        "total": INTEGER,
        "failed": INTEGER,
        "downtime_s": NUMBER,
        "bytes_moved": INTEGER,
    },
    required=("migrations", "total"),
)
_DRAINED = obj(
    {"id": STRING, "state": STRING, "migrations": array(MIGRATION)}, required=("id", "state")
)

NODE_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/v1/nodes"): Route(
        "Every node with its capacity, allocation, resident memory, pressure, heat and containers",
        ok={200: json_body(_NODE_LIST)},
        auth=ADMIN,
    ),
    ("POST", "/v1/nodes"): Route(
        "Provision a node of a flavor",
        ok={201: json_body(ref("Node"))},
        auth=ADMIN,
        body=json_body(NODE_CREATE),
        errors=(409,),
    ),
    ("PATCH", "/v1/nodes/{id}"): Route(
        "Resize a node while it runs (400 where its provider's nodes are fixed machines; "
        "409 when what is allocated would not fit, and nothing changes)",
        ok={200: json_body(ref("Node"))},
        auth=ADMIN,
        body=json_body(NODE_RESIZE),
        errors=(409,),
    ),
    ("DELETE", "/v1/nodes/{id}"): Route(
        "Drain a node (its warm containers migrate away), then release it",
        ok={202: json_body(obj({"id": STRING, "state": STRING}, required=("id", "state")))},
        auth=ADMIN,
    ),
    ("POST", "/v1/nodes/{id}/drain"): Route(
        "Drain a node: its warm containers migrate to other nodes, make-before-break",
        ok={202: json_body(_DRAINED)},
        auth=ADMIN,
    ),
    ("POST", "/v1/nodes/{id}/containers/{cid}/migrate"): Route(
        "Move one warm container to another node (the target named, else the least loaded "
        "that fits), make-before-break",
        ok={202: json_body(MIGRATION)},
        auth=ADMIN,
        body=json_body(obj({"target": STRING}, closed=True)),
        body_required=False,
        errors=(409,),
        path={"cid": {"type": "string", "minLength": 1}},
    ),
    ("GET", "/v1/migrations"): Route(
        "The latest live migrations with their measured cost (downtime, init on the "
        "target, CPU at source and target, bytes moved)",
        ok={200: json_body(_MIGRATIONS)},
        auth=ADMIN,
    ),
}
