"""`nimbus triggers`, `rules`, `buckets`, `nodes`, `economics`, `bill` and `tenant` end
to end against a served gateway, with `--json` and exit codes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli_support import HELLO, Nimbus, eventually, one_line_error, served


@pytest.fixture(scope="module")
def nimbus(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nimbus]:
    with served(tmp_path_factory.mktemp("cli-res") / "data") as url:
        cli = Nimbus(url, tmp_path_factory.mktemp("home"))
        assert cli("deploy", "hello", str(HELLO), "--handler", "main.handler").code == 0
        yield cli


def test_triggers_and_rules(nimbus: Nimbus) -> None:
    made = nimbus("triggers", "create", "orders", "--webhook")
    assert made.code == 0 and "/v1/hooks/whk_" in made.out
    assert (
        nimbus("triggers", "create", "nightly", "--cron", "0 3 * * *", "--json").json()["cron"]
        == "0 3 * * *"
    )
    assert nimbus("buckets", "create", "inbox").code == 0
    bucket = nimbus("triggers", "create", "drop", "--bucket", "inbox", "--suffix", ".jpg", "--json")
    assert bucket.json()["suffix"] == ".jpg"
    names = [t["name"] for t in nimbus("triggers", "--json").json()["triggers"]]
    assert sorted(names) == ["drop", "nightly", "orders"]
    assert "0 3 * * * (UTC)" in nimbus("triggers", "list").out
    assert nimbus("triggers", "get", "nightly", "--json").json()["type"] == "schedule"

    created = nimbus("rules", "create", "on-order", "orders", "hello")
    assert created.code == 0 and "orders -> hello" in created.out
    assert nimbus("rules", "create", "quiet", "orders", "hello", "--disabled").code == 0
    listed = {r["name"]: r["enabled"] for r in nimbus("rules", "--json").json()["rules"]}
    assert listed == {"on-order": True, "quiet": False}
    fired = nimbus("triggers", "fire", "orders", "-p", "name=Trigger", "--json").json()
    assert len(fired["activation_ids"]) == 1  # only the enabled rule

    def done() -> dict[str, object] | None:
        found = nimbus("activation", fired["activation_ids"][0]).json()
        return found if found["status"] == "success" else None

    assert eventually(done)["result"] == {"greeting": "Hello, Trigger!"}
    assert nimbus("rules", "disable", "on-order", "--json").json()["enabled"] is False
    assert nimbus("rules", "enable", "quiet").out.strip() == "enabled rule quiet"
    assert nimbus("rules", "get", "quiet", "--json").json()["enabled"] is True
    assert "fired orders:" in nimbus("triggers", "fire", "orders").out
    assert nimbus("rules", "delete", "quiet").code == 0
    one_line_error(nimbus("rules", "get", "quiet"), 3, "quiet")
    one_line_error(nimbus("rules", "create", "r", "nope", "hello"), 1, "no trigger named")
    one_line_error(nimbus("triggers", "create", "t", "--cron", "not cron"), 1, "field: cron")
    assert nimbus("triggers", "delete", "orders", "--json").json() == {"deleted": "orders"}
    assert [r["name"] for r in nimbus("rules", "--json").json()["rules"]] == []
    one_line_error(nimbus("triggers", "fire", "orders"), 3, "orders")


def test_buckets_stream_objects_both_ways(nimbus: Nimbus, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 2**20 + 17))
    assert nimbus("buckets", "create", "photos", "--json").json() == {"name": "photos"}
    assert "exists" in nimbus("buckets", "create", "photos").out
    assert "photos" in [b["name"] for b in nimbus("buckets", "--json").json()["buckets"]]
    put = nimbus("buckets", "put", "photos", "2026/big.bin", str(big), "--json").json()
    assert put["size"] == big.stat().st_size and put["key"] == "2026/big.bin"
    note = tmp_path / "note.txt"
    note.write_text("hi\n")
    assert "put photos/note.txt" in nimbus("buckets", "put", "photos", "note.txt", str(note)).out
    listed = nimbus("buckets", "objects", "photos", "--json").json()["objects"]
    assert {o["key"]: o["content_type"] for o in listed}["note.txt"] == "text/plain"
    prefixed = nimbus("buckets", "objects", "photos", "--prefix", "2026/").out.splitlines()
    assert len(prefixed) == 2 and prefixed[1].startswith("2026/big.bin")

    got = tmp_path / "got.bin"
    ran = nimbus("buckets", "get", "photos", "2026/big.bin", str(got))
    assert ran.code == 0 and got.read_bytes() == big.read_bytes()
    assert nimbus("buckets", "get", "photos", "note.txt").out == "hi\n"  # to stdout
    one_line_error(nimbus("buckets", "get", "photos", "absent", str(tmp_path / "x")), 3, "absent")
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.part").exists()
    one_line_error(nimbus("buckets", "delete", "photos"), 1, "error 409")
    one_line_error(
        nimbus("buckets", "put", "photos", "k", str(tmp_path / "none")), 2, "cannot read"
    )
    for key in ("2026/big.bin", "note.txt"):
        assert nimbus("buckets", "rm", "photos", key).code == 0
    assert nimbus("buckets", "delete", "photos", "--json").json() == {"deleted": "photos"}
    one_line_error(nimbus("buckets", "objects", "photos"), 3, "photos")


def test_nodes_economics_and_bills_for_the_admin(nimbus: Nimbus) -> None:
    assert nimbus("invoke", "hello").code == 0
    added = nimbus("nodes", "add", "small", "--json").json()
    assert added["flavor"] == "small"
    nodes = nimbus("nodes", "--json").json()
    assert added["id"] in [n["id"] for n in nodes["nodes"]]
    assert nimbus("nodes", "list").out.startswith(f"provider: {nodes['provider']}")
    resized = nimbus("nodes", "resize", added["id"], "--vcpu", "2")
    if resized.code != 0:  # PATCH /v1/nodes/{id} is not served by every gateway
        one_line_error(resized, 1, "cannot resize nodes", "405")
    one_line_error(nimbus("nodes", "resize", added["id"]), 2, "--vcpu")
    drained = nimbus("nodes", "drain", added["id"], "--json").json()
    assert drained["id"] == added["id"]
    one_line_error(nimbus("nodes", "drain", "no-such-node"), 3)
    one_line_error(nimbus("nodes", "add", "gigantic"), 1, "unknown flavor")

    economics = nimbus("economics", "--json").json()
    assert {"overall", "nodes", "revenue_by_tenant"} <= set(economics)
    assert nimbus("economics").out.startswith("economics from ")
    bill = nimbus("bill", "--json").json()
    assert bill["tenant"] == "admin" and bill["total"]["invocations"] >= 1
    assert "admin" in nimbus("bill", "--all", "--json").json()["tenants"]
    assert nimbus("bill", "--all").out.startswith("bill for admin")
    one_line_error(nimbus("bill", "--all", "--csv"), 2, "--csv")


def test_tenants_and_what_a_tenant_key_may_not_do(nimbus: Nimbus) -> None:
    made = nimbus("tenant", "create", "team-cli", "--json").json()
    key = made["api_key"]
    assert "team-cli" in [t["name"] for t in nimbus("tenant", "list", "--json").json()["tenants"]]
    assert nimbus("functions", "--json", key=key).json() == {"functions": []}
    assert nimbus("bill", "--json", key=key).json()["tenant"] == "team-cli"
    for admin_only in (["nodes"], ["economics"], ["bill", "--all"], ["tenant", "list"]):
        one_line_error(nimbus(*admin_only, key=key), 4, "error 403")
    assert nimbus("tenant", "delete", "team-cli", "--json").json() == {"deleted": "team-cli"}
    one_line_error(nimbus("functions", key=key), 4, "error 401")
