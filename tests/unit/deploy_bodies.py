"""A deploy body through the gateway's validator: the draft it makes, or the 400 it gets
(shared by the tests of what a deploy body may hold)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ApiError
from gateway.schemas import function_draft
from invoker.store.base import FunctionDraft


def draft(**body: Any) -> FunctionDraft:
    """Function `fn` of tenant `t` as `body` deploys it (code up to 1 MiB)."""
    return function_draft("t", "fn", body, max_code_bytes=2**20)


def refused(**body: Any) -> ApiError:
    """The 400 that `body` gets."""
    with pytest.raises(ApiError) as exc:
        draft(**body)
    assert exc.value.status == 400
    return exc.value
