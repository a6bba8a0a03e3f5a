"""The network of functions that asked for one (`"network": true`) on this machine's engine.

Such containers reach the outside, and nothing of the platform's or of other tenants':
- one bridge network shared by every Nimbus instance on the engine, with traffic between
  its containers off (`enable_icc=false`), so no tenant reaches another's container;
- a host firewall rule that drops whatever arrives from that bridge for the host itself
  (the gateway, a database, an engine API on any of the host's addresses), while traffic
  the host routes onward (NAT to the outside) is untouched.
Docker's own isolation rules already keep this bridge apart from its other networks.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

import docker
import docker.errors

from invoker.drivers.base import DriverError

EGRESS_NETWORK = "nimbus-egress"
EGRESS_BRIDGE = "nimbus-egress"  # the host interface; at most 15 characters
EGRESS_OPTIONS = {
    "com.docker.network.bridge.name": EGRESS_BRIDGE,
    "com.docker.network.bridge.enable_icc": "false",
}
_lock = threading.Lock()  # two first creates at once must not race the engine


class EgressError(DriverError):
    """The egress network or its firewall could not be set up."""


def firewall_commands(tool: str, bridge: str) -> tuple[list[str], list[str]]:
    """The check and the insert of the rule that keeps the bridge off the host (pure)."""
    rule = ["INPUT", "-i", bridge, "-j", "DROP"]
    return [tool, "-w", "-C", *rule], [tool, "-w", "-I", *rule]


def _ensure_rule(tool: str, bridge: str, required: bool) -> None:
    path = shutil.which(tool)
    if path is None:
        if required:
            raise EgressError(f"{tool} is not installed: cannot keep containers off the host")
        return
    check, insert = firewall_commands(path, bridge)
    try:
        if subprocess.run(check, capture_output=True, timeout=30).returncode == 0:
            return
        done = subprocess.run(insert, capture_output=True, timeout=30, text=True)
    except (OSError, subprocess.SubprocessError) as exc:
        if required:
            raise EgressError(f"cannot run {tool}: {exc}") from exc
        return
    if done.returncode != 0 and required:
        raise EgressError(f"cannot add the host firewall rule: {done.stderr.strip()[:200]}")


def ensure_egress_network(client: docker.DockerClient) -> None:
    """Create the egress network and its firewall rule if missing (blocking; idempotent).

    EgressError when the host cannot be protected: a container must not start on a
    network that reaches the host's services.
    """
    with _lock:
        if not client.networks.list(names=[EGRESS_NETWORK]):
            try:
                client.networks.create(EGRESS_NETWORK, driver="bridge", options=EGRESS_OPTIONS)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # another instance made it first
                    raise
        _ensure_rule("iptables", EGRESS_BRIDGE, required=True)
        _ensure_rule("ip6tables", EGRESS_BRIDGE, required=False)
