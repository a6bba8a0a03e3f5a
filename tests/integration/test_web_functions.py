"""Web functions: public URLs without an API key, over HTTP on the real Docker engine.

The request goes in as OpenWhisk's web actions get it and the result comes back as the
HTTP response; names that are not web functions all answer the same 404; calls are the
owner's (billed, within its limits) and rate limited per function.
"""

from __future__ import annotations

import asyncio
import base64
import json

from tests.conftest import Api
from tests.integration.web_calls import ANSWERS, PNG, fetch

SITE = (
    ANSWERS
    + """
def handler(event):
    mode = event.get("mode")
    if answer(mode) is not None:
        return answer(mode)
    if mode == "html":
        return {"headers": {"Content-Type": "text/html"}, "body": "<h1>hi</h1>"}
    if mode == "json":
        return {"statusCode": 201, "headers": {"X-Many": ["a", "b"]}, "body": {"made": 1}}
    if mode == "fail":
        raise ValueError("broken on purpose")
    return event
"""
)
ECHO = "def handler(event):\n    return event\n"


async def test_the_request_goes_in_and_the_result_comes_out(api: Api) -> None:
    key = await api.tenant("webshop")
    await api.deploy(
        "site",
        SITE,
        key=key,
        web=True,
        params={"greeting": "hello", "token": "t0p"},
        secret_params=["token"],
    )
    status, body, headers = await fetch(
        api,
        "GET",
        "/web/webshop/site/a/b?name=Ada&greeting=hi",
        headers={"Authorization": "Bearer not-for-the-function", "X-Thing": "1"},
    )
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    args = json.loads(body)
    assert args["__ow_method"] == "get" and args["__ow_path"] == "/a/b"
    assert args["__ow_headers"]["x-thing"] == "1"
    assert "authorization" not in args["__ow_headers"]
    # Query parameters, over the function's own params (whose secret it does see).
    assert args["name"] == "Ada" and args["greeting"] == "hi" and args["token"] == "t0p"
    assert "X-Nimbus-Activation-Id" in headers

    status, body, _ = await fetch(api, "POST", "/web/webshop/site?q=1", json={"name": "Bob"})
    args = json.loads(body)
    assert (status, args["name"], args["q"], args["__ow_method"]) == (200, "Bob", "1", "post")
    status, body, _ = await fetch(api, "PUT", "/web/webshop/site", data={"name": "Cy"})
    assert json.loads(body)["name"] == "Cy"  # a form body
    status, body, _ = await fetch(
        api,
        "POST",
        "/web/webshop/site",
        data=b"plain words",
        headers={"Content-Type": "text/plain"},
    )
    assert json.loads(body)["__ow_body"] == "plain words"
    status, body, _ = await fetch(
        api, "POST", "/web/webshop/site", data=PNG, headers={"Content-Type": "image/png"}
    )
    assert base64.b64decode(json.loads(body)["__ow_body"]) == PNG

    status, body, headers = await fetch(api, "GET", "/web/webshop/site?mode=html")
    assert (status, body) == (200, b"<h1>hi</h1>")
    assert headers["Content-Type"].startswith("text/html")
    status, body, headers = await fetch(api, "GET", "/web/webshop/site?mode=png")
    assert (status, body, headers["Content-Type"]) == (200, PNG, "image/png")
    status, body, headers = await fetch(api, "GET", "/web/webshop/site?mode=redirect")
    assert (status, headers["Location"]) == (302, "https://example.org/")
    status, body, _ = await fetch(api, "GET", "/web/webshop/site?mode=teapot")
    assert (status, body) == (418, b"short and stout")
    status, body, headers = await fetch(api, "DELETE", "/web/webshop/site?mode=json")
    assert (status, json.loads(body)) == (201, {"made": 1})
    assert headers.getall("X-Many") == ["a", "b"]
    status, body, _ = await fetch(api, "PATCH", "/web/webshop/site?mode=fail")
    assert status == 502 and "broken on purpose" in json.loads(body)["error"]["message"]
    status, body, _ = await fetch(api, "HEAD", "/web/webshop/site?mode=html")
    assert (status, body) == (200, b"")

    # A request may not set what the platform passes in.
    status, body, _ = await fetch(api, "GET", "/web/webshop/site?__ow_method=put")
    assert status == 400, body

    # Preflight answered by the platform, with CORS headers on every answer.
    status, body, headers = await fetch(api, "OPTIONS", "/web/webshop/site")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"

    # Web calls are the owner's calls: in its activations and on its bill.
    _, bill, _ = await api.call("GET", "/v1/billing", key=key)
    assert bill["total"]["invocations"] >= 10


async def test_raw_mode_passes_query_and_body_unparsed(api: Api) -> None:
    key = await api.tenant("rawshop")
    await api.deploy("raw", ECHO, key=key, web=True, web_raw=True)
    status, body, _ = await fetch(api, "POST", "/web/rawshop/raw?name=Jane&x=1", json={"a": 1})
    args = json.loads(body)
    assert status == 200
    assert args["__ow_query"] == "name=Jane&x=1" and "name" not in args
    assert json.loads(base64.b64decode(args["__ow_body"])) == {"a": 1}


