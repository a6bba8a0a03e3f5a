"""A large body's long strings are decoded in pieces, with the same value and the same 400s
as the strict parser gives for the whole body; base64 is decoded in pieces likewise."""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

import pytest

from gateway.errors import ApiError
from gateway.large_json import LONG_STRING_BYTES, long_strings, parse_large
from gateway.requests import parse_json
from gateway.schemas import B64_PIECE_CHARS, b64decode_strict

LONG = base64.b64encode(os.urandom(LONG_STRING_BYTES)).decode()  # 1.33 MiB of base64


class Spy:
    """The strict parser, remembering the size of each body it was given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, raw: bytes) -> Any:
        self.sizes.append(len(raw))
        return parse_json(raw)


def _same_as_whole(doc: str) -> Spy:
    raw = doc.encode()
    spy = Spy()
    assert parse_large(raw, spy) == json.loads(doc)
    return spy


def test_a_deploy_body_parses_with_its_zip_cut_out() -> None:
    doc = json.dumps({"handler": "main.handler", "code": {"zip": LONG}, "env": {"A": "x"}})
    spy = _same_as_whole(doc)
    assert spy.sizes and max(spy.sizes) < 200  # the parser never saw the long string


def test_several_long_strings_keep_their_places() -> None:
    other = "ü€" * (LONG_STRING_BYTES // 3)  # multi-byte characters across piece edges
    doc = json.dumps([LONG, {"x": [1, other, "short"]}, LONG[::-1]], ensure_ascii=False)
    raw = doc.encode()
    assert len(long_strings(raw)) == 3
    assert max(_same_as_whole(doc).sizes) < 300  # three marks and the rest


@pytest.mark.parametrize(
    "doc",
    [
        json.dumps({LONG: 1}),  # a key: left to the parser
        '{"k"  \n:' + json.dumps(LONG) + "}",  # a key long string's value, after spacing
        json.dumps({"a": LONG + "\n" + LONG}),  # escapes: left to the parser
        json.dumps({"a": 'quote " and \\', "b": LONG, "c": '\\"'}),  # escaped quotes before
        json.dumps({"a": "\u0000 looks like a mark:0", "b": LONG}),
    ],
)
def test_anything_else_gives_exactly_what_the_parser_gives(doc: str) -> None:
    _same_as_whole(doc)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "' + LONG.encode() + b'\x01"}',  # a control character in the long string
        b'{"a": "' + LONG.encode() + b'\xff"}',  # not UTF-8
        b'{"a": "' + LONG.encode() + b'",}',  # not JSON around it
        b'{"a": "' + LONG.encode() + b"}",  # never closed
        b'{"a": "' + LONG.encode() + b'", "b": NaN}',  # not a number JSON has
    ],
)
def test_a_refused_body_gets_the_same_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as whole:
        parse_json(raw)
    with pytest.raises(ApiError) as pieces:
        parse_large(raw, parse_json)
    assert pieces.value.message == whole.value.message
    assert pieces.value.field == whole.value.field == "body"


@pytest.mark.parametrize(
    "size", [0, 1, 2, 3, B64_PIECE_CHARS // 4 * 3, B64_PIECE_CHARS // 4 * 3 + 1, 3 * 2**20 + 2]
)
def test_base64_in_pieces_decodes_as_one_call_does(size: int) -> None:
    data = os.urandom(size)
    assert b64decode_strict(base64.b64encode(data).decode()) == data


@pytest.mark.parametrize(
    "encoded",
    [
        "QQ==" * (B64_PIECE_CHARS // 4) + "QUFB",  # padding that ends a piece, not the data
        "QUFB" * (B64_PIECE_CHARS // 4) + "QU!B",  # a character base64 has not, in piece 2
        "QUFB" * (B64_PIECE_CHARS // 4) + "QUF",  # a length no encoding has
        "QUFB" * (B64_PIECE_CHARS // 4) + "QU\nB",  # whitespace: refused, as validate=True
    ],
)
def test_base64_refused_in_pieces_is_refused_in_one_call(encoded: str) -> None:
    with pytest.raises(binascii.Error):
        base64.b64decode(encoded, validate=True)
    with pytest.raises(binascii.Error):
        b64decode_strict(encoded)
