"""Which requests are calls of a function, and of which one (what `--workers N` relays)."""

from __future__ import annotations

import pytest

from gateway.call_owner import called_function

ACTION = "/api/v1/namespaces/{namespace}/actions/{name}"


@pytest.mark.parametrize(
    ("route", "method", "match", "called"),
    [
        ("/v1/functions/{name}/invoke", "POST", {"name": "resize:prod"}, "resize:prod"),
        ("/web/{tenant}/{function}", "GET", {"tenant": "t", "function": "site"}, "site"),
        ("/web/{tenant}/{function}/{path}", "PUT", {"tenant": "t", "function": "site"}, "site"),
        (ACTION, "POST", {"namespace": "_", "name": "hello"}, "hello"),
        (ACTION, "PUT", {"namespace": "_", "name": "hello"}, None),  # a deploy, not a call
        (ACTION, "GET", {"namespace": "_", "name": "hello"}, None),
        (
            "/api/v1/web/{namespace}/{package}/{action}",
            "GET",
            {"namespace": "t", "package": "default", "action": "page.json"},
            "page",  # the extension says how to answer, not which function
        ),
        ("/v1/functions/{name}", "GET", {"name": "resize"}, None),
        ("/v1/activations/{activation_id}", "GET", {"activation_id": "x"}, None),
    ],
)
def test_a_request_names_the_function_it_calls(
    route: str, method: str, match: dict[str, str], called: str | None
) -> None:
    assert called_function(route, method, match) == called
