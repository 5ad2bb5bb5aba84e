"""``class_argmax`` is ``np.argmax(axis=0)``, ties and all."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geolabel.stitch.blend import class_argmax


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 12), st.integers(1, 9), st.integers(1, 9)),
        # few distinct values: many ties, where the first maximum must win
        elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    )
)
def test_matches_numpy_argmax(probs: np.ndarray) -> None:
    got = class_argmax(probs)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.argmax(probs, axis=0))


def test_more_than_256_classes_give_uint16() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((256, 5, 5)).astype(np.float32)
    assert class_argmax(p).dtype == np.uint8
    np.testing.assert_array_equal(class_argmax(p), np.argmax(p, axis=0))
    p = rng.random((300, 6, 5)).astype(np.float32)
    got = class_argmax(p)
    assert got.dtype == np.uint16 and got.max() > 255
    np.testing.assert_array_equal(got, np.argmax(p, axis=0))
