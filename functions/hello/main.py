"""The sample function `make up` deploys: greets whoever the event names."""

from typing import Any


def handler(event: dict[str, Any]) -> dict[str, str]:
    """Return a greeting for `event["name"]` (default: world)."""
    name = event.get("name", "world")
    print(f"greeting {name}")
    return {"greeting": f"Hello, {name}!"}
