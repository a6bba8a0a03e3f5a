"""The container driver a deployment runs functions with, chosen by its settings."""

from __future__ import annotations

import logging
from pathlib import Path

from kubernetes.client import ApiClient

from invoker.drivers.base import ContainerDriver
from invoker.drivers.fleet import Fleet, open_fleet
from invoker.providers.docker_hosts import listed_hosts
from invoker.runtimes import REGISTRY
from invoker.settings import InvokerSettings

log = logging.getLogger("nimbus.invoker")


def make_driver(
    settings: InvokerSettings, run_dir: Path
) -> tuple[ContainerDriver, ApiClient | None, Fleet | None]:
    """The container driver by name; `auto` takes Docker wherever an engine answers.

    Blocking (it pings Docker and hashes the runtime recipes): call it off the loop.
    Returns the Kubernetes API client too, which the cluster node provider shares, and
    with the `docker-hosts` provider the fleet of engines, which it enlists as nodes.
    """
    from invoker.drivers.docker import DockerDriver, engine_answers
    from invoker.drivers.process import ProcessDriver, host_commands
    from invoker.images import runtime_dir

    if settings.vm_provider == "docker-hosts":
        return _docker_hosts_driver(settings, run_dir)
    name = settings.driver
    if name == "auto":
        name = "docker" if engine_answers() else "process"
        if name == "process":
            log.warning("no Docker engine answers: using the process driver (no isolation)")
    if name == "docker":
        docker_driver = DockerDriver(
            run_dir, _image_tags().__getitem__, allow_root_images=settings.allow_root_images
        )
        return docker_driver, None, None
    if name == "process":
        commands = host_commands(REGISTRY, runtime_dir())
        return ProcessDriver(run_dir, commands=commands), None, None
    if name == "kubernetes":
        from invoker.drivers.kubernetes import KubernetesDriver, load_api_client
        from invoker.drivers.kubernetes_pods import KubernetesDriverConfig

        client = load_api_client()
        k8s = KubernetesDriverConfig(
            namespace=settings.k8s_namespace, runtime_class=settings.k8s_runtime_class or None
        )
        prefix = settings.k8s_image_prefix
        driver = KubernetesDriver(client, config=k8s, image_for=lambda rt: prefix + rt)
        return driver, client, None
    raise ValueError(f"unknown driver {name!r}; choose auto, docker, process or kubernetes")


def _docker_hosts_driver(
    settings: InvokerSettings, run_dir: Path
) -> tuple[ContainerDriver, None, Fleet]:
    """One engine per VM from the hosts file, each reached by its own driver."""
    if settings.driver not in ("auto", "docker"):
        raise ValueError("vm_provider docker-hosts runs containers with Docker: driver docker")
    hosts = listed_hosts(
        settings.docker_hosts_file, settings.docker_hosts_urls, settings.docker_cert_path
    )
    tags = _image_tags()
    fleet = open_fleet(hosts, run_dir, settings.owner, tags.__getitem__, tuple(tags))
    return fleet.driver, None, fleet


def _image_tags() -> dict[str, str]:
    """Every registered runtime's image tag, hashed once: image_tag reads all its files."""
    from invoker.images import image_tag

    return {runtime.name: image_tag(runtime.name) for runtime in REGISTRY}
