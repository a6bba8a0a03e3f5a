"""One Docker engine as the drivers use it: SDK calls on a thread pool, never on the loop.

Both Docker drivers (this machine's engine and a remote VM's) hold an `Engine`: it runs
blocking SDK calls on its own threads, remembers them so closing can wait for calls a
cancelled caller left running, and does what both need of an engine: remove a container
quietly, find orphans.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
from requests.exceptions import RequestException

from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, DriverError

T = TypeVar("T")


def hardened(memory_mb: int, cpus: float, runtime_uid: str) -> dict[str, Any]:
    """The limits and lock-down every runtime container gets, on any engine."""
    memory = f"{memory_mb}m"
    return {
        "user": runtime_uid,
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: a memory blow-up is an OOM kill, not a crawl
        "nano_cpus": int(cpus * 1e9),
        "pids_limit": 128,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": "rw,exec,nosuid,nodev,size=64m"},  # exec: vendored .so files
        # Output that bypasses the proxy's capture (raw writes to fd 1/2, threads) lands in
        # the engine's log file on the host disk: bounded, one file.
        "log_config": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}},
    }


def describe_end(state: dict[str, Any]) -> str | None:
    """A container's end from its inspect `State` (pure); None while it runs."""
    if state.get("Running"):
        return None
    if state.get("OOMKilled"):
        return "it ran out of memory"
    code = int(state.get("ExitCode") or 0)
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"it was killed ({name})"
    return f"its process exited with code {code}"


class Engine:
    """A docker SDK client and the threads its blocking calls run on."""

    def __init__(self, client: docker.DockerClient, *, threads: int, name: str) -> None:
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._pending: set[concurrent.futures.Future[Any]] = set()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking SDK call on the engine's threads.

        A cancelled caller does not stop the thread: the future is kept so `close` can
        wait for it and sweep whatever it created.
        """
        future = self._pool.submit(fn, *args, **kwargs)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return await asyncio.wrap_future(future)

    def remove_quietly(self, name: str) -> None:
        """Force-remove a container; one that is gone already is fine (blocking)."""
        try:
            self.client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass

    async def remove(self, container_id: str, what: str) -> None:
        """Kill and remove a container; one that is gone (or going) already is fine.

        DriverError (naming `what`) when the engine refuses or cannot be reached.
        """
        try:
            await self.call(self.client.api.remove_container, container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise DriverError(f"cannot remove {what}: {exc}") from exc
        except (RequestException, OSError) as exc:
            raise DriverError(f"cannot remove {what}: {exc}") from exc

    async def set_memory_limit(self, container_id: str, limit_mb: int) -> bool:
        """`docker update --memory`: False when the engine refuses (e.g. the container's
        memory cannot be brought under the new limit) or cannot be reached.

        Only the memory limit changes: a memswap limit set at start stays, which a lower
        limit may sit under and the full limit equals.
        """
        try:
            await self.call(
                self.client.api.update_container, container_id, mem_limit=limit_mb * 2**20
            )
        except (docker.errors.DockerException, RequestException, OSError):
            return False
        return True

    async def ended(self, container_id: str, wait_s: float = 2.0) -> str | None:
        """Why a container stopped (out of memory, a signal, an exit code), as a tenant may
        read it; None while it still runs after `wait_s` or when the engine cannot say."""

        def inspect() -> str | None:
            deadline = time.monotonic() + wait_s
            while True:
                state = self.client.api.inspect_container(container_id).get("State") or {}
                if not state.get("Running") or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            return describe_end(state)

        try:
            return await self.call(inspect)
        except (docker.errors.DockerException, RequestException, OSError):
            return None

    async def remove_orphans(self, owner: str, instance_id: str) -> tuple[int, list[str]]:
        """Remove containers of `owner` that another instance started.

        Returns how many were removed and the names of all of them (for cleaning up what
        they left on disk, even where another process removed the container first).
        """
        found = await self.call(
            self.client.api.containers, all=True, filters={"label": f"{MANAGED_LABEL}={owner}"}
        )
        removed, names = 0, []
        for container in found:
            if (container.get("Labels") or {}).get(INSTANCE_LABEL) == instance_id:
                continue
            try:
                await self.call(self.client.api.remove_container, container["Id"], force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            names += [n.lstrip("/") for n in container.get("Names") or [] if n.strip("/")]
        return removed, names

    async def settle(self) -> None:
        """Wait for SDK calls still running (a cancelled create may yet make a container)."""
        pending = list(self._pending)
        if pending:
            await asyncio.get_running_loop().run_in_executor(None, concurrent.futures.wait, pending)

    async def close(self) -> None:
        """Close the client and stop the threads."""
        await self.call(self.client.close)
        self._pool.shutdown(wait=False)


_RUNTIME_START_FAILURES = (
    "OCI runtime start failed",
    "cannot start a stopped process",
    "container process is already dead",
)


def start_failed_in_runtime(exc: docker.errors.APIError) -> bool:
    """Whether the engine's runtime failed to start a container it had made (transient),
    rather than refusing the container itself."""
    text = str(exc)
    return any(marker in text for marker in _RUNTIME_START_FAILURES)
