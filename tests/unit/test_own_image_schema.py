"""A deploy body with an image of its own: validated before any engine is asked (the
image reference, exclusive with code and sequence, the protocol, the handler), the
OpenWhisk blackbox kind mapped to it, and the image's facts applied by pure rules (which
protocol, which user, root refused unless allowed)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ApiError
from gateway.openwhisk.translation import native_body
from gateway.schemas import FUNCTION_FIELDS, function_draft
from invoker.api import ImageRejected
from invoker.drivers.base import ImageFacts
from invoker.own_images import protocol_of, resolve_user, root_problem, with_facts
from tests.unit.deploy_bodies import draft, refused


def facts(protocol: str, runtime: str | None = None, user: str = "10001:10001") -> ImageFacts:
    return ImageFacts("repo/fn:1", "sha256:abc", protocol, runtime, user)


def test_an_image_replaces_code_and_runtime() -> None:
    found = draft(image="registry.local:5000/team/fn:1.0", memory_mb=256, env={"A": "b"})
    assert found.image == "registry.local:5000/team/fn:1.0"
    assert found.runtime == "image" and found.code_kind == "image" and found.code == b""
    assert found.image_protocol is None and found.handler == ""  # settled by the engine
    assert found.memory_mb == 256 and dict(found.env) == {"A": "b"}
    assert draft(image="fn", runtime="image", image_protocol="http").image_protocol == "http"


@pytest.mark.parametrize(
    "image", ["", "UPPER/case", "repo/fn:", "a b", "repo/fn@sha256:short", 7, None, "x" * 300]
)
def test_an_image_must_be_a_reference(image: object) -> None:
    assert refused(image=image).field == "image"


def test_image_code_and_sequence_exclude_each_other() -> None:
    assert refused(image="fn:1", code={"source": "def handler(e):\n    return e\n"}).field == (
        "code"
    )
    assert "image" in refused(sequence=["a"], image="fn:1").message
    assert refused(image="fn:1", runtime="python:3.11").field == "runtime"


def test_the_protocol_and_handler_are_checked() -> None:
    assert refused(image="fn:1", image_protocol="grpc").field == "image_protocol"
    assert refused(image_protocol="http", code={"source": "x = 1\n"}).field == "image_protocol"
    assert refused(image="fn:1", image_protocol="http", handler="main.handler").field == "handler"
    assert refused(image="fn:1", handler="not a handler!").field == "handler"
    assert draft(image="fn:1", handler="app.main").handler == "app.main"


def test_the_body_fields_are_the_documented_ones() -> None:
    assert {"image", "image_protocol"} <= FUNCTION_FIELDS


def test_the_protocol_is_declared_or_detected_by_the_runtime_label() -> None:
    assert protocol_of({"io.nimbus.runtime": "python:3.11"}, None) == "nimbus"
    assert protocol_of({}, None) == protocol_of(None, None) == "http"
    assert protocol_of({"io.nimbus.runtime": ""}, None) == "http"
    assert protocol_of({"io.nimbus.runtime": "python:3.11"}, "http") == "http"


PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\nnimbus:x:10001:10001::/tmp:/bin/false\napp:x:2000:3000::/:\n"
)
GROUP = "root:x:0:\nstaff:x:50:\n"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", (0, 0)),
        ("root", (0, 0)),
        ("0", (0, 0)),
        ("nimbus", (10001, 10001)),
        ("app", (2000, 3000)),
        ("10001", (10001, 10001)),
        ("4242", (4242, 4242)),  # no entry: its uid as gid, never the root group
        ("app:staff", (2000, 50)),
        ("4242:7", (4242, 7)),
    ],
)
def test_the_user_is_resolved_in_the_images_own_accounts(
    user: str, expected: tuple[int, int]
) -> None:
    assert resolve_user(user, PASSWD, GROUP) == expected


def test_an_unknown_user_or_group_is_refused() -> None:
    with pytest.raises(ImageRejected, match="ghost"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(ImageRejected, match="wheel"):
        resolve_user("app:wheel", PASSWD, GROUP)


def test_root_is_refused_unless_allowed() -> None:
    problem = root_problem("repo/fn:1", 0, allow_root=False)
    assert problem is not None and "repo/fn:1" in problem and "root" in problem
    assert root_problem("repo/fn:1", 0, allow_root=True) is None
    assert root_problem("repo/fn:1", 10001, allow_root=False) is None


def test_the_facts_settle_protocol_and_handler() -> None:
    nimbus = with_facts(draft(image="fn:1"), facts("nimbus", "python:3.11"))
    assert (nimbus.image_protocol, nimbus.handler) == ("nimbus", "main.handler")
    node = with_facts(draft(image="fn:1"), facts("nimbus", "nodejs:18"))
    assert node.handler == "main"
    named = with_facts(draft(image="fn:1", handler="app.run"), facts("nimbus", "python:3.11"))
    assert named.handler == "app.run"
    http = with_facts(draft(image="fn:1"), facts("http"))
    assert (http.image_protocol, http.handler) == ("http", "")
    with pytest.raises(ImageRejected, match="no handler"):
        with_facts(draft(image="fn:1", handler="main.handler"), facts("http"))


def openwhisk(doc: dict[str, Any]) -> dict[str, Any]:
    return native_body(doc, None, FUNCTION_FIELDS, lambda ns: ns)


def test_openwhisk_blackbox_is_an_image() -> None:
    body = openwhisk(
        {"exec": {"kind": "blackbox", "image": "team/fn:2"}, "limits": {"memory": 512}}
    )
    assert body["image"] == "team/fn:2" and body["memory_mb"] == 512
    assert body["annotations"]["exec"] == "blackbox"
    found = function_draft("t", "fn", body, max_code_bytes=2**20)
    assert found.image == "team/fn:2" and found.runtime == "image"
    with pytest.raises(ApiError, match=r"exec\.image"):
        openwhisk({"exec": {"kind": "blackbox"}})
    with pytest.raises(ApiError, match="bake"):
        openwhisk({"exec": {"kind": "blackbox", "image": "team/fn:2", "code": "x"}})
