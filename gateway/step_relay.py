"""A sequence's steps sent to their functions' owners under `nimbus serve --workers N`.

A sequence runs in its own owner; a step of a function another worker owns runs there
(`invoker/step_routing.py` decides, this module carries it). The step goes over the
owner's handover socket (`<run dir>/workers/<index>.sock`, reachable only from this
machine's workers) to `STEP_PATH`, which only requests that came over a handover socket
are answered on: on the public port it is a 404 like any unknown path. The owner runs the
step as the sequence chose it (activation id, version, args) with its own invoker
(`Operations.run_step`), so it is recorded, metered and billed there, once, and answers its
`InvokeResult`; a `Throttled` step answers 429 and is raised again in the sequence's worker.

`install` wires both sides into a worker's app; the app's invoker assembly picks the
relay up (`STEP_RELAY`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from gateway.keys import PLATFORM
from gateway.middleware import Handler
from gateway.peers import Sessions, handed_over, handover_socket, worker_url
from invoker.api import FunctionSpec, InvokeRequest, InvokeResult, Status, Throttled
from invoker.step_routing import Lost, Relay, Unreachable

log = logging.getLogger("nimbus.workers")

STEP_PATH = "/_nimbus/steps"
"""Where a worker takes steps from the others' sequences (only over its handover socket)."""
STEP_RELAY = web.AppKey[Relay]("step_relay")
STEP_GRACE_S = 60.0
"""Past its function's own timeout, how long a step may take in its owner (a cold start,
a wait for a free slot) before the sequence counts it lost."""
PARSE_IN_THREAD_BYTES = 256 * 1024  # a big step's JSON is decoded off the event loop
_TUPLES = frozenset({"secret_params", "sequence"})  # FunctionSpec's tuple fields
_MAPPINGS = frozenset({"env", "params", "annotations"})

SessionTo = Callable[[int], aiohttp.ClientSession]
"""The HTTP session to worker `index`, over its handover socket."""
HandedOver = Callable[[web.Request], bool]
"""Whether a request came in on this worker's handover socket (from another worker)."""


# ---- the wire (PURE) ----


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields, shallowly (`asdict` would deep-copy a step's whole args)."""
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def request_json(request: InvokeRequest) -> dict[str, Any]:
    """A step as sent to its owner."""
    spec = {
        key: dict(value) if key in _MAPPINGS else list(value) if key in _TUPLES else value
        for key, value in _fields(request.function).items()
    }
    args = request.args  # a step's input is the last step's result: an object or not
    return {
        **_fields(request),
        "function": spec,
        "args": dict(args) if isinstance(args, Mapping) else args,
    }


def request_from(body: Mapping[str, Any]) -> InvokeRequest:
    """A step as its owner received it. KeyError, TypeError or ValueError when malformed."""
    spec: dict[str, Any] = {
        key: tuple(value) if key in _TUPLES else value for key, value in body["function"].items()
    }
    return InvokeRequest(**{**body, "function": FunctionSpec(**spec)})


def result_json(result: InvokeResult) -> dict[str, Any]:
    """A step's result as its owner answers it."""
    return _fields(result)


def result_from(body: Mapping[str, Any]) -> InvokeResult:
    """A step's result as the sequence's worker reads it. KeyError, TypeError, ValueError."""
    return InvokeResult(**{**body, "status": Status(body["status"])})


async def _loads(raw: bytes) -> Any:
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(json.loads, raw)
    return json.loads(raw)


def _answer(status: int, body: Mapping[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body), content_type="application/json")


# ---- the sequence's side ----


def step_relay(sessions: SessionTo) -> Relay:
    """Send a step to its owner over the owner's handover socket (`Relay`)."""

    async def send(worker: int, request: InvokeRequest) -> InvokeResult:
        url = worker_url(worker, STEP_PATH)
        body = json.dumps(request_json(request))
        headers = {"Content-Type": "application/json"}
        limit = aiohttp.ClientTimeout(total=request.function.timeout_s + STEP_GRACE_S)
        try:
            async with sessions(worker).post(
                url, data=body, headers=headers, timeout=limit
            ) as answer:
                status, raw = answer.status, await answer.read()
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(str(exc)) from exc  # nothing was sent
        except TimeoutError as exc:  # the owner hangs: the step may have run
            raise Lost(f"worker {worker} did not answer a step in time") from exc
        except aiohttp.ClientError as exc:
            raise Lost(str(exc) or type(exc).__name__) from exc  # the step may have run
        if status == 404:  # a worker that takes no steps: it ran nothing
            raise Unreachable(f"worker {worker} takes no steps")
        try:
            payload = await _loads(raw)
            if status == 429:
                raise Throttled(payload["reason"], float(payload["retry_after_s"]))
            if status == 200:
                return result_from(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise Lost(f"worker {worker} answered a step with {status}: {exc}") from exc
        raise Lost(f"worker {worker} answered a step with {status}: {raw[:200]!r}")

    return send


# ---- the owner's side ----


def serve_steps(from_peer: HandedOver) -> Handler:
    """A middleware (placed first) answering `POST STEP_PATH` for requests that came over
    this worker's handover socket (`from_peer`): another worker asks, not a user (no
    credentials, never relayed or measured). Every other request goes on as usual: on the
    public port `STEP_PATH` is an unknown path, a 404."""

    @web.middleware
    async def steps(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != STEP_PATH or request.method != "POST" or not from_peer(request):
            return await handler(request)
        try:
            step = request_from(await _loads(await request.read()))
        except (KeyError, TypeError, ValueError) as exc:
            return _answer(400, {"error": f"not a step: {exc}"})
        try:
            result = await request.app[PLATFORM].ops.run_step(step)
        except Throttled as exc:
            return _answer(429, {"reason": exc.reason, "retry_after_s": exc.retry_after_s})
        except Exception:
            log.exception("a step handed over from another worker failed")
            return _answer(500, {"error": "the step failed in its owner"})
        return _answer(200, result_json(result))

    return steps  # type: ignore[return-value]  # a middleware is a handler wrapper


def install(app: web.Application, index: int, sessions: Sessions) -> None:
    """Worker `index`'s part: its sequences' steps go to their functions' owners over
    `sessions`, and it takes the others' steps on its handover socket. Before the app
    starts (its invoker assembly reads `STEP_RELAY`)."""
    own = str(handover_socket(sessions.run_dir, index))
    steps = serve_steps(lambda request: handed_over(request, own))
    app.middlewares.insert(0, steps)  # type: ignore[arg-type]
    app[STEP_RELAY] = step_relay(sessions.to)
