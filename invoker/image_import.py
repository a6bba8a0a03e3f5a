"""`nimbus images import FILE.tar`: an image tarball loaded into every engine of the pool.

Nothing can be pulled here, so a function's own image reaches the engines that run
functions as a `docker save` tarball: this machine's engine, and every docker-hosts
engine the deployment lists (its hosts file, or its DOCKER_HOST URLs), each loaded from
the file in turn. An engine that fails does not stop the others: each engine's outcome
is reported. Blocking: the CLI calls it; a caller on an event loop runs it in a thread.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from requests.exceptions import RequestException

from invoker.providers.docker_hosts import DockerHost, listed_hosts

LOAD_TIMEOUT_S = 600
LOCAL = "local"

Opener = Callable[[], docker.DockerClient]


class ImportFailed(Exception):
    """The file is not an image tarball (nothing was loaded anywhere)."""


@dataclass(frozen=True)
class Loaded:
    """One engine's outcome: the image names it now has, or why it has none."""

    engine: str  # "local" or the docker-hosts host id
    images: tuple[str, ...] = ()
    error: str | None = None


def check_tarball(path: Path) -> None:
    """ImportFailed unless `path` is a `docker save` tarball (it holds manifest.json or an
    OCI index), so a wrong file fails before any engine is asked."""
    try:
        with tarfile.open(path) as archive:
            names = set(archive.getnames())
    except (OSError, tarfile.TarError):
        raise ImportFailed(
            f"{path} is not a readable tar archive (`docker save` makes one)"
        ) from None
    if not names & {"manifest.json", "index.json", "./manifest.json", "./index.json"}:
        raise ImportFailed(f"{path} is not an image tarball (no manifest.json): `docker save`")


def pool_engines(
    hosts_file: Path | None, urls: str, cert_path: Path | None, local: Opener | None = None
) -> list[tuple[str, Opener]]:
    """(name, client opener) of every engine of the pool: this machine's, then each listed
    docker-hosts engine (none when neither a hosts file nor URLs are given)."""
    from invoker.drivers.docker_remote import engine_client

    engines: list[tuple[str, Opener]] = [
        (LOCAL, local or (lambda: docker.from_env(timeout=LOAD_TIMEOUT_S)))
    ]
    if hosts_file is None and not urls:
        return engines

    def opener(host: DockerHost) -> Opener:
        return lambda: engine_client(host, timeout=LOAD_TIMEOUT_S)

    return engines + [(h.id, opener(h)) for h in listed_hosts(hosts_file, urls, cert_path)]


def _load_into(path: Path, open_client: Opener) -> tuple[str, ...]:
    client = open_client()
    try:
        with path.open("rb") as stream:  # streamed: an image may be larger than memory
            images = client.images.load(stream)
        return tuple(tag for image in images for tag in (image.tags or [image.short_id]))
    finally:
        client.close()


def import_image(
    path: Path, engines: Sequence[tuple[str, Opener]], progress: Callable[[str], None]
) -> list[Loaded]:
    """Load the tarball at `path` into each engine; one `Loaded` per engine, in order."""
    check_tarball(path)
    outcomes = []
    for name, open_client in engines:
        progress(f"{name}: loading {path.name}")
        try:
            outcome = Loaded(name, images=_load_into(path, open_client))
        except (docker.errors.DockerException, RequestException, OSError) as exc:
            outcome = Loaded(name, error=str(exc))
        progress(
            f"{name}: {', '.join(outcome.images)}"
            if outcome.error is None
            else f"{name}: failed: {outcome.error}"
        )
        outcomes.append(outcome)
    return outcomes
