"""wordcount: how many words a text has, and which come up most.

Event: ``{"text": "...", "top": 10}`` (``top`` optional, 1-1000, default 10). A word is a
run of letters or digits, with inner apostrophes kept (``don't``, ``l'eau``), compared
case-insensitively; any script works. Ties in the top list are broken alphabetically, so
the answer is the same every time.

Returns ``{"words": 9, "unique": 7, "top": [{"word": "the", "count": 3}, ...]}``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

DEFAULT_TOP = 10
MAX_TOP = 1000
# Letters or digits (\w minus the underscore), with apostrophes only between them.
WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def count_words(text: str) -> Counter[str]:
    """Case-folded word counts; curly apostrophes count as straight ones."""
    return Counter(match.group().casefold().replace("\u2019", "'") for match in WORD.finditer(text))


def handler(event: dict[str, Any]) -> dict[str, Any]:
    """Count the words of `event["text"]` and list the `event["top"]` commonest."""
    text = event.get("text")
    if not isinstance(text, str):
        raise ValueError('the event needs "text", a string')
    top = event.get("top", DEFAULT_TOP)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise ValueError(f'"top" must be a whole number from 1 to {MAX_TOP}, got {top!r}')
    counts = count_words(text)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {
        "words": sum(counts.values()),
        "unique": len(counts),
        "top": [{"word": word, "count": n} for word, n in ranked],
    }
