"""Tenant lifecycle over HTTP on a real gateway: listing, deletion with all it owns, keys."""

from __future__ import annotations

import asyncio
import time

from gateway.auth import mint_activation_token
from gateway.keys import PLATFORM, TOKEN_SECRET
from tests.conftest import Api, Running

ECHO = "def handler(e):\n    print('seen', e)\n    return {'tenant': 'doomed', 'n': e.get('n')}\n"
KEEP = "def handler(e):\n    return 'kept'\n"


async def _owns_everything(api: Api, key: str) -> None:
    """A tenant with a function, its history, a trigger and rule, a bucket and an object."""
    await api.deploy("echo", ECHO, key=key)
    status, _, _ = await api.invoke("echo", {"n": 1}, key=key)
    assert status == 200
    trig = {"type": "http"}
    assert (await api.call("PUT", "/v1/triggers/ping", trig, key=key))[0] == 201
    rule = {"trigger": "ping", "function": "echo"}
    assert (await api.call("PUT", "/v1/rules/ping-echo", rule, key=key))[0] == 201
    assert (await api.call("PUT", "/v1/buckets/stuff", key=key))[0] == 201
    put = await api.call("PUT", "/v1/buckets/stuff/objects/a.txt", key=key, data=b"secret")
    assert put[0] == 201, put


async def _empty_view(api: Api, key: str) -> None:
    """What a tenant with nothing sees everywhere."""
    assert (await api.call("GET", "/v1/functions", key=key))[1] == {"functions": []}
    assert (await api.call("GET", "/v1/activations", key=key))[1] == {"activations": []}
    assert (await api.call("GET", "/v1/triggers", key=key))[1] == {"triggers": []}
    assert (await api.call("GET", "/v1/rules", key=key))[1] == {"rules": []}
    assert (await api.call("GET", "/v1/buckets", key=key))[1] == {"buckets": []}
    _, bill, _ = await api.call("GET", "/v1/billing?from=2020-01-01", key=key)
    assert bill["total"]["invocations"] == 0, bill


async def test_admin_lists_tenants_without_keys(api: Api) -> None:
    key = await api.tenant("lister")
    status, body, _ = await api.call("GET", "/v1/tenants")
    assert status == 200
    (entry,) = [t for t in body["tenants"] if t["name"] == "lister"]
    assert set(entry) == {"name", "created"} and entry["created"] > 1.7e9
    assert key not in str(body)
    assert (await api.call("GET", "/v1/tenants", key=key))[0] == 403
    assert (await api.call("DELETE", "/v1/tenants/lister", key=key))[0] == 403


async def test_deleting_a_tenant_removes_everything_it_owns(platform: Running) -> None:
    api = platform.api
    doomed, bystander = await api.tenant("doomed"), await api.tenant("bystander")
    await _owns_everything(api, doomed)
    second = (await api.call("POST", "/v1/tenants/self/keys", key=doomed))[1]["api_key"]
    await api.deploy("keep", KEEP, key=bystander)
    assert (await api.invoke("keep", key=bystander))[1] == "kept"
    token = mint_activation_token(platform.app[TOKEN_SECRET], "doomed", time.time() + 300)
    assert (await api.call("GET", "/v1/functions", key=token))[0] == 200
    invoker = platform.app[PLATFORM].ops.invoker
    assert invoker.containers("doomed")

    status, body, _ = await api.call("DELETE", "/v1/tenants/doomed")
    assert status == 204, body
    for key in (doomed, second, token):  # every key, and a function's token, stop at once
        status, body, _ = await api.call("GET", "/v1/functions", key=key)
        assert status == 401, body
    names = [t["name"] for t in (await api.call("GET", "/v1/tenants"))[1]["tenants"]]
    assert "doomed" not in names and "bystander" in names
    assert (await api.call("DELETE", "/v1/tenants/doomed"))[0] == 404
    status, body, _ = await api.call("DELETE", "/v1/tenants/Not_A_Name")
    assert status == 400 and body["error"]["field"] == "name"
    for _ in range(100):  # its containers are retired (idle ones at once)
        if not invoker.containers("doomed"):
            break
        await asyncio.sleep(0.1)
    assert not invoker.containers("doomed")

    # The neighbour is untouched.
    assert (await api.invoke("keep", key=bystander))[1] == "kept"
    acts = (await api.call("GET", "/v1/activations", key=bystander))[1]["activations"]
    assert len(acts) == 2

    # A tenant created again under the name sees nothing of the old one.
    reborn = await api.tenant("doomed")
    await _empty_view(api, reborn)
    assert (await api.invoke("echo", key=reborn))[0] == 404
    assert (await api.call("GET", "/v1/buckets/stuff/objects/a.txt", key=reborn))[0] == 404
    # The provider's books still hold the old tenant's call.
    _, books, _ = await api.call("GET", "/v1/admin/billing?from=2020-01-01")
    assert books["tenants"]["doomed"]["total"]["invocations"] >= 1


async def test_a_tenant_rotates_its_keys(api: Api) -> None:
    first = await api.tenant("rotor")
    other = await api.tenant("nosy")
    assert (await api.call("GET", "/v1/functions", key=first))[0] == 200  # now cached

    status, created, _ = await api.call("POST", "/v1/tenants/self/keys", key=first)
    assert status == 201, created
    assert set(created) == {"key_id", "api_key", "created"}
    second = created["api_key"]
    assert (await api.call("GET", "/v1/functions", key=second))[0] == 200

    status, listed, _ = await api.call("GET", "/v1/tenants/self/keys", key=second)
    assert status == 200
    # Oldest first: the key made with the tenant, its OpenWhisk credential, the new key.
    assert [set(k) for k in listed["keys"]] == [{"key_id", "created"}] * 3
    assert second not in str(listed) and first not in str(listed)
    first_id, openwhisk_id = listed["keys"][0]["key_id"], listed["keys"][1]["key_id"]

    # Another tenant can neither see nor revoke rotor's keys.
    nosy_keys = (await api.call("GET", "/v1/tenants/self/keys", key=other))[1]["keys"]
    assert len(nosy_keys) == 2 and not {k["key_id"] for k in nosy_keys} & {first_id, openwhisk_id}
    assert (await api.call("DELETE", f"/v1/tenants/self/keys/{first_id}", key=other))[0] == 404
    assert (await api.call("GET", "/v1/functions", key=first))[0] == 200

    status, body, _ = await api.call("DELETE", f"/v1/tenants/self/keys/{first_id}", key=second)
    assert status == 204, body
    assert (await api.call("GET", "/v1/functions", key=first))[0] == 401  # cache or not
    assert (await api.call("GET", "/v1/functions", key=second))[0] == 200
    status, _, _ = await api.call("DELETE", f"/v1/tenants/self/keys/{openwhisk_id}", key=second)
    assert status == 204
    status, body, _ = await api.call(
        "DELETE", f"/v1/tenants/self/keys/{created['key_id']}", key=second
    )
    assert status == 409, body  # the last key stays
    assert (await api.call("GET", "/v1/functions", key=second))[0] == 200


async def test_only_an_api_key_manages_keys(platform: Running) -> None:
    api = platform.api
    await api.tenant("guarded")
    assert (await api.call("POST", "/v1/tenants/self/keys"))[0] == 403  # the admin key
    token = mint_activation_token(platform.app[TOKEN_SECRET], "guarded", time.time() + 300)
    assert (await api.call("POST", "/v1/tenants/self/keys", key=token))[0] == 403
    assert (await api.call("GET", "/v1/tenants/self/keys", key=token))[0] == 403
