"""Runtime images: content-addressed tags and the blocking build behind `nimbus images build`.

Each runtime family has a directory under ``runtimes/`` (Dockerfile, proxy, offline
base builder). The Dockerfile names its runtime (``LABEL io.nimbus.runtime="nodejs:18"``)
and its public base (``ARG BASE_IMAGE=node:18-bookworm-slim``), so every such directory
is built, whether or not the platform serves its runtime yet. Its image is tagged
``nimbus/<family>:<version>-<hash>``, where the hash covers every file in that
directory, so a second build with unchanged files is a no-op and a changed proxy can
never be mistaken for the old one. The alias
``nimbus/<family>:<version>`` always points at the newest build.

Where no registry answers, the base image is made locally by ``runtimes/build-base.sh``
(debootstrap + ``docker import``) with the packages and version check of the runtime's
entry in ``invoker/runtimes.py`` (a family outside the registry may bring its own
``build-base.sh``). Each image is labelled with the version its interpreter reports
(``io.nimbus.runtime-version``), measured on the base before the build: what
``GET /v1/runtimes`` says.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from invoker.api import RUNTIMES
from invoker.runtimes import REGISTRY, Runtime, runtime_named

HASH_LENGTH = 12
LOCAL_BASE_SUITE = "bookworm"
RUNTIME_LABEL = "io.nimbus.runtime"
HASH_LABEL = "io.nimbus.content-hash"
VERSION_LABEL = "io.nimbus.runtime-version"
BASE_BUILDER = "build-base.sh"
_LABEL_LINE = re.compile(r'^\s*LABEL\s+io\.nimbus\.runtime=("?)([^"\s]+)\1\s*$', re.MULTILINE)
_BASE_LINE = re.compile(r"^\s*ARG\s+BASE_IMAGE=(\S+)\s*$", re.MULTILINE)


class ImageBuildError(RuntimeError):
    """A runtime image (or its base) could not be built."""


def runtime_dir() -> Path:
    """The repository's ``runtimes/`` directory, or ``$NIMBUS_RUNTIMES_DIR`` when set."""
    override = os.environ.get("NIMBUS_RUNTIMES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "runtimes"


def _is_build_input(relative: Path) -> bool:
    # Bytecode appears when tests import the proxy; it is not part of the image's recipe.
    return "__pycache__" not in relative.parts and relative.suffix != ".pyc"


def content_hash(runtime_family_dir: Path) -> str:
    """First 12 hex digits of a sha256 over the family's files (sorted names, then bytes)."""
    if not runtime_family_dir.is_dir():
        raise ImageBuildError(f"runtime directory {runtime_family_dir} does not exist")
    digest = hashlib.sha256()
    files = sorted(
        p.relative_to(runtime_family_dir)
        for p in runtime_family_dir.rglob("*")
        if p.is_file() and _is_build_input(p.relative_to(runtime_family_dir))
    )
    for relative in files:
        name = relative.as_posix().encode()
        data = (runtime_family_dir / relative).read_bytes()
        # Length prefixes keep ("a", "bc") and ("ab", "c") apart.
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:HASH_LENGTH]


@dataclass(frozen=True)
class Recipe:
    """One runtime directory: the runtime its Dockerfile builds and where it builds it."""

    runtime: str  # e.g. "nodejs:18"
    family: str  # the directory's name, e.g. "nodejs"
    public_base: str | None  # the Dockerfile's default BASE_IMAGE, e.g. "node:18-bookworm-slim"


def parse_recipe(family: str, dockerfile: str) -> Recipe | None:
    """The recipe a runtime Dockerfile declares (pure); None when it names no runtime."""
    label = _LABEL_LINE.search(dockerfile)
    if label is None:
        return None
    base = _BASE_LINE.search(dockerfile)
    return Recipe(label.group(2), family, base.group(1) if base else None)


def runtime_recipes(root: Path | None = None) -> dict[str, Recipe]:
    """{runtime: recipe} for every directory under ``runtimes/`` whose Dockerfile names one."""
    root = runtime_dir() if root is None else root
    found: dict[str, Recipe] = {}
    if not root.is_dir():
        return found
    for family_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        dockerfile = family_dir / "Dockerfile"
        if not dockerfile.is_file():
            continue
        recipe = parse_recipe(family_dir.name, dockerfile.read_text(encoding="utf-8"))
        if recipe is not None:
            found.setdefault(recipe.runtime, recipe)
    return found


