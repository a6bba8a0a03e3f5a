"""The in-container runtime proxy: init and run, handlers, code kinds, and errors.

Each test starts runtimes/python/proxy.py with the host interpreter (proxy_process) on a
unix socket (as in production) or on a TCP port, and checks what the invoker relies on.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import uuid

from tests.unit import proxy_process
from tests.unit.proxy_process import Proxy, make_zip

proxy = proxy_process.proxy
unix_proxy = proxy_process.unix_proxy


ONE_ARG = """
def handler(args):
    print("adding", len(args["numbers"]), "numbers")
    return {"sum": sum(args["numbers"]), "greeting": "hello " + args["name"]}
"""

TWO_ARGS = """
def handler(event, context):
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
    }
"""


async def test_healthz_answers(proxy: Proxy) -> None:
    assert await proxy.get("/healthz") == (200, {"ok": True})


async def test_one_argument_handler_gets_the_args(proxy: Proxy) -> None:
    await proxy.init_source(ONE_ARG)
    numbers = [3, 14, 15, 92, 65]
    status, payload = await proxy.post(
        "/run", {"value": {"numbers": numbers, "name": "ada"}, "activation_id": "a1"}
    )
    assert status == 200, payload
    assert payload["result"] == {"sum": sum(numbers), "greeting": "hello ada"}
    assert payload["logs"] == [f"adding {len(numbers)} numbers"]


async def test_two_argument_handler_gets_event_and_context(proxy: Proxy) -> None:
    await proxy.init_source(TWO_ARGS)
    activation = uuid.uuid4().hex
    deadline = time.time() * 1000 + 30_000
    status, payload = await proxy.post(
        "/run",
        {
            "value": {"k": [1, 2]},
            "activation_id": activation,
            "deadline": deadline,
            "function_name": "resize",
            "memory_limit_mb": 256,
        },
    )
    assert status == 200, payload
    result = payload["result"]
    assert result["event"] == {"k": [1, 2]}
    assert result["request_id"] == activation
    assert result["function"] == "resize"
    assert result["memory"] == 256
    assert 25_000 < result["remaining"] <= 30_000


async def test_env_is_applied_before_the_import(unix_proxy: Proxy) -> None:
    source = (
        "import os\nAT_IMPORT = os.environ['GREETING']\ndef handler(a):\n    return AT_IMPORT\n"
    )
    await unix_proxy.init_source(source, env={"GREETING": "bonjour"})
    status, payload = await unix_proxy.post("/run", {"value": {}})
    assert (status, payload["result"]) == (200, "bonjour")


async def test_zip_with_package_and_vendored_module(proxy: Proxy) -> None:
    code = make_zip(
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": (
                "import vendored_lib\nfrom vendpkg.inner import triple\n"
                "def handler(args):\n"
                "    return {'shout': vendored_lib.shout(args['w']), 't': triple(args['n'])}\n"
            ),
            "vendored_lib.py": "def shout(word):\n    return word.upper() + '!'\n",
            "vendpkg/__init__.py": "",
            "vendpkg/inner.py": "def triple(n):\n    return 3 * n\n",
        }
    )
    status, payload = await proxy.post(
        "/init", {"value": {"code": code, "binary": True, "main": "pkg.mod.handler"}}
    )
    assert status == 200, payload
    status, payload = await proxy.post("/run", {"value": {"w": "quiet", "n": 7}})
    assert status == 200, payload
    assert payload["result"] == {"shout": "QUIET!", "t": 21}


async def test_zip_that_is_not_a_zip_is_refused(unix_proxy: Proxy) -> None:
    garbage = base64.b64encode(b"this is not a zip archive").decode()
    status, payload = await unix_proxy.post(
        "/init", {"value": {"code": garbage, "binary": True, "main": "main.handler"}}
    )
    assert status == 400
    assert "zip" in payload["error"]


async def test_logs_stay_with_their_activation_under_16_concurrent_runs(proxy: Proxy) -> None:
    source = (
        "import sys, time\n"
        "def handler(args):\n"
        "    began = time.monotonic()\n"
        "    for i in range(5):\n"
        "        print('out', args['id'], i)\n"
        "        print('err', args['id'], i, file=sys.stderr)\n"
        "        time.sleep(0.01)\n"
        "    return [args['id'], began, time.monotonic()]\n"
    )
    await proxy.init_source(source)
    ids = [uuid.uuid4().hex[:8] for _ in range(16)]
    answers = await asyncio.gather(*(proxy.post("/run", {"value": {"id": i}}) for i in ids))
    spans = []
    for activation, (status, payload) in zip(ids, answers, strict=True):
        assert status == 200, payload
        assert payload["result"][0] == activation
        spans.append(payload["result"][1:])
        expected = []
        for i in range(5):
            expected += [f"out {activation} {i}", f"err {activation} {i}"]
        assert payload["logs"] == expected
    # The runs really overlapped: one began before another had ended (one after another,
    # each would begin after the one before it ended).
    spans.sort()
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans


async def test_handler_exception_is_a_502_with_message_logs_and_traceback(proxy: Proxy) -> None:
    source = (
        "def check(n):\n"
        "    raise ValueError(f'bad input {n}')\n"
        "def handler(args):\n"
        "    print('about to check', args['n'])\n"
        "    check(args['n'])\n"
    )
    await proxy.init_source(source)
    status, payload = await proxy.post("/run", {"value": {"n": 7}})
    assert status == 502
    assert payload["error"] == "ValueError: bad input 7"
    assert payload["logs"] == ["about to check 7"]
    assert "in check" in payload["traceback"]
    assert "proxy.py" not in payload["traceback"]  # the user's frames, not ours
    # The proxy survives its function's failure.
    status, payload = await proxy.post("/run", {"value": {"n": 8}})
    assert (status, payload["error"]) == (502, "ValueError: bad input 8")


async def test_sys_exit_in_handler_is_an_error_not_an_exit(unix_proxy: Proxy) -> None:
    await unix_proxy.init_source("import sys\ndef handler(a):\n    sys.exit(3)\n")
    status, payload = await unix_proxy.post("/run", {"value": {}})
    assert status == 502
    assert payload["error"].startswith("SystemExit")
    assert unix_proxy.process.poll() is None


async def test_result_that_is_not_json_is_a_clear_502(unix_proxy: Proxy) -> None:
    await unix_proxy.init_source("def handler(a):\n    print('made a set')\n    return {1, 2}\n")
    status, payload = await unix_proxy.post("/run", {"value": {}})
    assert status == 502
    assert "not JSON-serialisable" in payload["error"]
    assert "set" in payload["error"]
    assert payload["logs"] == ["made a set"]


async def test_missing_handler_at_init_is_a_502_naming_it(proxy: Proxy) -> None:
    status, payload = await proxy.post(
        "/init", {"value": {"code": ONE_ARG, "binary": False, "main": "main.nope"}}
    )
    assert status == 502
    assert "main.nope" in payload["error"]
    assert "has no attribute 'nope'" in payload["error"]


async def test_code_that_does_not_import_is_a_502_naming_the_problem(unix_proxy: Proxy) -> None:
    source = "import definitely_not_installed_pkg\ndef handler(a):\n    return 1\n"
    status, payload = await unix_proxy.post(
        "/init", {"value": {"code": source, "binary": False, "main": "main.handler"}}
    )
    assert status == 502
    assert "definitely_not_installed_pkg" in payload["error"]
    assert "ModuleNotFoundError" in payload["error"]


async def test_run_before_init_and_second_init_are_refused(proxy: Proxy) -> None:
    status, payload = await proxy.post("/run", {"value": {}})
    assert status == 403
    assert "init" in payload["error"]
    await proxy.init_source(ONE_ARG)
    status, payload = await proxy.post(
        "/init", {"value": {"code": TWO_ARGS, "binary": False, "main": "main.handler"}}
    )
    assert status == 403
    # The first code is still the one that runs.
    status, payload = await proxy.post("/run", {"value": {"numbers": [1], "name": "x"}})
    assert payload["result"]["sum"] == 1


async def test_malformed_json_is_a_400(unix_proxy: Proxy) -> None:
    async with unix_proxy.session.post(unix_proxy.base + "/run", data=b"{nope") as resp:
        assert resp.status == 400
        assert "JSON" in (await resp.json())["error"]
