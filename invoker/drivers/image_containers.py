"""Functions' own images on a Docker engine: what the engine says of one, and the
containers that run one (pure kwargs, as `docker.container_kwargs` for runtimes).

An image on the nimbus protocol runs like a runtime container (its own proxy on the unix
socket). An image on the http protocol is a pair: the image's container, with no network
(or the egress one), and beside it an adapter container from the Nimbus Python runtime
image in the same network namespace (`network_mode=container:<id>`), which listens on the
usual unix socket and forwards /run to http://127.0.0.1:$PORT/ (runtimes/python/
http_adapter.py). Both are hardened alike and carry the same labels, so the orphan sweep
removes both.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

from invoker.drivers.base import ContainerSpec, ImageFacts, ImageRejected
from invoker.drivers.egress import EGRESS_NETWORK
from invoker.drivers.engine import hardened
from invoker.own_images import HTTP_PORT, RUNTIME_LABEL, image_hint, protocol_of, resolve_user

ADAPTER_RUNTIME = "python:3.11"  # whose image carries the http adapter
ADAPTER_MEMORY_MB = 64
ADAPTER_PIDS = 16
ADAPTER_ENTRYPOINT = ["python3", "-S", "-B", "/opt/nimbus/http_adapter.py"]
ROLE_LABEL = "io.nimbus.role"
MAX_ACCOUNT_FILE = 1 << 20  # /etc/passwd or /etc/group read from an image
_TAR_OVERHEAD = 64 << 10  # tar headers and padding around that one file


def adapter_name(name: str) -> str:
    """The adapter container's name beside the function container `name`."""
    return f"{name}-http"


def app_kwargs(spec: ContainerSpec, image: str, user: str) -> dict[str, Any]:
    """The image's own container on the http protocol: its entrypoint, $PORT, hardened."""
    kwargs: dict[str, Any] = {
        "image": image,
        "name": spec.name,
        "detach": True,
        "labels": {**spec.labels, ROLE_LABEL: "function"},
        "environment": {**spec.env, "PORT": str(HTTP_PORT)},
        **hardened(spec.memory_mb, spec.cpus, user),
        # Its own namespace, never a tenant's shared one: two such images both use $PORT.
        "network_mode": EGRESS_NETWORK if spec.network else "none",
    }
    if spec.cgroup_parent:
        kwargs["cgroup_parent"] = spec.cgroup_parent
    return kwargs


def adapter_kwargs(
    spec: ContainerSpec, image: str, app_id: str, socket_dir: Path, socket: str, uid: str
) -> dict[str, Any]:
    """The adapter beside an http image: the runtime image's adapter module, the socket
    directory mounted, in the image container's network namespace, hardened and small."""
    kwargs: dict[str, Any] = {
        "image": image,
        "name": adapter_name(spec.name),
        "detach": True,
        "labels": {**spec.labels, ROLE_LABEL: "http-adapter"},
        "entrypoint": ADAPTER_ENTRYPOINT,
        "environment": {"NIMBUS_SOCKET": socket, "NIMBUS_TARGET_PORT": str(HTTP_PORT)},
        **hardened(ADAPTER_MEMORY_MB, spec.cpus, uid),
        "pids_limit": ADAPTER_PIDS,
        "volumes": {str(socket_dir): {"bind": str(Path(socket).parent), "mode": "rw"}},
        "network_mode": f"container:{app_id}",
    }
    if spec.cgroup_parent:
        kwargs["cgroup_parent"] = spec.cgroup_parent
    return kwargs


def _account_file(client: docker.DockerClient, container_id: str, path: str) -> str | None:
    """A small text file of a created (never started) container; None where it has none."""
    try:
        chunks, _ = client.api.get_archive(container_id, path)
    except docker.errors.NotFound:
        return None
    # The image is the tenant's: read at most a small file's worth, never its whole claim.
    kept: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_ACCOUNT_FILE + _TAR_OVERHEAD:
            return None
        kept.append(chunk)
    data = b"".join(kept)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = next((m for m in archive.getmembers() if m.isfile()), None)
        if member is None or member.size > MAX_ACCOUNT_FILE:
            return None
        found = archive.extractfile(member)
        return found.read().decode(errors="replace") if found is not None else None


def image_facts(
    client: docker.DockerClient, image: str, protocol: str | None, users: dict[str, str]
) -> ImageFacts:
    """What the engine says of an image (blocking: run it off the loop).

    ImageRejected when the engine lacks it or its USER cannot be resolved. The image's
    /etc/passwd and /etc/group are read from a container created (never started) for it,
    once per image id (`users` remembers: image id -> "uid:gid").
    """
    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ImageRejected(image_hint(image)) from None
    except docker.errors.APIError as exc:  # e.g. an invalid reference
        raise ImageRejected(f"image {image!r}: {exc.explanation or exc}") from None
    config = found.attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    image_id = str(found.id)
    if image_id not in users:
        users[image_id] = _run_as(client, image_id, str(config.get("User") or ""))
    return ImageFacts(
        image=image,
        image_id=image_id,
        protocol=protocol_of(labels, protocol),
        runtime=labels.get(RUNTIME_LABEL),
        user=users[image_id],
    )


def _run_as(client: docker.DockerClient, image_id: str, user: str) -> str:
    """ "uid:gid" of an image's USER, from its own account files where it names them."""
    passwd = group = None
    if user not in ("", "root", "0", "0:0"):
        created = client.api.create_container(image_id, command=["true"], network_disabled=True)
        try:
            passwd = _account_file(client, created["Id"], "/etc/passwd")
            group = _account_file(client, created["Id"], "/etc/group")
        finally:
            client.api.remove_container(created["Id"], force=True)
    uid, gid = resolve_user(user, passwd, group)
    return f"{uid}:{gid}"