def buildable_runtimes(recipes: dict[str, Recipe]) -> dict[str, str]:
    """{runtime: family}: the platform's runtimes first, then every other recipe (pure)."""
    runtimes = dict(RUNTIMES)
    for runtime, recipe in recipes.items():
        runtimes.setdefault(runtime, recipe.family)
    return runtimes


def _split(runtime: str) -> tuple[str, str]:
    """``python:3.11`` -> (family ``python``, version ``3.11``)."""
    family = RUNTIMES.get(runtime)
    if family is None:
        recipe = runtime_recipes().get(runtime)
        if recipe is None:
            known = ", ".join(sorted(buildable_runtimes(runtime_recipes())))
            raise ValueError(f"unknown runtime {runtime!r} (known: {known})")
        family = recipe.family
    _, _, version = runtime.partition(":")
    return family, version


def alias_tag(runtime: str) -> str:
    """The stable alias, e.g. ``nimbus/python:3.11``; it follows the newest build."""
    family, version = _split(runtime)
    return f"nimbus/{family}:{version}"


def image_tag(runtime: str) -> str:
    """The content-addressed tag the Docker driver runs, e.g. ``nimbus/python:3.11-0123abcd4567``.

    Reads the runtime's files to hash them: callers that start many containers
    should compute it once.
    """
    family, version = _split(runtime)
    return f"nimbus/{family}:{version}-{content_hash(runtime_dir() / family)}"


def local_base_tag(family: str) -> str:
    """The tag build-base.sh produces for a family, e.g. ``nimbus/base-python:bookworm``."""
    return f"nimbus/base-{family}:{LOCAL_BASE_SUITE}"


def public_base_image(runtime: str) -> str:
    """The registry base for a runtime: its Dockerfile's default ``BASE_IMAGE``
    (e.g. ``node:18-bookworm-slim``), else ``<family>:<version>-slim``."""
    family, version = _split(runtime)
    recipe = runtime_recipes().get(runtime)
    if recipe is not None and recipe.public_base:
        return recipe.public_base
    return f"{family}:{version}-slim"


def base_override(family: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, image) when the environment names a base for a family (pure).

    ``NIMBUS_BASE_IMAGE_NODEJS`` names the nodejs family's; the older, unsuffixed
    ``NIMBUS_BASE_IMAGE`` still names the python family's, the only one it ever did.
    """
    names = [f"NIMBUS_BASE_IMAGE_{family.upper().replace('-', '_')}"]
    if family == "python":
        names.append("NIMBUS_BASE_IMAGE")
    for name in names:
        if environ.get(name):
            return name, environ[name]
    return None


def _image_exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def base_builder_command(family_dir: Path, tag: str) -> list[str]:
    """The command that builds a family's offline base: the shared ``build-base.sh`` with
    its registry entry's packages and version check, else the family's own script."""
    runtime = _registered(family_dir.name)
    if runtime is None:
        return ["bash", str(family_dir / BASE_BUILDER), tag]
    return [
        "bash",
        str(family_dir.parent / BASE_BUILDER),
        tag,
        runtime.family,
        ",".join(runtime.base_packages),
        runtime.version,
        runtime.interpreter,
        *runtime.version_args,
    ]


def _registered(family: str) -> Runtime | None:
    return next((runtime for runtime in REGISTRY if runtime.family == family), None)


def _run_base_builder(command: list[str], tag: str, progress: Callable[[str], None]) -> None:
    script = Path(command[1])
    if not script.is_file():
        raise ImageBuildError(f"no offline base builder at {script}")
    progress(f"building offline base {tag} with {script} (debootstrap, about a minute)")
    tail: list[str] = []
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            progress(line)
            tail = [*tail[-19:], line]
        code = proc.wait()
    if code != 0:
        last = "\n".join(tail[-5:])
        raise ImageBuildError(f"{script.name} {tag} failed with exit code {code}:\n{last}")


def choose_base(
    client: Any, runtime: str, family_dir: Path, progress: Callable[[str], None]
) -> str:
    """The base image to build on, making or pulling it when needed.

    Order: ``$NIMBUS_BASE_IMAGE_<FAMILY>`` (see `base_override`); the local offline
    base if present; the public slim image when ``$NIMBUS_PULL_BASE=1`` and a registry
    answers; else build the offline base now.
    """
    family, _ = _split(runtime)
    found = base_override(family, os.environ)
    if found is not None:
        variable, override = found
        progress(f"{runtime}: base {override} (from {variable})")
        return override
    local = local_base_tag(family)
    if _image_exists(client, local):
        progress(f"{runtime}: base {local} (local)")
        return local
    if os.environ.get("NIMBUS_PULL_BASE") == "1":
        public = public_base_image(runtime)
        repository, _, tag = public.partition(":")
        progress(f"{runtime}: pulling {public}")
        try:
            client.images.pull(repository, tag=tag)
        except docker.errors.DockerException as exc:
            progress(f"{runtime}: cannot pull {public} ({exc}); building the offline base")
        else:
            return public
    _run_base_builder(base_builder_command(family_dir, local), local, progress)
    return local


def measured_version(client: Any, base: str, runtime: str) -> str | None:
    """The version the base's interpreter reports, for a registered runtime; None for
    others. Raises ImageBuildError when it breaks the promise of the runtime's name."""
    entry = runtime_named(runtime)
    if entry is None:
        return None
    try:
        out = client.containers.run(
            base,
            list(entry.version_args),
            entrypoint=[entry.interpreter],
            remove=True,
            network_mode="none",
        )
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"{base} cannot run {entry.interpreter}: {exc}") from exc
    version = bytes(out).decode(errors="replace").strip()
    if not entry.accepts_version(version):
        raise ImageBuildError(f"{base} has {entry.interpreter} {version}, not {entry.version}")
    return version


