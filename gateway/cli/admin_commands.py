"""`nimbus nodes ...`, `nimbus economics`, `nimbus bill` and `nimbus tenant ...`.

Nodes, economics, every tenant's bill and tenants are the admin's (a tenant key: exit 4);
`bill` alone is the caller's own.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import output, views
from gateway.cli.client import expect
from gateway.cli.errors import CliError, UsageError
from gateway.cli.grammar import Sub, command, group, listing_command
from gateway.cli.session import client, emit, table, terminal_width
from gateway.cli.tables import Column
from gateway.cli.timeparse import iso


def _range(args: argparse.Namespace, **extra: str | None) -> dict[str, str | None]:
    return {"from": args.since, "to": args.until, **extra}


def cmd_bill(args: argparse.Namespace) -> int:
    """Print the caller's bill (or, `--all`, every tenant's) as a table, CSV or JSON."""
    session = client(args)
    if args.all:
        if args.csv:
            raise UsageError("--csv is for your own bill; use --json with --all")
        payload = session.get("/v1/admin/billing", _range(args, group_by=args.by))

        def every(p: dict[str, Any]) -> list[str]:
            tables = [output.bill_table(bill, args.by) for bill in p["tenants"].values()]
            return [line for i, t in enumerate(tables) for line in ([""] if i else []) + t]

        return emit(args, payload, every)
    if args.csv:
        print(session.get("/v1/billing", _range(args, group_by=args.by, format="csv")), end="")
        return 0
    payload = session.get("/v1/billing", _range(args, group_by=args.by))
    return emit(args, payload, lambda p: output.bill_table(p, args.by))


def cmd_economics(args: argparse.Namespace) -> int:
    """Admin: VM cost against billed revenue for the range."""
    payload = client(args).get("/v1/admin/economics", _range(args))
    return emit(args, payload, lambda p: views.economics(p, terminal_width()))


def cmd_nodes(args: argparse.Namespace) -> int:
    """Admin: the nodes and how full they are."""
    payload = client(args).get("/v1/nodes")
    return emit(args, payload, lambda p: views.nodes(p, terminal_width()))


def cmd_node_add(args: argparse.Namespace) -> int:
    """Admin: provision a node of a flavor."""
    node = expect(client(args).call("POST", "/v1/nodes", {"flavor": args.flavor}), 201)
    return emit(args, node, lambda n: [f"added node {n['id']} ({n['flavor']}, {n['state']})"])


def cmd_node_drain(args: argparse.Namespace) -> int:
    """Admin: drain a node; it is released once its calls end."""
    answer = expect(client(args).call("DELETE", f"/v1/nodes/{args.id}"), 202)
    return emit(args, answer, lambda a: [f"node {a['id']}: {a['state']}"])


def resize_body(vcpu: float | None, memory_mb: int | None) -> dict[str, Any]:
    """`PATCH /v1/nodes/{id}`'s body: the new size (at least one of the two)."""
    if vcpu is None and memory_mb is None:
        raise UsageError("resize needs --vcpu, --memory or both")
    return {k: v for k, v in (("vcpu", vcpu), ("memory_mb", memory_mb)) if v is not None}


def cmd_node_resize(args: argparse.Namespace) -> int:
    """Admin: resize a node (where the gateway offers it)."""
    reply = client(args).call("PATCH", f"/v1/nodes/{args.id}", resize_body(args.vcpu, args.memory))
    if reply.status == 405:
        raise CliError(
            "this gateway cannot resize nodes: PATCH /v1/nodes/{id} answered 405 "
            "(not offered by this server)"
        )
    node = expect(reply, 200, 202)
    return emit(args, node, lambda n: [f"node {n.get('id', args.id)}: resized"])


def cmd_tenant_create(args: argparse.Namespace) -> int:
    """Admin: create a tenant and print its API key once."""
    tenant = expect(client(args).call("POST", "/v1/tenants", {"name": args.name}), 201)
    return emit(
        args,
        tenant,
        lambda t: [f"tenant {t['name']} created; API key (shown once): {t['api_key']}"],
    )


def cmd_tenant_list(args: argparse.Namespace) -> int:
    """Admin: the tenants."""
    payload = client(args).get("/v1/tenants")
    rows = [[t.get("name"), t.get("created")] for t in payload.get("tenants", [])]
    return emit(args, payload, lambda _: _tenant_table(rows))


def _tenant_table(rows: list[list[Any]]) -> list[str]:
    return table([Column("name"), Column("created")], [[n, iso(c)] for n, c in rows])


def cmd_tenant_delete(args: argparse.Namespace) -> int:
    """Admin: delete a tenant with all it owns."""
    expect(client(args).call("DELETE", f"/v1/tenants/{args.name}"), 204)
    return emit(args, {"deleted": args.name}, lambda _: [f"deleted tenant {args.name}"])


def _range_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="since", help="ISO date/datetime or epoch seconds")
    p.add_argument("--to", dest="until", help="ISO date/datetime or epoch seconds")


def add_commands(sub: Sub) -> None:
    """`bill`, `economics`, `nodes`, `tenant`."""
    bill = command(
        sub,
        "bill",
        cmd_bill,
        "your bill, per function or per day (admin: --all)",
        [
            "nimbus bill --by day",
            "nimbus bill --from 2026-11-01 --to 2026-12-01 --csv",
            "nimbus bill --all --json",
        ],
    )
    _range_flags(bill)
    bill.add_argument("--by", default="function", choices=["function", "day"])
    bill.add_argument("--csv", action="store_true", help="print CSV")
    bill.add_argument("--all", action="store_true", help="admin: every tenant's bill")
    econ = command(
        sub,
        "economics",
        cmd_economics,
        "admin: VM-hours and cost against revenue, margin, utilisation",
        ["nimbus economics --from 2026-11-01", "nimbus economics --json"],
    )
    _range_flags(econ)
    verbs = listing_command(
        sub,
        "nodes",
        cmd_nodes,
        "admin: nodes: list, add, drain, resize",
        ["nimbus nodes", "nimbus nodes add small", "nimbus nodes drain node-3"],
        alias="node",
        what="nodes",
    )
    add = command(verbs, "add", cmd_node_add, "provision a node", ["nimbus nodes add small"])
    add.add_argument("flavor")
    drain = command(
        verbs,
        "drain",
        cmd_node_drain,
        "drain a node, then release it",
        ["nimbus nodes drain node-3"],
    )
    drain.add_argument("id")
    resize = command(
        verbs,
        "resize",
        cmd_node_resize,
        "resize a node",
        ["nimbus nodes resize node-3 --vcpu 4 --memory 8192"],
    )
    resize.add_argument("id")
    resize.add_argument("--vcpu", type=float)
    resize.add_argument("--memory", type=int, help="MB")
    tenant = command(
        sub,
        "tenant",
        None,
        "tenants (admin): create, list, delete",
        ["nimbus tenant create team-a"],
        aliases=["tenants"],
    )
    tverbs = group(tenant, "tenant_command")
    create = command(
        tverbs,
        "create",
        cmd_tenant_create,
        "create a tenant and print its key",
        ["nimbus tenant create team-a"],
    )
    create.add_argument("name")
    command(tverbs, "list", cmd_tenant_list, "list tenants", ["nimbus tenant list"], aliases=["ls"])
    delete = command(
        tverbs,
        "delete",
        cmd_tenant_delete,
        "delete a tenant and all it owns",
        ["nimbus tenant delete team-a"],
    )
    delete.add_argument("name")
