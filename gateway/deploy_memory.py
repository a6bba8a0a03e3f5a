"""Whether a function's memory can ever be given to one of its containers, checked at deploy.

Both deploy routes (native and OpenWhisk) ask this before storing a function: a function
no container can hold would deploy and then fail every call.
"""

from __future__ import annotations

from invoker.assemble import owner_ceiling_mb
from invoker.operations import Operations
from invoker.settings import InvokerSettings


def memory_refusal(
    settings: InvokerSettings, ops: Operations, function: str, memory_mb: int, field: str
) -> str | None:
    """Why `memory_mb` (given as `field`) is too much for `function`, or None if it fits.

    The largest node (or this machine) bounds every container; under `nimbus serve
    --workers N` so does the share of the machine of the worker owning the function.
    """
    largest = ops.largest_container_mb()
    owner = owner_ceiling_mb(settings, function)
    if owner is not None and owner[1] < min(largest, memory_mb):
        worker, ceiling = owner
        return (
            f"{field} {memory_mb} is more than worker {worker}'s share of the machine holds "
            f"({ceiling} MB): with --workers {settings.workers} each worker has 1/"
            f"{settings.workers} of the containers' memory; ask for less memory or run "
            "fewer workers"
        )
    if memory_mb > largest:
        return f"{field} {memory_mb} is more than the largest node holds ({largest} MB)"
    return None
