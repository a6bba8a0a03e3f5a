"""The runtime registry: what each runtime is, and everything that reads it (the drivers'
images and commands, stem cells, `nimbus serve`, the offline base builder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.errors import CliError
from gateway.cli.serve import stem_cells_value
from invoker.api import RUNTIMES
from invoker.drivers.process import host_commands, host_version
from invoker.images import base_builder_command, runtime_dir, runtime_recipes
from invoker.runtimes import (
    DEFAULT_RUNTIME,
    REGISTRY,
    default_stem_cells,
    runtime_for_path,
    runtime_named,
)
from invoker.settings import InvokerSettings


def test_python_and_nodejs_are_registered_each_with_its_image_recipe() -> None:
    assert DEFAULT_RUNTIME == "python:3.11"
    assert RUNTIMES == {"python:3.11": "python", "nodejs:18": "nodejs"}
    recipes = runtime_recipes()
    for runtime in REGISTRY:
        # The Dockerfile under runtimes/<family>/ labels the same runtime.
        assert recipes[runtime.name].family == runtime.family
        assert (runtime_dir() / runtime.family / runtime.proxy).is_file()
        assert runtime.rules.handler_pattern.fullmatch(runtime.default_handler)
    node = runtime_named("nodejs:18")
    assert node is not None and node.default_handler == "main"
    assert runtime_named("nodejs:20") is None


def test_a_version_keeps_the_promise_of_the_name_only_on_a_dot_boundary() -> None:
    node = runtime_named("nodejs:18")
    assert node is not None
    assert node.accepts_version("18.20.4") and node.accepts_version("18")
    assert not node.accepts_version("180.1") and not node.accepts_version("20.1.0")


def test_stem_cells_default_to_each_runtimes_count() -> None:
    assert default_stem_cells() == (("python:3.11", 128, 2), ("nodejs:18", 128, 1))
    assert InvokerSettings(data_dir=Path("x")).stem_cells == default_stem_cells()


def test_serve_stem_cells_flag_keeps_n_for_python_and_takes_runtime_equals_n() -> None:
    assert stem_cells_value([]) == default_stem_cells()
    assert stem_cells_value(["3"]) == (("python:3.11", 128, 3), ("nodejs:18", 128, 1))
    assert stem_cells_value(["0", "nodejs:18=0"]) == ()
    assert stem_cells_value(["nodejs:18=4"])[1] == ("nodejs:18", 128, 4)
    with pytest.raises(CliError, match="unknown runtime 'ruby:3'"):
        stem_cells_value(["ruby:3=1"])
    with pytest.raises(CliError, match="N or RUNTIME=N"):
        stem_cells_value(["nodejs:18=-1"])


def test_the_runtime_of_a_path_follows_its_suffix_or_project_file() -> None:
    assert runtime_for_path(".js", frozenset()).name == "nodejs:18"
    assert runtime_for_path("", frozenset({"package.json", "index.js"})).name == "nodejs:18"
    assert runtime_for_path(".py", frozenset()).name == "python:3.11"
    assert runtime_for_path("", frozenset({"main.py", "requirements.txt"})).name == "python:3.11"
    assert runtime_for_path(".zip", frozenset()).name == DEFAULT_RUNTIME


def test_the_process_driver_starts_each_runtime_with_this_machines_interpreter(
    tmp_path: Path,
) -> None:
    commands = host_commands(REGISTRY, tmp_path)
    assert commands["python:3.11"] == (sys.executable, str(tmp_path / "python" / "proxy.py"))
    assert commands["nodejs:18"][1] == str(tmp_path / "nodejs" / "proxy.js")
    python = runtime_named("python:3.11")
    assert python is not None
    assert host_version(python) == ".".join(map(str, sys.version_info[:3]))


def test_the_offline_base_is_built_by_one_script_with_the_registry_parameters() -> None:
    command = base_builder_command(runtime_dir() / "nodejs", "nimbus/base-nodejs:t")
    script = runtime_dir() / "build-base.sh"
    assert command == [
        "bash",
        str(script),
        "nimbus/base-nodejs:t",
        "nodejs",
        "nodejs,ca-certificates",
        "18",
        "node",
        "-p",
        "process.versions.node",
    ]
    plan = subprocess.run(
        command, env={"NIMBUS_BASE_DRY_RUN": "1", "PATH": "/usr/bin:/bin"}, capture_output=True
    )
    assert plan.returncode == 0, plan.stderr
    assert b"check node -p process.versions.node prints 18 or 18.*; CMD node" in plan.stdout
    # Too few arguments, or a package list that is not one, stop before anything runs.
    for bad in (command[:5], [*command[:4], "nodejs;rm", *command[5:]]):
        done = subprocess.run(bad, env={"NIMBUS_BASE_DRY_RUN": "1"}, capture_output=True)
        assert done.returncode == 1 and b"ERROR" in done.stderr
