"""The labeller cost model and the summary statistics of a simulation."""

from __future__ import annotations

import numpy as np
import pytest

from geolabel.errors import ConfigError
from geolabel.labels import IGNORE_INDEX
from geolabel.priority.units import point_units, square_units, superpixel_units
from geolabel.simulation import CostModel, alc, bootstrap_ci, effort_to_reach, summarize
from geolabel.simulation.effort import answers, region_cost

COST = CostModel(
    point_seconds=2.0,
    superpixel_seconds=4.0,
    query_seconds=3.0,
    polygon_seconds=5.0,
    vertex_seconds=1.0,
    simplify=0.0,
)


def test_region_cost_counts_polygons_and_vertices() -> None:
    win = np.zeros((16, 16), np.uint8)
    assert region_cost(win, COST) == (3.0 + 5.0, 1, 0)  # one class: fill the square
    win[2:6, 2:6] = 1  # a square patch: one polygon of 4 vertices
    win[10:12, 10:14] = 2  # a rectangle: 4 vertices
    assert region_cost(win, COST) == (3.0 + 3 * 5.0 + 8 * 1.0, 3, 8)
    win[:] = IGNORE_INDEX
    assert region_cost(win, COST) == (3.0, 0, 0)  # nothing to label: the visit only
    with pytest.raises(ConfigError, match="vertex_seconds"):
        CostModel(vertex_seconds=float("nan"))


def test_answers_and_reveal_per_unit() -> None:
    oracle = np.zeros((8, 8), np.uint8)
    oracle[:, 4:] = 1
    oracle[0, 0] = IGNORE_INDEX
    valid = np.ones((8, 8), bool)
    pts = point_units(valid)
    a = answers(pts, oracle, COST)
    assert (a.seconds == 2.0).all()
    labels = np.full((8, 8), IGNORE_INDEX, np.uint8)
    assert a.reveal(pts, [int(pts.ids[3, 5]), int(pts.ids[0, 0])], oracle, labels) == 1
    assert labels[3, 5] == 1 and (labels != IGNORE_INDEX).sum() == 1
    sq = square_units(valid, 4)
    a = answers(sq, oracle, COST)
    assert a.seconds.tolist() == [8.0] * 4 and a.polygons.tolist() == [1] * 4
    labels[:] = IGNORE_INDEX
    assert a.reveal(sq, [0], oracle, labels) == 15  # the oracle's gap stays unlabelled
    # a superpixel gets its majority class everywhere, errors included
    img = np.zeros((1, 8, 8), np.float32)
    one = superpixel_units(img, valid, 8)
    assert one.count == 1
    a = answers(one, oracle, COST)
    assert a.patch_class is not None and a.seconds.tolist() == [4.0]
    labels[:] = IGNORE_INDEX
    a.reveal(one, [0], oracle, labels)
    assert set(np.unique(labels[oracle != IGNORE_INDEX])) == {int(a.patch_class[0])}


def test_alc_reach_and_bootstrap() -> None:
    curve = [(0.0, 0.2), (100.0, 0.4), (200.0, 0.5)]
    assert alc([(0.0, 0.3), (50.0, 0.3)], 50.0) == pytest.approx(0.3)
    assert alc(curve, 100.0) == pytest.approx(0.3)
    assert alc(curve, 150.0) == pytest.approx((0.3 * 100 + 0.425 * 50) / 150)
    assert effort_to_reach(curve, 0.1) == 0.0
    assert effort_to_reach(curve, 0.3) == pytest.approx(50.0)
    assert effort_to_reach(curve, 0.6) is None
    lo, hi = bootstrap_ci([1.0, 1.0, 1.0])
    assert lo == hi == 1.0
    lo, hi = bootstrap_ci([-1.0, 0.0, 1.0, 2.0, 3.0])
    assert lo < 1.0 < hi and lo >= -1.0 and hi <= 3.0


def _run(arm: str, seed: int, ys: list[float], step: float) -> dict[str, object]:
    return {
        "arm": arm,
        "seed": seed,
        "rounds": [
            {"seconds": k * step, "miou": y, "labelled_pixels": k}
            for k, y in enumerate(ys)
        ],
    }


def test_summarize_pairs_by_seed_and_bounds_unreached_baselines() -> None:
    runs = []
    for s in range(5):
        e = 0.01 * s
        runs.append(_run("good/points", s, [0.2 + e, 0.5 + e, 0.6 + e], 100.0))
        runs.append(_run("random/regions", s, [0.2 + e, 0.3 + e, 0.4 + e], 150.0))
    out = summarize(
        runs,
        [0.6] * 5,
        fractions=(0.9, 0.95),
        baselines=("random/regions",),
        default="good/points",
    )
    assert out["horizon_seconds"] == 200.0
    comp = out["comparisons"][0]
    assert comp["better"] and comp["alc_difference"]["ci95"][0] > 0
    # the baseline never reaches 0.57: the ratio is an upper bound against 300 s
    r95 = comp["effort_ratio_0.95"]
    assert r95["upper_bound"] and r95["ratio"] == pytest.approx(
        np.mean([100 + 100 * (0.07 - 0.01 * s) / 0.1 for s in range(5)]) / 300.0
    )
    assert comp["never_one_sd_below"] is True
    reach = out["arms"]["random/regions"]["effort_to_reach"]["0.95"]
    assert reach["reached"] == "0/5" and reach["seconds_lower_bound_mean"] == 300.0
