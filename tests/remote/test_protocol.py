"""V2 tensor coding (JSON and binary) and the client's small rules, without a server."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geolabel.errors import ConfigError
from geolabel.models import _v2
from geolabel.models._transport import RetryPolicy, _retry_after
from geolabel.models.http_ import concurrency_limit

_BIN = b'{"outputs": [{"name": "y", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}'
DTYPES = st.sampled_from(
    ["float32", "float16", "float64", "uint8", "int32", "int64", "bool"]
)


@settings(max_examples=60, deadline=None)
@given(
    arr=DTYPES.flatmap(
        lambda d: arrays(
            d, st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple)
        )
    ),
    binary=st.booleans(),
)
def test_tensors_round_trip_exactly(arr: np.ndarray, binary: bool) -> None:
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(
            arr, nan=0.0, posinf=1.0, neginf=-1.0
        )  # JSON has no NaN/inf
    body, headers = _v2.encode(
        {"id": "x"}, "outputs", [_v2.Tensor("t", arr)], binary=binary
    )
    doc, (t,) = _v2.decode(body, "outputs", headers.get(_v2.HEADER_LENGTH))
    assert doc["id"] == "x" and t.name == "t"
    assert t.array.dtype == arr.dtype and t.array.shape == arr.shape
    assert np.array_equal(t.array, arr)


@pytest.mark.parametrize(
    ("body", "header", "match"),
    [
        (b"{", None, "not JSON"),
        (b'{"outputs": {}}', None, "no 'outputs' list"),
        (
            b'{"outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [1]}]}',
            None,
            "do not fill",
        ),
        (
            b'{"outputs": [{"name": "y", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}',
            None,
            "unsupported",
        ),
        (
            b'{"outputs": [{"name": "y", "shape": [-1], "datatype": "FP32", "data": []}]}',
            None,
            "not a list of sizes",
        ),
        (_BIN + b"\x00\x00", str(len(_BIN)), "binary_data_size"),
        (b"{}", "99", "does not fit"),
    ],
)
def test_malformed_messages_are_named(
    body: bytes, header: str | None, match: str
) -> None:
    with pytest.raises(_v2.TensorError, match=match):
        _v2.decode(body, "outputs", header)


def test_retry_after_forms_and_budget() -> None:
    assert _retry_after("2.5") == 2.5
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert _retry_after("soon") is None and _retry_after(None) is None
    assert RetryPolicy(timeout=2, retries=3, max_backoff=1).budget == 4 * 2 + 3 * 1


def test_concurrency_cap_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOLABEL_HTTP_CONCURRENCY", "2")
    assert concurrency_limit() == 2
    monkeypatch.setenv("GEOLABEL_HTTP_CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match="GEOLABEL_HTTP_CONCURRENCY"):
        concurrency_limit()
