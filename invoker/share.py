"""PURE: one worker's share of the machine under `nimbus serve --workers N`.

Functions are already partitioned by owner (`invoker.ownership`): a function's containers
live in one worker only. The machine is partitioned the same static way: worker `i` of `N`
gets `1/N` of what one process would have, and the parts add up to exactly that whole.

- Memory: the warm pool's budget (`pool_memory_mb`, else three quarters of the machine)
  and the memory the local provider may give to nodes (nine tenths of the machine).
- Node counts: `min_nodes` split so the total stays what the operator asked; `max_nodes`
  split too, but never below one node per worker (a worker's functions can run nowhere
  else), so with more workers than `max_nodes` the total is one per worker.
- Stem cells: each runtime's count split, the remainder going to the lowest indices
  (two python stem cells over two workers: one each; one nodejs stem cell: worker 0's).
- vCPU follows memory: the flavors fix each node's vCPU, and a node's vCPU is a CFS
  ceiling rather than a reservation (the local provider never bounded its sum), so with
  the nodes' memory split the workers' nodes together hold what one process's could.

A function is refused at deploy when its memory is more than its owner's share can ever
hold (`container_ceiling_mb`): it would deploy, and every call would find no room.

Remote capacity is not split: several workers over the same docker-hosts engines or
Kubernetes nodes would each enlist every node and book its whole capacity (and the books
would count each node once per worker), so those providers run with one worker
(`refusal`).
"""

from __future__ import annotations

from dataclasses import dataclass

POOL_FRACTION = (3, 4)  # of the machine's memory, the warm pool's default budget
NODES_FRACTION = (9, 10)  # of the machine's memory, what the local provider gives to nodes
SINGLE_WORKER_PROVIDERS = frozenset({"docker-hosts", "kubernetes"})


def split(total: int, index: int, workers: int) -> int:
    """Worker `index`'s part of `total` whole units: parts differ by at most one, the
    lowest indices take the remainder, and the `workers` parts sum to `total`."""
    if not 0 <= index < workers:
        raise ValueError(f"worker {index} is not one of {workers}")
    whole, remainder = divmod(total, workers)
    return whole + (1 if index < remainder else 0)


@dataclass(frozen=True)
class Share:
    """What one worker (or the single process) may use of the machine."""

    pool_memory_mb: int
    """The warm pool's memory budget (`PoolLimits.memory_mb`)."""
    node_memory_mb: int
    """What the local provider may give to this worker's nodes in all."""
    min_nodes: int
    max_nodes: int
    stem_cells: tuple[tuple[str, int, int], ...]
    """(runtime, memory MB, count) kept started by this worker; runtimes at 0 left out."""


@dataclass(frozen=True)
class Whole:
    """What the operator asked for the whole gateway, and the machine it runs on."""

    host_memory_mb: int
    pool_memory_mb: int = 0  # 0: POOL_FRACTION of the machine
    min_nodes: int = 1
    max_nodes: int = 4
    stem_cells: tuple[tuple[str, int, int], ...] = ()


def share_of(whole: Whole, worker: str, workers: int) -> Share:
    """Worker `worker`'s share of `whole` among `workers` ("" or 1 worker: all of it)."""
    index, count = (int(worker), workers) if worker and workers > 1 else (0, 1)
    pool = whole.pool_memory_mb or fraction(whole.host_memory_mb, POOL_FRACTION)
    cells = ((rt, mb, split(n, index, count)) for rt, mb, n in whole.stem_cells)
    return Share(
        pool_memory_mb=split(pool, index, count),
        node_memory_mb=split(fraction(whole.host_memory_mb, NODES_FRACTION), index, count),
        min_nodes=split(whole.min_nodes, index, count),
        max_nodes=max(1, split(whole.max_nodes, index, count)),
        stem_cells=tuple(cell for cell in cells if cell[2] > 0),
    )


def container_ceiling_mb(share: Share, *, local_nodes: bool) -> int:
    """The most memory one container can ever get within `share`: the pool's budget and,
    when the local provider carves this machine into nodes, the memory of those nodes."""
    if local_nodes:
        return min(share.pool_memory_mb, share.node_memory_mb)
    return share.pool_memory_mb


def fraction(total: int, part: tuple[int, int]) -> int:
    """`total` times `part` (numerator, denominator), rounded down."""
    return total * part[0] // part[1]


def refusal(vm_provider: str, workers: int) -> str | None:
    """Why `workers` processes cannot share the nodes of `vm_provider`, or None if they can."""
    if workers <= 1 or vm_provider not in SINGLE_WORKER_PROVIDERS:
        return None
    return (
        f"--workers {workers} does not work with the {vm_provider} provider: every worker "
        "would book each node's whole capacity and the books would count it once per "
        "worker; run it with one worker (--workers 1)"
    )
