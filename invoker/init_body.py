"""The /init request body, written in pieces so a large function never stalls the event loop.

A 48 MiB zip is a 64 MiB base64 string. `base64.b64encode` and `json.dumps` over it are
single C calls that hold the GIL for a quarter of a second on a small machine, so running
them in a thread alone would still stop the event loop (and every warm call it serves)
for that long. Here the body is written piece by piece, each piece a short hold of the
GIL handed over after it (`invoker.pieces`), into one buffer that becomes the body without
a final copy. The runtime client runs it in a thread when the code is large.
"""

from __future__ import annotations

import base64
import codecs
import io
import json
from collections.abc import Iterator, Mapping

from invoker.pieces import spans

OFF_LOOP_BYTES = 256 * 1024
"""Code larger than this is encoded in a thread; below it the hop costs more than the work."""
PIECE_BYTES = 3 * 2**16
"""192 KiB (about a millisecond of work): a multiple of 3, so base64 pieces join into one
encoding with no padding inside."""


def init_body(code: str | bytes, *, binary: bool, main: str, env: Mapping[str, str]) -> bytes:
    """The JSON body of /init: `{"value": {"code", "binary", "main", "env"}}`.

    `code` is either the raw code (bytes: base64-encoded here when `binary`, else UTF-8
    source) or the text as it goes on the wire (str: already base64 when `binary`).
    UnicodeDecodeError for source that is not UTF-8.
    """
    out = io.BytesIO()
    out.write(b'{"value":{"code":"')
    if isinstance(code, bytes) and binary:
        view = memoryview(code)
        for at, until in spans(0, len(view), PIECE_BYTES):
            out.write(base64.b64encode(view[at:until]))
    else:
        for text in _text_pieces(code):
            # ensure_ascii (the default) escapes per code point: pieces join into one string.
            out.write(json.dumps(text)[1:-1].encode("ascii"))
    rest = json.dumps({"binary": binary, "main": main, "env": dict(env)})
    out.write(b'",' + rest[1:].encode("ascii") + b"}")
    return out.getvalue()  # the buffer itself: no copy of the whole body


def _text_pieces(code: str | bytes) -> Iterator[str]:
    """The code as text, a piece at a time (bytes decoded as UTF-8, strictly)."""
    if isinstance(code, str):
        for at, until in spans(0, len(code), PIECE_BYTES):
            yield code[at:until]
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(code)
    for at, until in spans(0, len(view), PIECE_BYTES):
        yield decoder.decode(view[at:until])
    yield decoder.decode(b"", final=True)
