"""Auth and tenant isolation through the HTTP API."""

from __future__ import annotations

from tests.conftest import Api, Running

SOURCE = "def handler(e):\n    return 'mine'\n"


async def test_auth_required(api: Api) -> None:
    async with api.session.get(api.url + "/v1/functions") as resp:
        assert resp.status == 401
        assert "error" in await resp.json()
    status, _, _ = await api.call("GET", "/v1/functions", key="nmb_wrong")
    assert status == 401
    async with api.session.get(api.url + "/healthz") as resp:
        assert resp.status == 200


async def test_only_admin_creates_tenants(api: Api) -> None:
    key_a = await api.tenant("team-a")
    assert key_a.startswith("nmb_")
    status, payload, _ = await api.call("POST", "/v1/tenants", {"name": "team-x"}, key=key_a)
    assert status == 403, payload
    status, payload, _ = await api.call("POST", "/v1/tenants", {"name": "team-a"})
    assert status == 409, payload


async def test_tenants_cannot_see_or_touch_each_other(platform: Running) -> None:
    api = platform.api
    key_a, key_b = await api.tenant("alpha"), await api.tenant("beta")
    await api.deploy("secret", SOURCE, key=key_a)
    status, _, headers = await api.invoke("secret", key=key_a)
    assert status == 200
    activation = headers["X-Nimbus-Activation-Id"]

    assert (await api.call("GET", "/v1/functions/secret", key=key_b))[0] == 404
    assert (await api.call("GET", "/v1/functions", key=key_b))[1] == {"functions": []}
    assert (await api.invoke("secret", key=key_b))[0] == 404
    assert (await api.call("DELETE", "/v1/functions/secret", key=key_b))[0] == 404
    assert (await api.call("GET", f"/v1/activations/{activation}", key=key_b))[0] == 404
    assert (await api.call("GET", "/v1/activations", key=key_b))[1] == {"activations": []}

    # B deploying the same name gets its own function; A's is untouched.
    await api.deploy("secret", SOURCE.replace("mine", "theirs"), key=key_b)
    assert (await api.invoke("secret", key=key_b))[1] == "theirs"
    assert (await api.invoke("secret", key=key_a))[1] == "mine"
    assert (await api.call("GET", "/v1/functions/secret", key=key_a))[1]["version"] == 1


async def test_keys_are_stored_hashed(platform: Running) -> None:
    key = await platform.api.tenant("hashy")
    db = (platform.config.data_dir / "nimbus.db").read_bytes()
    assert key.encode() not in db
