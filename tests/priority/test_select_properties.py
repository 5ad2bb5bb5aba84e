"""Property tests: the constraints of the selection always hold."""

from __future__ import annotations

import itertools

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from geolabel.priority import Candidate, excluded_mask, select_regions


@st.composite
def candidate_sets(draw: st.DrawFn) -> list[Candidate]:
    n = draw(st.integers(0, 40))
    out = []
    for _ in range(n):
        x = draw(st.integers(0, 30)) * 10.0
        y = draw(st.integers(0, 30)) * 10.0
        size = draw(st.sampled_from([5.0, 10.0, 20.0]))
        score = draw(st.one_of(st.floats(0, 1), st.just(float("nan"))))
        out.append(
            Candidate(score, box(x, y, x + size, y + size), draw(st.integers(0, 3)))
        )
    return out


@st.composite
def labelled_sets(draw: st.DrawFn) -> list:
    geoms = []
    for _ in range(draw(st.integers(0, 4))):
        x, y = draw(st.floats(0, 300)), draw(st.floats(0, 300))
        if draw(st.booleans()):
            geoms.append(
                box(x, y, x + draw(st.floats(1, 80)), y + draw(st.floats(1, 80)))
            )
        else:
            geoms.append(Point(x, y))
    return geoms


@settings(max_examples=100, deadline=None)
@given(
    candidate_sets(),
    labelled_sets(),
    st.integers(0, 15),
    st.sampled_from([0.0, 5.0, 25.0, 60.0]),
    st.sampled_from(["none", "k-center"]),
    st.booleans(),
)
def test_picks_respect_distance_exclusion_and_budget(
    cands, labelled, budget, min_distance, spread, balance
) -> None:
    excl = excluded_mask([c.geometry for c in cands], labelled)
    picks = select_regions(
        cands,
        budget,
        min_distance=min_distance,
        spread=spread,
        balance_classes=balance,
        excluded=excl,
    )
    idx = [p.index for p in picks]
    assert len(idx) == len(set(idx)) <= budget
    assert [p.rank for p in picks] == list(range(1, len(picks) + 1))
    for i in idx:
        assert np.isfinite(cands[i].score) and not excl[i]
        for g in labelled:  # interiors of a pick and a labelled footprint never meet
            assert not shapely.relate_pattern(cands[i].geometry, g, "T********")
    for a, b in itertools.combinations(idx, 2):
        assert cands[a].geometry.distance(cands[b].geometry) >= min_distance
    # greedy fills the budget whenever an allowed candidate is left
    left = [
        i
        for i in range(len(cands))
        if i not in idx
        and np.isfinite(cands[i].score)
        and not excl[i]
        and all(
            cands[i].geometry.distance(cands[j].geometry) >= min_distance for j in idx
        )
    ]
    assert len(picks) == budget or not left


@settings(max_examples=50, deadline=None)
@given(candidate_sets(), st.integers(1, 10))
def test_without_constraints_picks_are_the_best_scores(cands, budget) -> None:
    picks = select_regions(cands, budget)
    finite = sorted((-c.score, i) for i, c in enumerate(cands) if np.isfinite(c.score))
    assert [p.index for p in picks] == [i for _, i in finite[:budget]]


@settings(max_examples=50, deadline=None)
@given(candidate_sets(), st.integers(1, 12))
def test_class_balance_keeps_counts_within_one(cands, budget) -> None:
    picks = select_regions(cands, budget, balance_classes=True)
    classes = {c.dominant_class for c in cands if np.isfinite(c.score)}
    counts = [sum(cands[p.index].dominant_class == k for p in picks) for k in classes]
    avail = {
        k: sum(c.dominant_class == k and np.isfinite(c.score) for c in cands)
        for k in classes
    }
    # a class is behind by more than one only when it ran out of candidates
    for k, n in zip(classes, counts, strict=True):
        assert n >= min(max(counts, default=0) - 1, avail[k])


def test_k_center_spreads_more_than_score_order() -> None:
    # a hot cluster in one corner, fair candidates everywhere else
    cands = [Candidate(0.9 + 0.001 * i, box(i, 0, i + 1, 1)) for i in range(10)]
    cands += [
        Candidate(0.5, box(x, y, x + 1, y + 1))
        for x in (0, 500, 1000)
        for y in (500, 1000)
    ]
    greedy = select_regions(cands, 4)
    spread = select_regions(cands, 4, spread="k-center", pool_factor=4)

    def min_gap(picks):
        return min(
            cands[a.index].geometry.distance(cands[b.index].geometry)
            for a, b in itertools.combinations(picks, 2)
        )

    assert spread[0].index == greedy[0].index == 9
    assert min_gap(spread) > 100 > min_gap(greedy)
