"""A tenant's concurrency cap across the workers of `nimbus serve --workers N`, and the
deploy check against the owner's share of the machine."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from gateway.config import Config
from gateway.deploy_memory import memory_refusal
from invoker.assemble import owner_ceiling_mb, worker_share
from invoker.containers.in_flight import LocalInFlight
from invoker.containers.pool import Cold, Demand, Pool, PoolLimits, Reject, Wait
from invoker.operations import Operations
from invoker.ownership import owner_of
from invoker.share import Share, container_ceiling_mb
from invoker.shared_in_flight import InFlightTable, WorkerInFlight, reset_table, table_path


def demand(tenant: str, name: str = "f") -> Demand:
    return Demand((tenant, name, 1), "python:3.11", 128, 1, stem_ok=False)


def workers(tmp_path: Path, count: int = 2, rows: int = 64) -> list[WorkerInFlight]:
    """Each worker's view, over tables mapping one file (as forked workers do)."""
    path = table_path(tmp_path)
    InFlightTable(path, count, rows=rows, reset=True).close()
    return [WorkerInFlight(InFlightTable(path, count, rows=rows), w) for w in range(count)]


def test_a_process_alone_counts_its_own_calls() -> None:
    counts = LocalInFlight()
    assert counts.admit("ann", 2) and counts.admit("ann", 2)
    assert not counts.admit("ann", 2) and counts.mine("ann") == 2
    counts.done("ann")
    counts.done("ann")
    counts.done("ann")  # never below zero
    assert counts.mine("ann") == 0 and counts.admit("ann", 1)


def test_the_cap_holds_for_all_the_workers_together(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    assert first.admit("ann", 3) and first.admit("ann", 3)
    assert second.admit("ann", 3)
    assert not second.admit("ann", 3) and not first.admit("ann", 3)
    assert second.admit("bob", 3), "another tenant has its own cap"
    first.done("ann")
    assert second.admit("ann", 3)
    assert (first.mine("ann"), second.mine("ann")) == (1, 2)


def test_a_replaced_worker_clears_only_its_own_column(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    for _ in range(2):
        assert first.admit("ann", 3)
    assert second.admit("ann", 3)
    first.close()  # died with two calls in flight: they never end
    replacement = WorkerInFlight(InFlightTable(table_path(tmp_path), 2, rows=64), 0)
    assert replacement.admit("ann", 3) and replacement.admit("ann", 3)
    assert not replacement.admit("ann", 3), "the other worker's call still counts"
    second.done("ann")
    assert replacement.admit("ann", 3)


def test_a_row_without_calls_is_taken_over_and_a_full_table_counts_locally(
    tmp_path: Path,
) -> None:
    first, second = workers(tmp_path, rows=1)
    assert first.admit("ann", 1)
    # The one row is ann's while she has a call in flight: bob is counted per worker.
    assert first.admit("bob", 1) and second.admit("bob", 1)
    first.done("ann")
    first.done("bob")
    second.done("bob")
    assert first.admit("carol", 1) and not second.admit("carol", 1), "row taken over"


def test_workers_in_separate_processes_never_admit_past_the_cap(tmp_path: Path) -> None:
    path = reset_table(tmp_path, 2)
    readers = []
    for worker in range(2):
        read, write = os.pipe()
        if os.fork() == 0:  # a worker racing the other for the tenant's places
            mine = WorkerInFlight(InFlightTable(path, 2), worker)
            admitted = sum(mine.admit("ann", 50) for _ in range(2000))
            os.write(write, str(admitted).encode())
            os._exit(0)
        os.close(write)
        readers.append(read)
    took = [int(os.read(read, 16)) for read in readers]
    for _ in readers:
        os.wait()
    assert sum(took) == 50


def test_the_pool_counts_the_other_workers_and_gives_back_what_it_does_not_run(
    tmp_path: Path,
) -> None:
    first, second = workers(tmp_path)
    pool = Pool(PoolLimits(max_in_flight_per_tenant=2, max_per_function=1))
    pool.count_in_flight_in(first)
    pool.tenant_caps = {"ann": 2}
    assert second.admit("ann", 2)  # ann's call on the other worker
    assert isinstance(pool.decide(demand("ann"), 0.0), Cold)
    pool.starting("c1", demand("ann"), "python:3.11", 128, 0.0)
    assert pool.tenant_in_flight("ann") == 1
    assert isinstance(pool.decide(demand("ann", "g"), 0.0), Reject)
    second.done("ann")
    # The function's one container is busy: a wait holds no place of the tenant's.
    assert isinstance(pool.decide(demand("ann"), 0.0), Wait)
    assert pool.tenant_in_flight("ann") == 1 and second.admit("ann", 2)
    pool.initialized("c1")
    pool.released("c1", "ann", 1.0, keep_alive_s=60, duration_s=0.1)
    assert pool.tenant_in_flight("ann") == 0 and second.admit("ann", 2)


def share(pool_mb: int, node_mb: int) -> Share:
    return Share(pool_mb, node_mb, min_nodes=1, max_nodes=1, stem_cells=())


def test_a_containers_ceiling_is_its_pool_and_on_local_nodes_their_memory() -> None:
    assert container_ceiling_mb(share(3000, 3600), local_nodes=True) == 3000
    assert container_ceiling_mb(share(3000, 2000), local_nodes=True) == 2000
    assert container_ceiling_mb(share(3000, 2000), local_nodes=False) == 3000


def test_the_ceiling_is_the_owners_share_and_only_with_several_workers(tmp_path: Path) -> None:
    one = Config(tmp_path, pool_memory_mb=3001)
    assert owner_ceiling_mb(one, "f") is None
    three = Config(tmp_path, pool_memory_mb=3001, worker="2", workers=3, vm_provider="none")
    owner, ceiling = cast(tuple[int, int], owner_ceiling_mb(three, "f"))
    assert owner == owner_of("f", 3)
    assert ceiling == worker_share(three, 1 << 20, str(owner)).pool_memory_mb
    assert ceiling in (1000, 1001)


def ops(largest_mb: int) -> Operations:
    return cast(Operations, SimpleNamespace(largest_container_mb=lambda: largest_mb))


def test_deploy_names_the_limit_a_function_is_over(tmp_path: Path) -> None:
    settings = Config(tmp_path, pool_memory_mb=3000, worker="0", workers=3, vm_provider="none")
    assert memory_refusal(settings, ops(8000), "f", 1000, "memory_mb") is None
    refusal = memory_refusal(settings, ops(8000), "f", 1001, "memory_mb")
    assert refusal is not None and refusal.startswith("memory_mb 1001 is more than worker ")
    assert "(1000 MB)" in refusal and "--workers 3" in refusal
    alone = Config(tmp_path, pool_memory_mb=3000)
    assert memory_refusal(alone, ops(8000), "f", 4000, "memory_mb") is None
    largest = memory_refusal(alone, ops(2000), "f", 4000, "limits.memory")
    assert largest == "limits.memory 4000 is more than the largest node holds (2000 MB)"
