"""Functions that run a container image of their own: what is decided about the image.

PURE except `admitted`, which asks the driver (an `ImageHost`) and applies these rules:
which protocol the image speaks (declared, else detected by the `io.nimbus.runtime`
label a Nimbus runtime image carries and every image built FROM it inherits), which
uid:gid it runs as (its USER, resolved against its own /etc/passwd and /etc/group), and
whether that may run (root only where the admin allows it). docs/runtimes.md, "Your own
image", is the user's side of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from invoker.drivers.base import ContainerDriver, ImageFacts, ImageHost, ImageRejected
from invoker.runtimes import runtime_named
from invoker.store.functions import FunctionDraft

RUNTIME_LABEL = "io.nimbus.runtime"  # as invoker.images labels the runtime images
HTTP_PORT = 8080  # $PORT of an image on the http protocol (Knative's default)
FALLBACK_HANDLER = "main.handler"  # a nimbus image whose label names no known runtime


def protocol_of(labels: Mapping[str, str] | None, declared: str | None) -> str:
    """The protocol an image is spoken to: the declared one, else "nimbus" for an image
    built FROM a Nimbus runtime image (it carries the runtime label), else "http"."""
    if declared is not None:
        return declared
    return "nimbus" if (labels or {}).get(RUNTIME_LABEL) else "http"


def _entries(text: str | None) -> dict[str, tuple[int, int | None]]:
    """name -> (id, primary gid) of /etc/passwd (or name -> (gid, None) of /etc/group)."""
    found: dict[str, tuple[int, int | None]] = {}
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            gid = int(parts[3]) if len(parts) >= 4 and parts[3].isdigit() else None
            found.setdefault(parts[0], (int(parts[2]), gid))
    return found


def resolve_user(user: str, passwd: str | None, group: str | None) -> tuple[int, int]:
    """(uid, gid) of an image's USER (`name`, `uid`, `name:group`, `uid:gid`; "" is root),
    looked up in the image's own /etc/passwd and /etc/group. A uid with no entry and no
    group runs with its uid as gid, never the root group. ImageRejected for a name the
    image does not define."""
    name, _, grp = (user or "root").partition(":")
    users = _entries(passwd)
    if name.isdigit():
        uid, primary = int(name), next((g for u, g in users.values() if u == int(name)), None)
    elif name in users:
        uid, primary = users[name]
    elif name == "root":
        uid, primary = 0, 0
    else:
        raise ImageRejected(f"the image's USER {name!r} is not in its /etc/passwd")
    if not grp:
        return uid, primary if primary is not None else uid
    if grp.isdigit():
        return uid, int(grp)
    groups = _entries(group)
    if grp not in groups:
        raise ImageRejected(f"the image's USER group {grp!r} is not in its /etc/group")
    return uid, groups[grp][0]


def root_problem(image: str, uid: int, allow_root: bool) -> str | None:
    """Why an image may not run as it is (None: it may)."""
    if uid == 0 and not allow_root:
        return (
            f"image {image!r} runs as root (its USER is unset or root): give it a non-root "
            "USER (e.g. `USER 10001`), or ask the admin to allow root images"
        )
    return None


def with_facts(draft: FunctionDraft, facts: ImageFacts) -> FunctionDraft:
    """The draft as stored: its protocol settled, and a nimbus image's handler defaulted
    to its runtime's (PURE)."""
    if facts.protocol == "http":
        if draft.handler:
            raise ImageRejected(f"image {facts.image!r} speaks http: it takes no handler")
        return replace(draft, image_protocol="http")
    handler = draft.handler
    if not handler:
        runtime = runtime_named(facts.runtime or "")
        handler = runtime.default_handler if runtime is not None else FALLBACK_HANDLER
    return replace(draft, image_protocol="nimbus", handler=handler)


def image_hint(image: str) -> str:
    """How to get an image onto the engine, where nothing can be pulled."""
    return (
        f"image {image!r} is not on the container engine and is never pulled: build it "
        f"(`docker build -t {image} .`) or load it (`nimbus images import FILE.tar`) first"
    )


async def admitted(driver: ContainerDriver, draft: FunctionDraft) -> FunctionDraft:
    """A deploy of an image function checked against the engine that will run it.

    ImageRejected (a 400 for the deploy) when the driver cannot run images of its own
    (only the docker driver on this machine's engine does), the image is missing, or it
    runs as root where that is not allowed. A draft without an image passes unchanged.
    """
    if draft.image is None:
        return draft
    if not isinstance(driver, ImageHost):
        raise ImageRejected(
            f"this deployment's container driver ({driver.name}) cannot run images of "
            "your own: they need the docker driver on the gateway's own engine"
        )
    facts = await driver.admit_image(draft.image, draft.image_protocol)
    return with_facts(draft, facts)
