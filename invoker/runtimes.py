"""The runtimes the platform serves, as data: adding one is an entry here plus its image.

An entry says what a function's `runtime` field names (`nodejs:18`), which directory
under `runtimes/` builds its image (`nimbus/<family>:<version>-<hash>`, see
`invoker.images`), how the invoker talks to it (`PROTOCOL`), what code it takes and how
that code is checked (`invoker.runtime_code`), its default handler, how many stem cells
it keeps by default, and how to build its offline base and ask its interpreter for its
version (what `GET /v1/runtimes` reports). Pure data: no I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from invoker.runtime_code import NODE_RULES, PYTHON_RULES, CodeRules

PROTOCOL = "nimbus-proxy/1"
"""`POST /init` then `POST /run` on the proxy's unix socket (runtimes/python/proxy.py)."""

STEM_CELL_MEMORY_MB = 128  # the size default stem cells are started at


@dataclass(frozen=True)
class CodeFormat:
    """One shape of `code` a runtime takes."""

    kind: str  # "source" or "zip": the key of the deploy body's `code`
    description: str


@dataclass(frozen=True)
class Runtime:
    """One runtime the platform serves."""

    name: str  # what a function's `runtime` says, e.g. "nodejs:18"
    family: str  # its directory under runtimes/ and its image repository nimbus/<family>
    version: str  # the version its name promises: the interpreter's must start with it
    interpreter: str  # the program in its image, e.g. "node"
    proxy: str  # the proxy's file in runtimes/<family>/, run by `interpreter`
    version_args: tuple[str, ...]  # `interpreter` with these prints its full version
    base_packages: tuple[str, ...]  # Debian packages of its offline base image
    code_formats: tuple[CodeFormat, ...]
    rules: CodeRules  # handler names and the check of the code at deploy time
    default_handler: str  # when a deploy names none
    source_suffix: str  # of a single source file, e.g. ".js"
    project_file: str  # marks a function directory as this runtime's, e.g. "package.json"
    stem_cells: int  # default count of 128 MB stem cells
    host_interpreter: str | None = None  # the process driver's, else `interpreter` on PATH
    protocol: str = PROTOCOL

    def accepts_version(self, found: str) -> bool:
        """Does an interpreter's version (e.g. "18.19.0") keep the name's promise ("18")?"""
        return found == self.version or found.startswith(self.version + ".")


REGISTRY: tuple[Runtime, ...] = (
    Runtime(
        name="python:3.11",
        family="python",
        version="3.11",
        interpreter="python3",
        proxy="proxy.py",
        # Importing these proves the stdlib the proxy and most functions need is there.
        version_args=(
            "-c",
            "import json, ssl, zipfile, platform; print(platform.python_version())",
        ),
        base_packages=("python3-minimal", "libpython3.11-stdlib", "ca-certificates"),
        code_formats=(
            CodeFormat("source", "one .py file; the handler is 'module.function'"),
            CodeFormat("zip", "a zip with the module at its root and vendored packages beside it"),
        ),
        rules=PYTHON_RULES,
        default_handler="main.handler",
        source_suffix=".py",
        project_file="requirements.txt",
        stem_cells=2,
        host_interpreter=sys.executable,
    ),
    Runtime(
        name="nodejs:18",
        family="nodejs",
        version="18",
        interpreter="node",
        proxy="proxy.js",
        version_args=("-p", "process.versions.node"),
        base_packages=("nodejs", "ca-certificates"),
        code_formats=(
            CodeFormat("source", "one .js file; the handler is 'function' or 'module.function'"),
            CodeFormat(
                "zip",
                'a zip with package.json ("main" names the entry, default index.js) and '
                "node_modules at its root",
            ),
        ),
        rules=NODE_RULES,
        default_handler="main",
        source_suffix=".js",
        project_file="package.json",
        stem_cells=1,
    ),
)

DEFAULT_RUNTIME = REGISTRY[0].name
"""What a deploy that names no runtime gets."""

RUNTIMES_BY_NAME: Mapping[str, Runtime] = {runtime.name: runtime for runtime in REGISTRY}


def runtime_named(name: str) -> Runtime | None:
    """The registered runtime of that name, or None."""
    return RUNTIMES_BY_NAME.get(name)


def default_stem_cells() -> tuple[tuple[str, int, int], ...]:
    """(runtime, memory_mb, count) of every runtime's default stem cells (none with count 0)."""
    return tuple(
        (runtime.name, STEM_CELL_MEMORY_MB, runtime.stem_cells)
        for runtime in REGISTRY
        if runtime.stem_cells > 0
    )


def runtime_for_path(suffix: str, files: frozenset[str]) -> Runtime:
    """The runtime code at a path is for, when its deployer names none (pure).

    A file by its suffix (`.js` is nodejs:18); a directory by the project file it holds
    (package.json); else the default runtime.
    """
    for runtime in REGISTRY:
        if suffix == runtime.source_suffix or runtime.project_file in files:
            return runtime
    return REGISTRY[0]
