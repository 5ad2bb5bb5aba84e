"""TypiClust picks (priority/typical.py) and the +typical cold start."""

from __future__ import annotations

import numpy as np
import pytest

from geolabel.errors import ConfigError
from geolabel.priority.strategy import SelectionContext, parse_strategy, select_units
from geolabel.priority.typical import TypicalPicker, kmeans
from geolabel.priority.units import UnitStats


def _blobs(
    rng: np.random.Generator, sizes: tuple[int, ...], outliers: int = 0
) -> np.ndarray:
    """Well separated 2-D Gaussian blobs of ``sizes`` members, then far outliers."""
    parts = [rng.normal((10.0 * k, 0.0), 0.5, (n, 2)) for k, n in enumerate(sizes)]
    parts.append(rng.uniform(-200, 200, (outliers, 2)))
    return np.concatenate(parts).astype(np.float32)


def _stats(feats: np.ndarray, score: np.ndarray | None = None) -> UnitStats:
    n = feats.shape[0]
    return UnitStats(
        score=np.ones(n, np.float32) if score is None else score.astype(np.float32),
        dominant_class=np.zeros(n, np.int64),
        centre=np.stack([np.arange(n), np.zeros(n)], 1).astype(np.float64),
        size=np.ones(n, np.int64),
        valid=np.ones(n, np.int64),
        embedding=feats,
    )


def test_kmeans_recovers_separated_blobs() -> None:
    rng = np.random.default_rng(0)
    x = _blobs(rng, (50, 60, 70))
    centres, assign = kmeans(x, 3, rng)
    truth = np.repeat([0, 1, 2], [50, 60, 70])
    for k in range(3):  # every true blob lands in exactly one cluster
        assert len(np.unique(assign[truth == k])) == 1
    assert len(np.unique(assign)) == 3
    assert np.allclose(np.sort(centres[:, 0]), [0, 10, 20], atol=0.5)


def test_picks_cover_clusters_largest_first_and_avoid_outliers() -> None:
    rng = np.random.default_rng(1)
    x = _blobs(rng, (200, 100, 50), outliers=5)
    picker = TypicalPicker.build(  # K = 8: the blobs and groups of outliers
        x, np.ones(len(x), bool), np.zeros((0, 2), np.float32), 8, rng
    )
    open_ = np.ones(len(x), bool)
    got = []
    for _ in range(4):
        i = picker.pick(open_)
        assert i is not None
        open_[i] = False
        got.append(i)
    blob = np.searchsorted(np.cumsum([200, 100, 50, 5]), got, side="right")
    # every blob before any outlier group (k-means may split the big blob in two),
    # the most populous first
    assert set(blob.tolist()) == {0, 1, 2} and blob[0] == 0
    for i, b in zip(got, blob, strict=True):  # the pick sits near its blob's centre
        assert abs(x[i, 0] - 10.0 * b) < 1.0 and abs(x[i, 1]) < 1.0


def test_labelled_clusters_are_covered_first() -> None:
    rng = np.random.default_rng(2)
    x = _blobs(rng, (200, 100))
    labelled = np.array([[0.0, 0.0]], np.float32)  # the big blob already has a label
    picker = TypicalPicker.build(x, np.ones(len(x), bool), labelled, 1, rng)
    i = picker.pick(np.ones(len(x), bool))
    assert i is not None and i >= 200  # the unlabelled blob, though smaller


def test_typiclust_strategy_and_typical_cold_share() -> None:
    rng = np.random.default_rng(3)
    x = _blobs(rng, (120, 80, 40, 30))
    sel = select_units(_stats(x), 4, parse_strategy("typiclust"), rng)
    blob = np.searchsorted(np.cumsum([120, 80, 40, 30]), sel.index, side="right")
    assert sorted(blob.tolist()) == [0, 1, 2, 3]
    assert all("typical" in r for r in sel.reason)
    # +typical: while cold, every other pick is typical instead of random
    score = np.zeros(len(x))
    score[-30:] = 1.0  # the uncertain ones all sit in the last blob
    strat = parse_strategy("margin+cold+typical")
    sel = select_units(
        _stats(x, score),
        6,
        strat,
        rng,
        context=SelectionContext(labelled_units=0, cold_labels=100),
    )
    reasons = sel.reason
    assert sum("cold start: most typical" in r for r in reasons) == 3
    assert sum("highest margin" in r for r in reasons) == 3
    # warm: no typical picks at all
    sel = select_units(
        _stats(x, score),
        6,
        strat,
        rng,
        context=SelectionContext(labelled_units=500, cold_labels=100),
    )
    assert not any("typical" in r for r in sel.reason)


def test_typiclust_takes_no_modifier() -> None:
    with pytest.raises(ConfigError, match="typiclust takes no modifier"):
        parse_strategy("typiclust+balance")
    assert parse_strategy("entropy+typical+cold").typical


def test_no_open_candidate_gives_no_typical_pick() -> None:
    rng = np.random.default_rng(4)
    x = _blobs(rng, (10,))
    picker = TypicalPicker.build(
        x, np.zeros(len(x), bool), np.zeros((0, 2), np.float32), 3, rng
    )
    assert picker.pick(np.zeros(len(x), bool)) is None
    sel = select_units(
        _stats(x), 3, parse_strategy("typiclust"), rng, available=np.zeros(10, bool)
    )
    assert sel.index == []