def image_version(tag: str) -> str | None:
    """The runtime version a local image is labelled with; None without an engine, the
    image or the label. Blocking: call it off the loop."""
    try:
        client = docker.from_env(timeout=10)
    except docker.errors.DockerException:
        return None
    try:
        labels = client.images.get(tag).labels or {}
    except docker.errors.DockerException:
        return None
    finally:
        client.close()
    version = labels.get(VERSION_LABEL)
    return str(version) if version else None


def _docker_build(
    client: Any,
    family_dir: Path,
    tag: str,
    base: str,
    labels: dict[str, str],
    progress: Callable[[str], None],
) -> None:
    stream = client.api.build(
        path=str(family_dir),
        tag=tag,
        buildargs={"BASE_IMAGE": base},
        labels=labels,
        decode=True,
        rm=True,
        forcerm=True,
        pull=False,
    )
    for chunk in stream:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise ImageBuildError(f"docker build of {tag} failed: {str(detail).strip()}")
        text = chunk.get("stream") or chunk.get("status")
        if text:
            for line in str(text).splitlines():
                if line.strip():
                    progress(line)


def build_runtime_images(
    client: docker.DockerClient,
    progress: Callable[[str], None],
    *,
    force: bool = False,
    only: tuple[str, ...] = (),
) -> dict[str, str]:
    """Build every runtime image that is missing (or all, with ``force``); return {runtime: tag}.

    Every runtime directory is built (the platform's runtimes first), or those named
    in ``only``. Blocking: docker calls and possibly a debootstrap run. Callers on an
    event loop run it in a thread.
    """
    runtimes = buildable_runtimes(runtime_recipes())
    unknown = [runtime for runtime in only if runtime not in runtimes]
    if unknown:
        known = ", ".join(sorted(runtimes))
        raise ValueError(f"unknown runtime {', '.join(unknown)} (known: {known})")
    built: dict[str, str] = {}
    for runtime, family in runtimes.items():
        if only and runtime not in only:
            continue
        family_dir = runtime_dir() / family
        digest = content_hash(family_dir)
        tag = image_tag(runtime)
        alias = alias_tag(runtime)
        if not force and _image_exists(client, tag):
            progress(f"{runtime}: {tag} up to date")
        else:
            base = choose_base(client, runtime, family_dir, progress)
            version = measured_version(client, base, runtime)
            progress(f"{runtime}: building {tag} on {base} ({version or 'version unknown'})")
            labels = {RUNTIME_LABEL: runtime, HASH_LABEL: digest}
            if version:
                labels[VERSION_LABEL] = version
            try:
                _docker_build(client, family_dir, tag, base, labels, progress)
            except docker.errors.DockerException as exc:
                raise ImageBuildError(f"docker build of {tag} failed: {exc}") from exc
            progress(f"{runtime}: built {tag}")
        repository, _, alias_version = alias.partition(":")
        # Re-pointed even when up to date, so the alias never lags a content-tagged build.
        client.images.get(tag).tag(repository, alias_version)
        built[runtime] = tag
    return built
