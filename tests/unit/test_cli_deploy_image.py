"""`nimbus deploy NAME --image IMAGE`: what it sends, and the usage errors scripts can test."""

from __future__ import annotations

import pytest

from gateway.cli.api_commands import _deploy_source
from gateway.cli.commands import parser
from gateway.cli.errors import UsageError


def parsed(*argv: str):  # type: ignore[no-untyped-def]
    return parser().parse_args(["deploy", *argv])


def test_an_image_deploy_names_the_image_and_sends_no_code() -> None:
    assert _deploy_source(parsed("web", "--image", "my-server:1.0")) == {"image": "my-server:1.0"}
    with_handler = _deploy_source(parsed("baked", "--image", "baked:1", "--handler", "app.main"))
    assert with_handler == {"image": "baked:1", "handler": "app.main"}


@pytest.mark.parametrize(
    "argv",
    [
        ("both", "main.py", "--image", "x:1"),  # code and an image
        ("neither",),  # nothing to run
        ("clash", "--image", "x:1", "--runtime", "python:3.11"),
    ],
)
def test_code_or_an_image_not_both_nor_neither(argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        _deploy_source(parsed(*argv))
