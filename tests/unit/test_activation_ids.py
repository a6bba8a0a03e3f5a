"""Activation ids are unguessable and cheap; listing cursors hide the store's sequence."""

from __future__ import annotations

import itertools
import os
import re

from gateway.cursors import decode_cursor, encode_cursor
from invoker.api import ActivationIds

HEX32 = re.compile(r"[0-9a-f]{32}")


def _common_prefix(a: str, b: str) -> int:
    return next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))


def test_ids_are_32_hex_characters_and_unique() -> None:
    ids = ActivationIds()
    many = [ids.next() for _ in range(100_000)]
    assert all(HEX32.fullmatch(i) for i in many)
    assert len(set(many)) == len(many)


def test_consecutive_ids_share_no_prefix_and_no_counter() -> None:
    ids = ActivationIds()
    run = [ids.next() for _ in range(2_000)]
    # Random ids share a prefix of 8 hex characters once in 16**8 pairs; a per-process
    # prefix (the old scheme) shared 16 in every pair.
    assert max(_common_prefix(a, b) for a, b in itertools.pairwise(run)) < 8
    steps = {int(b, 16) - int(a, 16) for a, b in itertools.pairwise(run)}
    assert len(steps) == len(run) - 1  # no constant step: nothing counts calls
    # Another gateway (or the dispatcher) draws from the same kind of source, unrelated.
    other = ActivationIds().next()
    assert max(_common_prefix(other, i) for i in run[:100]) < 8


def test_the_kernel_is_asked_once_per_batch() -> None:
    reads: list[int] = []

    def source(n: int) -> bytes:
        reads.append(n)
        return os.urandom(n)

    ids = ActivationIds(source)
    for _ in range(ActivationIds.BATCH * 3):
        ids.next()
    assert reads == [16 * ActivationIds.BATCH] * 3


def test_a_forked_child_draws_fresh_ids() -> None:
    ids = ActivationIds()
    ids.next()  # the parent holds unused random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, ids.next().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert HEX32.fullmatch(child)
    assert child != ids.next()


KEY = bytes(range(32))


def test_a_cursor_resumes_after_its_sequence_number() -> None:
    for seq in (1, 12_345, 2**63 - 1):
        assert decode_cursor(KEY, "acme", encode_cursor(KEY, "acme", seq)) == seq


def test_a_cursor_hides_the_sequence_number() -> None:
    a, b = encode_cursor(KEY, "acme", 41), encode_cursor(KEY, "acme", 42)
    assert decode_cursor(KEY, "acme", a) == 41
    assert encode_cursor(KEY, "acme", 42) != b  # a fresh nonce every time
    assert _common_prefix(a, b) < 4


def test_a_cursor_of_another_tenant_key_or_a_forged_one_is_refused() -> None:
    cursor = encode_cursor(KEY, "acme", 42)
    assert decode_cursor(KEY, "globex", cursor) is None
    assert decode_cursor(bytes(32), "acme", cursor) is None
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    assert decode_cursor(KEY, "acme", flipped) is None
    for junk in ("", "x", "é" * 40, "!!!!", cursor + "AAAA"):
        assert decode_cursor(KEY, "acme", junk) is None
