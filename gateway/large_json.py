"""Strict JSON of a large body, its long strings decoded in pieces so the event loop runs on.

`json.loads` holds the GIL for the whole of one call. The 64 MiB base64 string of a deploy
body keeps it for ~100 ms on a small machine even in a thread, and every warm call the
event loop is serving waits that long. Here long strings are cut out of the body and
decoded a piece at a time (each a short hold of the GIL, handed over after it: see
`invoker.pieces`), the rest of the document goes through the strict parser as usual, and
the strings are put back where they were.

Only plain strings are cut out: at least `LONG_STRING_BYTES` long, no escapes, not an
object key. A body with anything unexpected, including any body the parser refuses, is
parsed whole by the strict parser, so the value and every 400 are exactly what it gives.
"""

from __future__ import annotations

import codecs
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from gateway.errors import ApiError
from invoker.pieces import spans

LONG_STRING_BYTES = 2**20
PIECE_BYTES = 2**18  # about a millisecond of work
MAX_STRINGS = 10_000
"""Past this many strings the walk (a Python loop per string) costs more than it saves."""

_KEY_AFTER = re.compile(rb"[ \t\n\r]*:")
_BACKSLASH = 0x5C


def parse_large(raw: bytes, parse: Callable[[bytes], Any]) -> Any:
    """`parse(raw)`, with the long plain strings of `raw` decoded in pieces.

    `parse` is the strict parser (raising ApiError for what it refuses).
    """
    found = long_strings(raw)
    if not found:
        return parse(raw)
    try:
        texts = [decode_plain(raw, start, end) for start, end in found]
    except ValueError:  # not UTF-8, or a control character: the parser says which
        return parse(raw)
    nonce = secrets.token_hex(16)  # no body can hold a mark it cannot guess
    marks = [f"\x00{nonce}:{i}" for i in range(len(found))]
    rest = _replaced(raw, found, [f'"\\u0000{nonce}:{i}"'.encode() for i in range(len(found))])
    try:
        value = parse(rest)
    except ApiError:  # the same refusal, in the words of the whole body
        return parse(raw)
    return _restored(value, dict(zip(marks, texts, strict=True)))


def long_strings(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of the content of each long plain string that is not an object key.

    Empty when there are none, too many strings to walk, or a string never closes.
    """
    found: list[tuple[int, int]] = []
    at = 0
    for _ in range(MAX_STRINGS):
        opening = raw.find(b'"', at)
        if opening < 0:
            return found
        closing = _closing_quote(raw, opening + 1)
        if closing < 0:
            return []  # unterminated: not JSON, the parser says so
        if (
            closing - opening - 1 >= LONG_STRING_BYTES
            and raw.find(b"\\", opening + 1, closing) < 0
            and not _KEY_AFTER.match(raw, closing + 1)
        ):
            found.append((opening + 1, closing))
        at = closing + 1
    return []


def _closing_quote(raw: bytes, start: int) -> int:
    """Where the string whose content begins at `start` ends, or -1."""
    at = start
    while True:
        quote = raw.find(b'"', at)
        if quote < 0:
            return -1
        before = quote
        while before > start and raw[before - 1] == _BACKSLASH:
            before -= 1
        if (quote - before) % 2 == 0:  # an even run of backslashes escapes only itself
            return quote
        at = quote + 1


def decode_plain(raw: bytes, start: int, end: int) -> str:
    """The string with no escapes at raw[start:end], decoded a piece at a time.

    ValueError for bytes that are not UTF-8 or for a control character.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    pieces = []
    for at, until in spans(start, end, PIECE_BYTES):
        text = decoder.decode(view[at:until])
        # The parser's own string scanner: it refuses what it would refuse in the whole.
        json.loads(f'"{text}"')
        pieces.append(text)
    pieces.append(decoder.decode(b"", final=True))
    return "".join(pieces)


def _replaced(raw: bytes, found: list[tuple[int, int]], marks: list[bytes]) -> bytes:
    """`raw` with each string found (and its quotes) replaced by its mark (a JSON string)."""
    parts, at = [], 0
    for (start, end), mark in zip(found, marks, strict=True):
        parts += [raw[at : start - 1], mark]
        at = end + 1
    parts.append(raw[at:])
    return b"".join(parts)


def _restored(value: Any, texts: dict[str, str]) -> Any:
    """`value` with every mark replaced by its string (depth is bounded by the parser)."""
    if isinstance(value, str):
        return texts.get(value, value)
    if isinstance(value, list):
        return [_restored(v, texts) for v in value]
    if isinstance(value, dict):
        return {k: _restored(v, texts) for k, v in value.items()}
    return value
