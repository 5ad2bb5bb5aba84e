"""Query units, their pooled statistics and the selection strategies (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from geolabel.errors import ConfigError
from geolabel.priority.strategy import (
    SelectionContext,
    parse_strategy,
    select_units,
)
from geolabel.priority.units import (
    UnitStats,
    point_units,
    pool_units,
    square_units,
    superpixel_units,
)


def test_square_units_clip_to_allowed_and_drop_mostly_invalid() -> None:
    valid = np.ones((40, 50), bool)
    valid[:10, :10] = False  # the first 10x10 square is all nodata
    allowed = np.zeros_like(valid)
    allowed[:, :35] = True  # a held-out strip on the right
    u = square_units(valid, 10, allowed=allowed, min_valid=0.25)
    # 4 rows of 3 squares + the half-square sliver at columns 30-34, less the nodata one
    assert u.count == 4 * 4 - 1
    assert (u.ids[:, 35:] == -1).all() and (u.ids[:10, :10] == -1).all()
    # the 5-px sliver (half a window) is a candidate, clipped at the strip
    assert (u.ids[10:20, 30:35] >= 0).all() and len(np.unique(u.ids[10:20, 30:35])) == 1
    sizes = np.bincount(u.ids[u.ids >= 0])
    assert sorted(set(sizes.tolist())) == [50, 100]


def test_point_units_stride_and_mask() -> None:
    valid = np.ones((6, 6), bool)
    valid[0, 0] = False
    u = point_units(valid, stride=2)
    assert u.count == 9 - 1 and u.ids[0, 0] == -1 and u.ids[0, 2] == 0
    assert (u.ids[1::2, :] == -1).all()


def test_superpixels_follow_the_image() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((3, 48, 48), np.float32)
    img[:, :, 24:] = 5.0
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    valid = np.ones((48, 48), bool)
    u = superpixel_units(img, valid, 8)
    assert 10 <= u.count <= 60
    for k in range(u.count):
        _, cols = u.members(k)
        assert cols.max() < 24 or cols.min() >= 24  # no segment straddles the edge


def test_pool_units_reduces_per_unit() -> None:
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    u = square_units(valid, 2)
    unc = np.arange(16, dtype=np.float32).reshape(4, 4)
    pred = np.zeros((4, 4), int)
    pred[2:, 2:] = 1
    feats = np.stack([unc, -unc])
    st = pool_units(u, valid, unc, pred, 2, feats)
    assert st.score[0] == pytest.approx((1 + 4 + 5) / 3)  # the nodata pixel is left out
    assert list(st.dominant_class) == [0, 0, 0, 1]
    assert st.valid.tolist() == [3, 4, 4, 4] and st.size.tolist() == [4, 4, 4, 4]
    assert st.embedding is not None and st.embedding[3, 1] == pytest.approx(-12.5)
    assert st.centre[3].tolist() == [2.5, 2.5]


def _stats(n: int, rng: np.random.Generator, classes: int = 3) -> UnitStats:
    return UnitStats(
        score=rng.random(n).astype(np.float32),
        dominant_class=rng.integers(0, classes, n),
        centre=rng.random((n, 2)) * 100,
        size=np.ones(n, np.int64),
        valid=np.ones(n, np.int64),
        embedding=rng.normal(size=(n, 4)).astype(np.float32),
    )


def test_parse_strategy_names_and_errors() -> None:
    auto = parse_strategy("auto")
    assert (auto.measure, auto.diverse, auto.balance, auto.power, auto.cold) == (
        "margin",
        True,
        True,
        True,
        True,
    )
    assert parse_strategy("entropy:k-center").diverse
    assert (
        parse_strategy("random").is_random and not parse_strategy("coreset").is_random
    )
    with pytest.raises(ConfigError, match="choose auto, random, coreset"):
        parse_strategy("entropi")
    with pytest.raises(ConfigError, match=r"unknown modifier fancy"):
        parse_strategy("margin+fancy")
    with pytest.raises(ConfigError, match="random takes only"):
        parse_strategy("random+diverse")
    assert parse_strategy("random+balance").is_random


def test_plain_measure_takes_the_highest_scores_and_skips_unavailable() -> None:
    st = _stats(50, np.random.default_rng(0))
    avail = np.ones(50, bool)
    best = int(np.argmax(st.score))
    avail[best] = False
    sel = select_units(
        st, 5, parse_strategy("margin"), np.random.default_rng(0), available=avail
    )
    want = [i for i in np.argsort(-st.score) if i != best][:5]
    assert sel.index == want


def test_random_is_seeded_and_respects_spacing() -> None:
    st = _stats(400, np.random.default_rng(1))
    s = parse_strategy("random")
    ctx = SelectionContext(min_distance=15.0)
    a = select_units(st, 10, s, np.random.default_rng(5), context=ctx).index
    b = select_units(st, 10, s, np.random.default_rng(5), context=ctx).index
    assert a == b and len(set(a)) == 10
    c = st.centre[a]
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(10) * 1e9
    assert d.min() >= 15.0


def test_balance_starts_with_the_least_labelled_class_and_rotates() -> None:
    st = _stats(300, np.random.default_rng(2))
    ctx = SelectionContext(labelled_counts=np.array([10, 0, 5]))
    sel = select_units(
        st, 6, parse_strategy("margin+balance"), np.random.default_rng(0), context=ctx
    )
    classes = st.dominant_class[sel.index].tolist()
    # class 1 until it passes class 2's 5 labels, then 2 and 1 alternate
    assert classes[:5] == [1, 1, 1, 1, 1] and classes[5] in (1, 2)
    assert "class 1 has the fewest labels" in sel.reason[0]


def test_diverse_takes_the_farthest_of_the_uncertain_pool() -> None:
    st = _stats(200, np.random.default_rng(3))
    ref = st.embedding[:1].copy()  # type: ignore[index]
    ctx = SelectionContext(labelled_embedding=ref, pool_factor=4)
    sel = select_units(
        st, 1, parse_strategy("margin+diverse"), np.random.default_rng(0), context=ctx
    )
    pool = np.argsort(-st.score)[:4]
    dist = np.linalg.norm(st.embedding[pool] - ref, axis=1)  # type: ignore[index]
    assert sel.index == [int(pool[np.argmax(dist)])]


def test_cold_start_mixes_in_a_random_share_until_enough_labels() -> None:
    st = _stats(500, np.random.default_rng(4))
    s = parse_strategy("margin+cold")
    cold = select_units(
        st, 10, s, np.random.default_rng(0), context=SelectionContext(labelled_units=5)
    )
    assert sum("random share" in r for r in cold.reason) == 5
    warm = select_units(
        st,
        10,
        s,
        np.random.default_rng(0),
        context=SelectionContext(labelled_units=500),
    )
    assert not any("random share" in r for r in warm.reason)


def test_power_sampling_prefers_but_does_not_only_take_the_top() -> None:
    st = _stats(1000, np.random.default_rng(6))
    s = parse_strategy("margin+power")
    picks = np.concatenate(
        [select_units(st, 20, s, np.random.default_rng(k)).index for k in range(10)]
    )
    top = set(np.argsort(-st.score)[:20].tolist())
    assert st.score[picks].mean() > st.score.mean() + 0.1  # drawn ~ score
    assert len(set(picks.tolist()) - top) > 20  # not a deterministic top-k


def test_context_mean_prefers_blobs_to_one_pixel_edges() -> None:
    from geolabel.priority.units import context_mean

    score = np.zeros((20, 20), np.float32)
    score[:, 5] = 1.0  # a one-pixel-wide uncertain edge
    score[12:17, 12:17] = 0.8  # a 5x5 blob of confusion
    valid = np.ones_like(score, bool)
    valid[0, :] = False  # nodata is neither counted nor scored
    out = context_mean(score, valid)
    assert np.isnan(out[0]).all()
    assert out[14, 14] == pytest.approx(0.8)
    assert out[10, 5] == pytest.approx(0.2)  # the edge averages out
    assert np.unravel_index(np.nanargmax(out), out.shape) == (14, 14)
    assert parse_strategy("margin+context").context
