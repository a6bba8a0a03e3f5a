"""Which function a request calls, if any: under `nimbus serve --workers N` such a request
is served by the worker owning that function (`gateway/workers.py` relays it there), so a
function's calls reach its warm containers whichever API or URL they come by."""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.openwhisk.actions import ACTION
from gateway.openwhisk.web_actions import PATHS as OPENWHISK_WEB
from gateway.routes.web import PATHS as NATIVE_WEB
from gateway.web_functions import split_extension

INVOKE_ROUTE = "/v1/functions/{name}/invoke"


def _canonical(template: str) -> str:
    """A route template as aiohttp names its resource: `{path:.*}` is `{path}`."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", template)


# Route template -> (the match key naming the function, the methods that call it: None = all).
_CALLS: dict[str, tuple[str, frozenset[str] | None]] = {
    INVOKE_ROUTE: ("name", None),
    ACTION: ("name", frozenset({"POST"})),  # OpenWhisk's invoke; GET, PUT, DELETE are not calls
    **{_canonical(path): ("function", None) for path in NATIVE_WEB},
    **{_canonical(path): ("action", None) for path in OPENWHISK_WEB},
}


def called_function(route: str, method: str, match: Mapping[str, str]) -> str | None:
    """PURE: the name of the function a request to `route` (its template) calls, or None
    when it calls none. A web action's extension (`.json`, ...) is not part of its name."""
    found = _CALLS.get(route)
    if found is None:
        return None
    key, methods = found
    if methods is not None and method not in methods:
        return None
    name = match[key]
    return split_extension(name)[0] if key == "action" else name
