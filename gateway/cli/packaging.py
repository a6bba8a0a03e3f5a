"""What `nimbus deploy PATH` uploads: a file's source, a zip, or a directory's deployment
zip (the directory plus its vendored dependencies).

A Node.js function directory (`--runtime nodejs:18`) needs a package.json; it is zipped
as it is, with its node_modules: npm is not run here (a function's container has no
network, and what `npm install` left is what the function runs with).

A function directory with a `requirements.txt` gets its dependencies installed, as wheels
only, for the runtime rather than for the machine that deploys: CPython 3.11 (Debian
bookworm's python3, glibc 2.36) on manylinux x86_64 or aarch64. They land at the zip's
root beside the function's own files, as in a Lambda zip; the runtime puts that root on
`sys.path`. Wheels only, because the container has no compiler and no network, and a
package built from source here would be built for this machine.

The runtime starts Python with `-S`, so `.pth` files in vendored packages are not
processed; packages that rely on them need their paths set up by the function.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "PackagingError",
    "build_node_zip",
    "build_zip",
    "package_code",
    "platform_tags",
    "vendor_requirements",
]

Progress = Callable[[str], None]

# Debian bookworm's glibc, the runtime image's: manylinux wheels up to 2.36 run there.
GLIBC = (2, 36)
# manylinux2014 is glibc 2.17; pip widens it to manylinux2010 and manylinux1 itself.
OLDEST_GLIBC_MINOR = 17
# What `platform.machine()` says on hosts whose runtime images use these wheel arches.
MACHINE_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same files give the same zip
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


class PackagingError(Exception):
    """Packaging failed for a reason to show the user as is."""


def _quiet(line: str) -> None:
    pass


def _arch(machine: str | None) -> str:
    name = (machine or platform.machine()).lower()
    try:
        return MACHINE_ARCH[name]
    except KeyError:
        known = ", ".join(sorted(set(MACHINE_ARCH.values())))
        raise PackagingError(
            f"no runtime for machine {name!r}: Nimbus runs functions on {known}"
        ) from None


def platform_tags(machine: str | None = None) -> list[str]:
    """pip `--platform` values for the runtime: manylinux_2_36 down to manylinux2014.

    `machine` is a `platform.machine()` value (default: this host's).
    """
    arch = _arch(machine)
    major, newest = GLIBC
    tags = [
        f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, OLDEST_GLIBC_MINOR - 1, -1)
    ]
    tags.append(f"manylinux2014_{arch}")
    return tags


def _has_requirements(requirements: Path) -> bool:
    """Whether the file has anything but blank lines and comments (pip errors on none)."""
    for line in requirements.read_text().splitlines():
        if re.sub(r"(^|\s)#.*$", "", line).strip():
            return True
    return False


def _no_wheel_message(output: Sequence[str], python_version: str, arch: str) -> str | None:
    missing = [
        m.group(1)
        for line in output
        if (m := re.search(r"No matching distribution found for (\S+)", line))
    ]
    if not missing:
        return None
    names = ", ".join(missing)
    return (
        f"no wheel of {names} for CPython {python_version} on manylinux {arch} "
        f"(glibc {GLIBC[0]}.{GLIBC[1]}): nimbus deploy vendors wheels only, because a "
        "function's container cannot build from source. Pin a version that publishes "
        "such a wheel (or a pure-Python py3-none-any one), or drop it from requirements.txt."
    )


def vendor_requirements(
    requirements: Path,
    target: Path,
    *,
    python_version: str = "3.11",
    machine: str | None = None,
    progress: Progress = _quiet,
    pip_args: Sequence[str] = (),
    python: str = sys.executable,
) -> None:
    """Install the wheels `requirements` names into `target`, for the runtime.

    Runs pip with `--only-binary=:all:` and the runtime's interpreter and platform tags,
    passing each output line to `progress`. `pip_args` go to pip as well (for example
    `--no-index --find-links DIR`); the index is otherwise pip's configured one.
    Raises PackagingError, naming the package when one has no suitable wheel.
    """
    arch = _arch(machine)
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--no-compile",  # the runtime compiles what it imports, into its own /tmp
        "--only-binary=:all:",
        *(arg for tag in platform_tags(arch) for arg in ("--platform", tag)),
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *pip_args,
        "-r",
        str(requirements.resolve()),
    ]
    progress(f"vendoring {requirements.name} for CPython {python_version} manylinux {arch}")
    output: list[str] = []
    try:
        # Relative paths inside requirements.txt are relative to its directory.
        with subprocess.Popen(
            command,
            cwd=requirements.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                output.append(line)
                progress(line)
            code = proc.wait()
    except OSError as exc:
        raise PackagingError(f"cannot run pip with {python}: {exc}") from exc
    if code == 0:
        return
    message = _no_wheel_message(output, python_version, arch)
    if message is not None:
        raise PackagingError(message)
    errors = [line for line in output if line.startswith("ERROR")] or output[-5:]
    raise PackagingError(
        f"pip could not vendor {requirements} (exit {code}): " + " / ".join(errors)
    )


def _files(root: Path, *, skip_top: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path]]:
    """(archive name, path) of each file under root, sorted, minus caches and bytecode."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip_top or SKIPPED_DIRS.intersection(rel.parts):
            continue
        if path.suffix in SKIPPED_SUFFIXES or not path.is_file():
            continue
        yield rel.as_posix(), path


def _add(archive: zipfile.ZipFile, name: str, path: Path) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    executable = path.stat().st_mode & stat.S_IXUSR
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with path.open("rb") as src, archive.open(info, "w") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


def build_zip(
    directory: Path,
    progress: Progress = _quiet,
    *,
    python_version: str = "3.11",
    machine: str | None = None,
    pip_args: Sequence[str] = (),
) -> bytes:
    """The deployment zip of a function directory.

    Its files sit at the zip root (without __pycache__ or .pyc files). When it has a
    requirements.txt, the dependencies are vendored beside them (see
    `vendor_requirements`); a file of the function's own wins over a vendored one of the
    same name. The zip is deterministic: the same inputs give the same bytes.
    """
    if not directory.is_dir():
        raise PackagingError(f"{directory}: not a directory")
    entries: dict[str, Path] = dict(_files(directory))
    requirements = directory / "requirements.txt"
    with tempfile.TemporaryDirectory(prefix="nimbus-vendor-") as tmp:
        if requirements.is_file() and _has_requirements(requirements):
            vendor = Path(tmp)
            vendor_requirements(
                requirements,
                vendor,
                python_version=python_version,
                machine=machine,
                progress=progress,
                pip_args=pip_args,
            )
            # bin/ holds console scripts with this host's interpreter path: useless there.
            for name, path in _files(vendor, skip_top=frozenset({"bin"})):
                if name in entries:
                    progress(f"warning: {name} from {directory} shadows the vendored copy")
                    continue
                entries[name] = path
        return _zip_of(entries, progress)


def _zip_of(entries: dict[str, Path], progress: Progress) -> bytes:
    """A deterministic zip of (archive name -> file), sorted by name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            _add(archive, name, entries[name])
    data = buf.getvalue()
    progress(f"packaged {len(entries)} files, {len(data) / 2**20:.1f} MiB zipped")
    return data


def _node_dependencies(manifest: Path) -> list[str]:
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise PackagingError(f"{manifest}: not a readable JSON file ({exc})") from exc
    dependencies = data.get("dependencies") if isinstance(data, dict) else None
    return sorted(dependencies) if isinstance(dependencies, dict) else []


def _node_skipped(name: str) -> bool:
    # node_modules/.bin holds links to this machine's CLI tools; .git is history.
    parts = name.split("/")
    return parts[0] == ".git" or any(
        part == ".bin" and parts[i - 1] == "node_modules" for i, part in enumerate(parts) if i
    )


def build_node_zip(directory: Path, progress: Progress = _quiet) -> bytes:
    """The deployment zip of a Node.js function directory: its files, node_modules
    included, at the zip root (package.json's `main` names the entry).

    Raises PackagingError without a package.json, or when a package its `dependencies`
    name is not in node_modules (run `npm install --omit=dev` there first).
    """
    if not directory.is_dir():
        raise PackagingError(f"{directory}: not a directory")
    manifest = directory / "package.json"
    if not manifest.is_file():
        raise PackagingError(
            f'{directory}: a Node.js function directory needs a package.json (its "main" '
            "names the entry file, index.js by default)"
        )
    missing = [
        name
        for name in _node_dependencies(manifest)
        if not (directory / "node_modules" / name).is_dir()
    ]
    if missing:
        raise PackagingError(
            f"{manifest} depends on {', '.join(missing)}, not in node_modules: run "
            f"`npm install --omit=dev` in {directory} first (nimbus deploy does not run npm)"
        )
    entries = {name: path for name, path in _files(directory) if not _node_skipped(name)}
    return _zip_of(entries, progress)


# How a directory becomes a zip, by runtime family; any other family's is zipped as is.
DIRECTORY_PACKAGERS: dict[str, Callable[[Path, Progress], bytes]] = {
    "python": build_zip,
    "nodejs": build_node_zip,
}


def _plain_zip(directory: Path, progress: Progress) -> bytes:
    return _zip_of(dict(_files(directory)), progress)


def package_code(
    path: Path, progress: Progress = _quiet, *, family: str = "python"
) -> dict[str, str]:
    """The `code` of a deploy body for a runtime family: a file becomes `{"source"}`; a
    .zip, or a directory packaged for the family (python: `build_zip`, its
    requirements.txt vendored; nodejs: `build_node_zip`), becomes `{"zip"}`."""
    if path.is_dir():
        packager = DIRECTORY_PACKAGERS.get(family, _plain_zip)
        return {"zip": base64.b64encode(packager(path, progress)).decode()}
    if path.suffix == ".zip":
        return {"zip": base64.b64encode(path.read_bytes()).decode()}
    if path.is_file():
        return {"source": path.read_text()}
    raise PackagingError(f"{path}: no such file or directory")
