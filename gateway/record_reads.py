"""PURE: which requests read (or delete) what calls leave behind: activations, their logs
and results, usage records and the bills made of them.

With `nimbus serve --workers N`, such a request first has every other worker commit the
records it still holds queued (`gateway/peer_commits.py`), so it sees every call already
answered, whichever worker ran it. Routes are named by method and route template
(`resource.canonical`); a test checks each is one the app serves.
"""

from __future__ import annotations

_OPENWHISK_ACTIVATIONS = "/api/v1/namespaces/{namespace}/activations"

RECORD_READS: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/v1/activations"),
        ("GET", "/v1/activations/{id}"),
        # A delete must find the call answered a moment ago, or it comes back after it.
        ("DELETE", "/v1/activations"),
        ("DELETE", "/v1/activations/{id}"),
        ("DELETE", "/v1/tenants/{name}"),
        ("GET", "/v1/billing"),
        ("GET", "/v1/admin/billing"),
        ("GET", "/v1/admin/economics"),
        ("GET", _OPENWHISK_ACTIVATIONS),
        ("GET", _OPENWHISK_ACTIVATIONS + "/{id}"),
        ("GET", _OPENWHISK_ACTIVATIONS + "/{id}/logs"),
        ("GET", _OPENWHISK_ACTIVATIONS + "/{id}/result"),
    }
)


def reads_records(method: str, route: str) -> bool:
    """Whether a request to `route` (a route template) by `method` reads calls' records."""
    return ("GET" if method == "HEAD" else method, route) in RECORD_READS
