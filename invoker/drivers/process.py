"""Process driver: the same runtime proxy as a local subprocess, for machines with no Docker.

It gives no isolation (no memory limit, no separate filesystem or network): the CLI
says so when it is chosen. It exists so Nimbus runs anywhere Python does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from invoker.containers.cgroups import CallMeter
from invoker.drivers.base import ContainerHandle, ContainerSpec, ContainerStats, DriverError
from invoker.drivers.readiness import wait_for_unix_socket
from invoker.runtimes import Runtime

SOCKET_NAME = "p.sock"


def _interpreter(runtime: Runtime) -> str:
    return runtime.host_interpreter or shutil.which(runtime.interpreter) or runtime.interpreter


def host_commands(runtimes: Iterable[Runtime], root: Path) -> dict[str, tuple[str, ...]]:
    """{runtime: argv} starting each runtime's proxy (under `root`) with this machine's
    interpreter: the venv's Python, `node` on PATH."""
    return {r.name: (_interpreter(r), str(root / r.family / r.proxy)) for r in runtimes}


def host_version(runtime: Runtime) -> str | None:
    """The version of the interpreter this driver runs a runtime with; None if it has none.

    Blocking (a subprocess): call it off the loop. It need not keep the runtime's promise
    (`nodejs:18` on a machine with node 20): it is what runs, so it is what is reported.
    """
    try:
        done = subprocess.run(
            [_interpreter(runtime), *runtime.version_args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


class ProcessDriver:
    """Runs runtime proxies as child processes of this one."""

    name = "process"

    def __init__(
        self,
        run_dir: Path,
        proxy_path: Path | None = None,
        *,
        commands: Mapping[str, Sequence[str]] | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        """`commands` start each runtime's proxy (`host_commands`); `proxy_path` alone is
        the Python proxy, started for any runtime (as before there were others)."""
        self._commands = dict(commands or {})
        self._fallback = (sys.executable, str(proxy_path)) if proxy_path is not None else None
        self._run_dir = run_dir
        self._ready_timeout = ready_timeout
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._handles: dict[str, ContainerHandle] = {}

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        """Start a proxy process and wait until its socket accepts connections."""
        socket_dir = self._run_dir / spec.name
        socket_dir.mkdir(parents=True, exist_ok=True)
        socket = socket_dir / SOCKET_NAME
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **spec.env,
            "NIMBUS_SOCKET": str(socket),
            **(
                {"NIMBUS_API_SOCKET": f"{spec.api_socket_dir}/api.sock"}
                if spec.api_socket_dir
                else {}
            ),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        command = self._commands.get(spec.runtime, self._fallback)
        if command is None:
            raise DriverError(f"the process driver has no command for runtime {spec.runtime}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=str(socket_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:  # the runtime's interpreter is not installed here
            raise DriverError(f"cannot start {spec.runtime}'s proxy ({command[0]}): {exc}") from exc
        handle = ContainerHandle(id=f"pid-{proc.pid}", name=spec.name, address=f"unix:{socket}")
        self._procs[handle.id] = proc
        self._handles[handle.id] = handle
        try:
            await wait_for_unix_socket(socket, self._ready_timeout)
        except DriverError:
            await self.destroy(handle)
            raise
        return handle

    async def destroy(self, handle: ContainerHandle) -> None:
        """Kill the proxy's process group and remove its socket directory."""
        proc = self._procs.pop(handle.id, None)
        self._handles.pop(handle.id, None)
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
        # The function's working directory: it may have written any number of files there.
        await asyncio.to_thread(shutil.rmtree, self._run_dir / handle.name, ignore_errors=True)

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        """A process shares this host's accounting: nothing per call is measured."""
        return ContainerStats(peak_memory_mb=None, cpu_seconds=None)

    async def ended(self, handle: ContainerHandle) -> str | None:
        """The proxy process's exit, if it has ended."""
        proc = self._procs.get(handle.id)
        if proc is None or proc.returncode is None:
            return None
        code = proc.returncode
        return f"it was killed (signal {-code})" if code < 0 else f"it exited with code {code}"

    def call_meter(self, handle: ContainerHandle) -> CallMeter | None:
        """A process shares this host's cgroup: nothing per call can be measured."""
        return None

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        """A process has no limit of its own to resize: containers keep their full memory."""
        return False

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        """Child processes die with their session leader's kill; nothing outlives us to adopt."""
        return 0

    async def close(self) -> None:
        """Kill every proxy still running."""
        for handle in list(self._handles.values()):
            await self.destroy(handle)
