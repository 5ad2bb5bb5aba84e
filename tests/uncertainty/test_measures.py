"""Per-pixel measures and per-tile aggregation: known values and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geolabel.errors import ConfigError
from geolabel.uncertainty import (
    AggregateOptions,
    aggregate_boxes,
    aggregate_tile,
    compute_measure,
    entropy,
    least_confidence,
    margin,
    mutual_information,
)

MEASURES = (entropy, margin, least_confidence)


@pytest.mark.parametrize("c", [2, 3, 7])
@pytest.mark.parametrize("measure", MEASURES)
def test_uniform_is_one_and_one_hot_is_zero(measure, c: int) -> None:
    uniform = np.full((c, 2, 3), 1.0 / c, dtype=np.float32)
    one_hot = np.zeros((c, 2, 3), dtype=np.float32)
    one_hot[c - 1] = 1.0
    np.testing.assert_allclose(measure(uniform), 1.0, atol=1e-6)
    np.testing.assert_allclose(measure(one_hot), 0.0, atol=1e-6)


def test_known_values() -> None:
    p = np.array([0.7, 0.2, 0.1], dtype=np.float32).reshape(3, 1, 1)
    h = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)) / np.log(3)
    assert entropy(p)[0, 0] == pytest.approx(h, rel=1e-6)
    assert margin(p)[0, 0] == pytest.approx(1 - (0.7 - 0.2), rel=1e-6)
    assert least_confidence(p)[0, 0] == pytest.approx(0.3 * 3 / 2, rel=1e-6)
    # margin sees a tie between the two best even when a third class is present
    tie = np.array([0.45, 0.45, 0.1], dtype=np.float32).reshape(3, 1, 1)
    assert margin(tie)[0, 0] == pytest.approx(1.0)
    assert entropy(tie)[0, 0] < 1.0


def test_compute_measure_by_name_and_unknown_name() -> None:
    p = np.array([0.6, 0.4], dtype=np.float32).reshape(2, 1, 1)
    assert compute_measure("margin", p)[0, 0] == pytest.approx(0.8)
    with pytest.raises(ConfigError, match="unknown uncertainty measure 'bogus'"):
        compute_measure("bogus", p)


def test_mutual_information_zero_for_agreement_one_for_confident_disagreement() -> None:
    same = np.tile(
        np.array([0.8, 0.2], dtype=np.float32).reshape(1, 2, 1, 1), (5, 1, 2, 2)
    )
    np.testing.assert_allclose(mutual_information(same), 0.0, atol=1e-6)
    split = np.zeros((4, 2, 1, 1), dtype=np.float32)
    split[:2, 0] = 1.0
    split[2:, 1] = 1.0
    np.testing.assert_allclose(mutual_information(split), 1.0, atol=1e-6)
    # two 50/50 samples: uncertain but not disagreeing -> high entropy, zero MI
    coin = np.full((3, 2, 1, 1), 0.5, dtype=np.float32)
    assert mutual_information(coin)[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert entropy(coin.mean(axis=0))[0, 0] == pytest.approx(1.0)


@st.composite
def prob_maps(draw: st.DrawFn) -> np.ndarray:
    c = draw(st.integers(2, 6))
    raw = draw(arrays(np.float32, (c, 3, 4), elements=st.floats(0, 1, width=32)))
    raw = raw + 1e-6
    return (raw / raw.sum(axis=0, keepdims=True)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(prob_maps())
def test_measures_stay_in_unit_interval(p: np.ndarray) -> None:
    for m in MEASURES:
        v = m(p)
        assert v.shape == p.shape[1:] and v.dtype == np.float32
        assert np.all((v >= 0) & (v <= 1))


@settings(max_examples=40, deadline=None)
@given(prob_maps(), st.integers(2, 5))
def test_mutual_information_is_bounded_by_total_entropy(p: np.ndarray, t: int) -> None:
    rng = np.random.default_rng(0)
    samples = np.stack(
        [np.roll(p, int(rng.integers(0, p.shape[0])), axis=0) for _ in range(t)]
    )
    mi = mutual_information(samples)
    assert np.all(mi >= 0) and np.all(mi <= entropy(samples.mean(axis=0)) + 1e-5)


def test_aggregate_tile_ignores_nodata_and_keys_classes() -> None:
    unc = np.array([[0.1, 0.9, 0.8], [0.2, 1.0, 0.0]], dtype=np.float32)
    valid = np.array([[True, True, True], [True, False, False]])
    classes = np.array([[0, 1, 1], [0, 1, 2]])
    rec = aggregate_tile(
        {"entropy": unc, "bald": unc / 2},
        valid,
        classes,
        ("water", "Forest x", "urban"),
        AggregateOptions(quantile=0.9, threshold=0.5),
    )
    v = np.array([0.1, 0.9, 0.8, 0.2])
    assert rec["valid_fraction"] == pytest.approx(4 / 6)
    assert rec["mean"] == pytest.approx(v.mean())
    assert rec["q90"] == pytest.approx(np.quantile(v, 0.9))
    assert rec["frac_above"] == pytest.approx(0.5)
    assert rec["bald_mean"] == pytest.approx(v.mean() / 2)
    assert rec["unc_0_water"] == pytest.approx(0.15)
    assert rec["unc_1_forest_x"] == pytest.approx(0.85)
    assert np.isnan(rec["unc_2_urban"])  # its only pixel is nodata
    assert rec["frac_1_forest_x"] == pytest.approx(0.5)


def test_aggregate_all_nodata_tile() -> None:
    rec = aggregate_tile(
        {"entropy": np.ones((2, 2), np.float32)},
        np.zeros((2, 2), bool),
        np.zeros((2, 2), int),
        ("a", "b"),
    )
    assert rec["valid_fraction"] == 0 and np.isnan(rec["mean"]) and rec["frac_0_a"] == 0


def test_box_scores_in_the_ambiguous_band() -> None:
    rec = aggregate_boxes(np.array([0.95, 0.5, 0.35, 0.1, 0.72]), band=(0.3, 0.7))
    assert (rec["boxes"], rec["ambiguous"]) == (5, 2)
    assert rec["frac_ambiguous"] == pytest.approx(0.4)
    assert rec["mean_box_uncertainty"] == pytest.approx(
        np.mean([0.1, 1.0, 0.7, 0.2, 0.56])
    )
    empty = aggregate_boxes(np.array([]))
    assert empty["boxes"] == 0 and np.isnan(empty["mean_box_uncertainty"])
    with pytest.raises(ValueError, match="band"):
        aggregate_boxes(np.array([0.5]), band=(0.8, 0.2))
