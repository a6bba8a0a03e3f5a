"""OpenWhisk web actions at `/api/v1/web/{namespace}/{package}/{action}[.ext]`, fetched
with plain HTTP on real Docker: the extensions (JSON, HTML, a binary image, `.http` full
control), redirects and status codes, application errors projected as OpenWhisk does,
`require-whisk-auth`, and that only exported actions of the named namespace answer."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Api
from tests.integration.web_calls import ANSWERS, PNG, fetch
from tests.openwhisk_client.ow import Ow, is_ow_error, tenant_with_credential

SITE = (
    ANSWERS
    + """
def main(args):
    mode = args.get("mode")
    if answer(mode) is not None:
        return answer(mode)
    if mode == "html":
        return {"body": "<h1>hello</h1>"}
    if mode == "refused":
        return {"error": {"statusCode": 400, "body": "no such page"}}
    if mode == "fail":
        raise ValueError("broken on purpose")
    return {
        "method": args["__ow_method"],
        "path": args["__ow_path"],
        "mode": mode,
        "greeting": args.get("greeting"),
    }
"""
)
RAW = """
def main(args):
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-Query": args["__ow_query"]},
        "body": args["__ow_method"] + " " + args["__ow_body"],
    }
"""
ECHO = "def main(args):\n    return {'ok': True}\n"
NOT_FOUND = "The requested resource does not exist."


def web_export(**more: Any) -> list[dict[str, Any]]:
    """OpenWhisk's annotations for a web action, with more of them."""
    return [{"key": k, "value": v} for k, v in {"web-export": True, **more}.items()]


async def test_extensions_render_the_result_as_openwhisk_does(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owweb")
    await ow.put_action(
        "site",
        SITE,
        annotations=web_export(),
        parameters=[{"key": "greeting", "value": "hi"}],
    )
    base = "/api/v1/web/owweb/default/site"
    status, body, headers = await fetch(api, "GET", base + ".json/a/b?mode=plain")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)  # the request went in, with the action's default parameters
    assert doc == {"method": "get", "path": "/a/b", "mode": "plain", "greeting": "hi"}
    status, body, _ = await fetch(api, "POST", base + ".json", json={"mode": "posted"})
    assert status == 200 and json.loads(body)["mode"] == "posted"
    status, body, headers = await fetch(api, "GET", base + ".html?mode=html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body == b"<h1>hello</h1>"
    # No extension is `.http`: a base64 body of a binary type is decoded.
    status, body, headers = await fetch(api, "GET", base + "?mode=png")
    assert status == 200 and headers["Content-Type"] == "image/png" and body == PNG
    status, _, headers = await fetch(api, "GET", base + ".http?mode=redirect")
    assert status == 302 and headers["Location"] == "https://example.org/"
    status, body, _ = await fetch(api, "GET", base + ".http?mode=teapot")
    assert status == 418 and body == b"short and stout"
    # An application error answers its `error` property, rendered by the extension.
    status, body, _ = await fetch(api, "GET", base + ".http?mode=refused")
    assert status == 400 and body == b"no such page"
    status, body, _ = await fetch(api, "GET", base + ".json?mode=refused")
    assert status == 200 and json.loads(body) == {"statusCode": 400, "body": "no such page"}
    # The action failing is the facade's error, in OpenWhisk's shape.
    status, body, _ = await fetch(api, "GET", base + ".json?mode=fail")
    assert is_ow_error(status, json.loads(body), 502)
    status, body, _ = await fetch(api, "GET", base + ".html?mode=plain")  # no `body`
    assert is_ow_error(status, json.loads(body), 400)
    # Every call is an activation of the owner's, as any other call.
    status, listed = await ow.call("GET", ow.ns("activations"), name="site", count=True)
    assert status == 200 and listed["activations"] >= 9


async def test_http_gives_the_action_full_control_in_raw_mode(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owraw")
    await ow.put_action("raw", RAW, annotations=web_export(**{"raw-http": True}))
    status, body, headers = await fetch(
        api,
        "PUT",
        "/api/v1/web/owraw/default/raw.http?a=1&b=two",
        data=b"plain text",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 201 and body == b"put plain text"
    assert headers["Content-Type"].startswith("text/plain") and headers["X-Query"] == "a=1&b=two"


async def test_require_whisk_auth_asks_for_a_secret_or_credentials(api: Api) -> None:
    key, ow = await tenant_with_credential(api, "owguard")
    await ow.put_action("vault", ECHO, annotations=web_export(**{"require-whisk-auth": "s3"}))
    await ow.put_action("members", ECHO, annotations=web_export(**{"require-whisk-auth": True}))
    vault = "/api/v1/web/owguard/default/vault.json"
    status, body, _ = await fetch(api, "GET", vault)
    assert is_ow_error(status, json.loads(body), 401)
    status, body, _ = await fetch(api, "GET", vault, headers={"X-Require-Whisk-Auth": "guess"})
    assert is_ow_error(status, json.loads(body), 401)
    status, body, _ = await fetch(api, "GET", vault, headers={"X-Require-Whisk-Auth": "s3"})
    assert status == 200 and json.loads(body) == {"ok": True}
    members = "/api/v1/web/owguard/default/members.json"
    status, body, _ = await fetch(api, "GET", members)
    assert is_ow_error(status, json.loads(body), 401)
    status, body, _ = await fetch(api, "GET", members, headers=Ow(api, "no:body").headers())
    assert is_ow_error(status, json.loads(body), 401)
    for headers in (ow.headers(), {"Authorization": f"Bearer {key}"}):
        status, body, _ = await fetch(api, "GET", members, headers=headers)
        assert status == 200 and json.loads(body) == {"ok": True}


async def test_only_exported_actions_of_the_named_namespace_answer(api: Api) -> None:
    _, owner = await tenant_with_credential(api, "owpublic")
    _, other = await tenant_with_credential(api, "owstranger")
    await owner.put_action("open", ECHO, annotations=web_export())
    await owner.put_action("hidden", ECHO)  # not exported
    answers = [
        await fetch(api, "GET", path, headers=other.headers())
        for path in (
            "/api/v1/web/owpublic/default/hidden.json",  # exists, not a web action
            "/api/v1/web/owpublic/default/nothing.json",  # does not exist
            "/api/v1/web/owstranger/default/open.json",  # another namespace's name
            "/api/v1/web/_/default/open.json",  # no caller's namespace on a public URL
            "/api/v1/web/owpublic/somepackage/open.json",  # no packages here
            "/api/v1/web/owpublic/default/open.xml",  # not an extension: no such action
        )
    ]
    for status, body, _ in answers:
        doc = json.loads(body)
        assert is_ow_error(status, doc, 404) and doc["error"] == NOT_FOUND
    # An exported action is public, as on OpenWhisk: anyone may call it, with or without
    # credentials of their own.
    for headers in ({}, other.headers()):
        status, body, _ = await fetch(
            api, "GET", "/api/v1/web/owpublic/default/open.json", headers=headers
        )
        assert status == 200 and json.loads(body) == {"ok": True}
    # The same function answers at its native URL.
    status, body, _ = await fetch(api, "GET", "/web/owpublic/open")
    assert status == 200 and json.loads(body) == {"ok": True}
