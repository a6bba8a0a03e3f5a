"""The sample functions in functions/, loaded by path as the runtime loads them."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_main", FUNCTIONS / name / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wordcount = load("wordcount")
webhook_echo = load("webhook_echo")
hello = load("hello")


class Context:
    aws_request_id = "act-42"


# ---------------------------------------------------------------- wordcount


def test_wordcount_counts_case_insensitively_and_ranks() -> None:
    text = "The cat sat. THE hat? the Cat's hat, and the cat!"
    result = wordcount.handler({"text": text, "top": 3})
    assert result["words"] == 11
    assert result["unique"] == 6  # the, cat, sat, hat, cat's, and
    assert result["top"] == [
        {"word": "the", "count": 4},
        {"word": "cat", "count": 2},
        {"word": "hat", "count": 2},
    ]


def test_wordcount_keeps_inner_apostrophes_and_reads_any_script() -> None:
    counts = wordcount.count_words("Don\u2019t stop: don't! Übung übung café 42 l'eau _x_")
    assert counts["don't"] == 2
    assert counts["übung"] == 2 and counts["café"] == 1 and counts["42"] == 1
    assert counts["l'eau"] == 1 and counts["x"] == 1
    assert "_x_" not in counts


def test_wordcount_ties_are_alphabetical_and_top_defaults_to_ten() -> None:
    words = [f"w{i:02d}" for i in range(12)]
    result = wordcount.handler({"text": " ".join(reversed(words))})
    assert [t["word"] for t in result["top"]] == words[:10]


def test_wordcount_of_nothing() -> None:
    assert wordcount.handler({"text": "  ...  "}) == {"words": 0, "unique": 0, "top": []}


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"text": 5},
        {"text": "a", "top": 0},
        {"text": "a", "top": True},
        {"text": "a", "top": 1001},
    ],
)
def test_wordcount_rejects_bad_events(event: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\"(text|top)\""):
        wordcount.handler(event)


# ---------------------------------------------------------------- webhook_echo


def test_webhook_echo_returns_event_headers_id_and_time() -> None:
    before = datetime.now(UTC)
    event = {
        "method": "POST",
        "body": {"order": 7},
        "headers": {"Content-Type": "application/json", "X-Request-Id": "r1"},
    }
    result = webhook_echo.handler(event, Context())
    after = datetime.now(UTC)
    assert result["event"] == {"method": "POST", "body": {"order": 7}}
    assert result["headers"] == event["headers"]
    assert result["activation_id"] == "act-42"
    received = datetime.fromisoformat(result["received_at"])
    assert received.tzinfo is not None and before <= received <= after
    json.dumps(result)  # what the runtime must be able to send back


def test_webhook_echo_redacts_credentials_whatever_their_case() -> None:
    headers = {
        "authorization": "Bearer nmb_secret",
        "Cookie": "s=1",
        "X-API-Key": "k",
        "Accept": "*/*",
    }
    result = webhook_echo.handler({"headers": headers}, Context())
    assert result["headers"] == {
        "authorization": "[redacted]",
        "Cookie": "[redacted]",
        "X-API-Key": "[redacted]",
        "Accept": "*/*",
    }
    assert "nmb_secret" not in json.dumps(result)


def test_webhook_echo_without_headers() -> None:
    result = webhook_echo.handler({"a": 1, "headers": "not a mapping"}, None)
    assert result["event"] == {"a": 1} and result["headers"] == {}
    assert result["activation_id"] is None


# ---------------------------------------------------------------- the README lists them all


def test_every_sample_function_has_a_readme_line_and_a_deploy_command() -> None:
    readme = (FUNCTIONS / "README.md").read_text()
    samples = sorted(p.parent.name for p in FUNCTIONS.glob("*/main.py"))
    assert {"hello", "wordcount", "webhook_echo", "image_resize"} <= set(samples)
    for name in samples:
        assert f"| `{name}` |" in readme, name
        assert f"nimbus deploy {name} " in readme, name


def test_hello_still_greets() -> None:
    assert hello.handler({"name": "Ada"}) == {"greeting": "Hello, Ada!"}
