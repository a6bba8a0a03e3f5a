"""The proxy's own JSON codec agrees with the json module."""

from __future__ import annotations

import importlib.util
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.proxy_process import PROXY


def _load_proxy_module() -> Any:
    spec = importlib.util.spec_from_file_location("nimbus_proxy_under_test", PROXY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: main() runs under __main__
    return module


proxy_module = _load_proxy_module()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@given(json_values)
def test_proxy_json_codec_agrees_with_the_json_module(value: Any) -> None:
    encoded = proxy_module.json_dumps(value)
    assert encoded == json.dumps(value)
    assert proxy_module.json_loads(encoded.encode()) == json.loads(encoded)
    assert proxy_module.json_loads("  " + encoded + "\n") == value


@pytest.mark.parametrize("bad", [b"{nope", b"[1,]", b"1 2", b"", b'"unterminated'])
def test_proxy_json_loads_rejects_what_json_rejects(bad: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        proxy_module.json_loads(bad)


def test_proxy_json_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="set"):
        proxy_module.json_dumps({"a": {1, 2}})
    with pytest.raises(ValueError):
        proxy_module.json_dumps([math.inf], allow_nan=False)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        proxy_module.json_dumps(loop)
