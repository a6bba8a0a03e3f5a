"""Runtime recipes: every directory under runtimes/ whose Dockerfile names a runtime is built."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from invoker.api import RUNTIMES
from invoker.images import (
    Recipe,
    base_override,
    buildable_runtimes,
    image_tag,
    local_base_tag,
    parse_recipe,
    public_base_image,
    runtime_dir,
    runtime_recipes,
)

NODE_DOCKERFILE = """\
ARG BASE_IMAGE=node:18-bookworm-slim
FROM ${BASE_IMAGE}
LABEL io.nimbus.runtime="nodejs:18"
"""


def test_a_dockerfile_declares_its_runtime_and_public_base() -> None:
    assert parse_recipe("nodejs", NODE_DOCKERFILE) == Recipe(
        "nodejs:18", "nodejs", "node:18-bookworm-slim"
    )
    unquoted = "FROM scratch\n  LABEL io.nimbus.runtime=ruby:3.2\n"
    assert parse_recipe("ruby", unquoted) == Recipe("ruby:3.2", "ruby", None)
    assert parse_recipe("misc", "FROM scratch\nLABEL other=1\n") is None


def test_the_repository_builds_python_and_nodejs() -> None:
    recipes = runtime_recipes()
    assert recipes["python:3.11"] == Recipe("python:3.11", "python", "python:3.11-slim")
    assert recipes["nodejs:18"] == Recipe("nodejs:18", "nodejs", "node:18-bookworm-slim")
    runtimes = buildable_runtimes(recipes)
    # The platform's runtimes come first, in their order; the others follow.
    assert list(runtimes)[: len(RUNTIMES)] == list(RUNTIMES)
    assert runtimes["nodejs:18"] == "nodejs"


def test_a_new_runtime_directory_is_found_and_tagged_by_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "runtimes"
    shutil.copytree(runtime_dir() / "nodejs", root / "nodejs")
    (root / "notes").mkdir()  # a directory without a Dockerfile is not a runtime
    (root / "notes" / "README").write_text("x")
    (root / "ruby").mkdir()
    (root / "ruby" / "Dockerfile").write_text('FROM scratch\nLABEL io.nimbus.runtime="ruby:3.2"\n')
    monkeypatch.setenv("NIMBUS_RUNTIMES_DIR", str(root))
    assert set(runtime_recipes()) == {"nodejs:18", "ruby:3.2"}
    tag = image_tag("nodejs:18")
    assert tag.startswith("nimbus/nodejs:18-") and len(tag) == len("nimbus/nodejs:18-") + 12
    assert image_tag("ruby:3.2").startswith("nimbus/ruby:3.2-")
    assert public_base_image("nodejs:18") == "node:18-bookworm-slim"
    assert public_base_image("ruby:3.2") == "ruby:3.2-slim"
    assert local_base_tag("nodejs") == "nimbus/base-nodejs:bookworm"
    proxy = root / "nodejs" / "proxy.js"
    proxy.write_text(proxy.read_text() + "\n")
    assert image_tag("nodejs:18") != tag


def test_an_unknown_runtime_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown runtime 'cobol:85'.*nodejs:18"):
        image_tag("cobol:85")


def test_a_base_override_names_its_family() -> None:
    env = {"NIMBUS_BASE_IMAGE": "my/python-base", "NIMBUS_BASE_IMAGE_NODEJS": "my/node-base"}
    assert base_override("nodejs", env) == ("NIMBUS_BASE_IMAGE_NODEJS", "my/node-base")
    assert base_override("python", env) == ("NIMBUS_BASE_IMAGE", "my/python-base")
    assert base_override("nodejs", {"NIMBUS_BASE_IMAGE": "my/python-base"}) is None