async def test_only_web_functions_answer_and_all_others_alike(api: Api) -> None:
    owner = await api.tenant("web-owner")
    other = await api.tenant("web-other")
    await api.deploy("hidden", ECHO, key=owner)  # not web
    await api.deploy("open", ECHO, key=owner, web=True)
    missing = await fetch(api, "GET", "/web/web-owner/nothing")
    not_web = await fetch(api, "GET", "/web/web-owner/hidden")
    wrong_tenant = await fetch(api, "GET", "/web/web-other/open")
    bad_name = await fetch(api, "GET", "/web/web-owner/..")
    assert missing[0] == not_web[0] == wrong_tenant[0] == 404
    assert missing[1] == not_web[1] == wrong_tenant[1]
    assert bad_name[0] == 404
    # The other tenant's key changes nothing: the URL names whose function it is.
    status, _, _ = await fetch(
        api, "GET", "/web/web-other/open", headers={"Authorization": f"Bearer {other}"}
    )
    assert status == 404
    status, _, _ = await fetch(api, "GET", "/web/web-owner/open")
    assert status == 200


async def test_a_web_secret_is_required_when_set(api: Api) -> None:
    key = await api.tenant("guarded")
    created = await api.deploy("vault", ECHO, key=key, web=True, web_secret="letmein")
    assert created["web_secret"] is True and "letmein" not in json.dumps(created)
    status, _, _ = await fetch(api, "GET", "/web/guarded/vault")
    assert status == 401
    wrong = {"X-Require-Whisk-Auth": "guess"}
    status, _, _ = await fetch(api, "GET", "/web/guarded/vault", headers=wrong)
    assert status == 401
    right = {"X-Require-Whisk-Auth": "letmein"}
    status, body, _ = await fetch(api, "GET", "/web/guarded/vault", headers=right)
    assert status == 200
    assert "x-require-whisk-auth" not in json.loads(body)["__ow_headers"]


async def test_web_calls_are_rate_limited_per_function(api: Api) -> None:
    key = await api.tenant("popular")
    await api.deploy("hot", ECHO, key=key, web=True, web_secret="s")
    # Wrong secrets cost no call, but count: guessing is as rate limited as calling.
    answers = await asyncio.gather(*(fetch(api, "GET", "/web/popular/hot") for _ in range(200)))
    statuses = [status for status, _, _ in answers]
    assert 401 in statuses and 429 in statuses
    limited = next(headers for status, _, headers in answers if status == 429)
    assert int(limited["Retry-After"]) >= 1


async def test_web_calls_count_against_the_owners_rate(api: Api) -> None:
    key = await api.tenant("slow-tenant")
    await api.deploy("page", ECHO, key=key, web=True)
    status, payload, _ = await api.call(
        "PUT", "/v1/tenants/slow-tenant/limits", {"rate_per_s": 0.01, "burst": 1}
    )
    assert status == 200, payload
    first = await fetch(api, "GET", "/web/slow-tenant/page")
    second = await fetch(api, "GET", "/web/slow-tenant/page")
    assert first[0] == 200 and second[0] == 429
    assert "Retry-After" in second[2]


HOSTILE = """
def handler(event):
    mode = event.get("mode")
    if mode == "split":  # try to end the head and smuggle a second response
        return {"headers": {"X-A": "1\\r\\nSet-Cookie: stolen=1"}, "body": "x"}
    if mode == "name":
        return {"headers": {"X-B\\r\\nSet-Cookie: stolen": "1"}, "body": "x"}
    if mode == "framing":  # framing is the gateway's, never the function's
        return {
            "headers": {"Content-Length": "999", "Transfer-Encoding": "chunked",
                        "Connection": "close"},
            "body": "short",
        }
    if mode == "status":
        return {"statusCode": 99999, "body": "x"}
    return {"body": "ok"}
"""


async def test_a_web_function_cannot_forge_the_http_framing(api: Api) -> None:
    key = await api.tenant("forger")
    await api.deploy("forge", HOSTILE, key=key, web=True)
    for mode in ("split", "name"):
        status, body, headers = await fetch(api, "GET", f"/web/forger/forge?mode={mode}")
        assert status >= 400, body  # refused as the function's error, nothing injected
        assert "Set-Cookie" not in headers  # the line break never reached the head
        assert "line break" in json.loads(body)["error"]["message"]
    status, body, headers = await fetch(api, "GET", "/web/forger/forge?mode=framing")
    assert status == 200 and body == b"short"
    assert headers["Content-Length"] == "5" and "Transfer-Encoding" not in headers
    status, body, _ = await fetch(api, "GET", "/web/forger/forge?mode=status")
    assert status >= 400 and status != 99999
    # The gateway still serves the next caller on the same kind of connection.
    status, body, _ = await fetch(api, "GET", "/web/forger/forge?mode=ok")
    assert (status, body) == (200, b"ok")
