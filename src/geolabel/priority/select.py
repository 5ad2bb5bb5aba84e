"""Choose the next regions to label: score order under spatial and class constraints.

Pure geometry (shapely) and numpy; every geometry is in one CRS. The rules, applied at
each of up to ``budget`` steps:

* **exclusion**: a candidate whose footprint overlaps an already-labelled footprint
  (interiors intersect; touching edges do not count) is never picked;
* **minimum distance**: no two picks are closer than ``min_distance`` (CRS units,
  footprint to footprint);
* **class balance** (optional): the next pick comes from the dominant class with the
  fewest picks so far (ties: the class whose best candidate scores higher);
* **spread**: ``none`` takes the highest score; ``k-center`` takes, among the
  ``pool_factor * budget`` best candidates, the one farthest from every pick so far
  (the first pick is the best score), falling back to score order when the pool is
  used up.

.. versionadded:: 0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
from shapely.ops import unary_union

__all__ = ["Candidate", "Pick", "excluded_mask", "select_regions"]

Spread = Literal["none", "k-center"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A region to choose from: its score (higher = label sooner), footprint, class."""

    score: float
    geometry: Any
    dominant_class: int = -1


@dataclass(frozen=True, slots=True)
class Pick:
    """A chosen candidate (index into the candidate list) and why it was chosen."""

    index: int
    rank: int
    reason: str


def excluded_mask(geometries: list[Any], labelled: list[Any]) -> npt.NDArray[np.bool_]:
    """True where a footprint's interior overlaps a labelled footprint (or contains a point).

    Args:
        geometries: candidate footprints.
        labelled: labelled footprints (any geometry type), same CRS.
    """
    geoms = np.asarray(geometries, dtype=object)
    if not len(labelled) or not len(geoms):
        return np.zeros(len(geoms), dtype=bool)
    union = unary_union([g for g in labelled if g is not None and not g.is_empty])
    if union.is_empty:
        return np.zeros(len(geoms), dtype=bool)
    return np.asarray(
        shapely.intersects(geoms, union) & ~shapely.touches(geoms, union), dtype=bool
    )


def select_regions(
    candidates: list[Candidate],
    budget: int,
    *,
    min_distance: float = 0.0,
    spread: Spread = "none",
    pool_factor: int = 4,
    balance_classes: bool = False,
    excluded: npt.NDArray[np.bool_] | None = None,
) -> list[Pick]:
    """Pick up to ``budget`` candidates (fewer when the constraints leave no more).

    Args:
        candidates: the candidates; NaN scores are never picked.
        budget: how many regions to pick.
        min_distance: minimum footprint distance between any two picks (CRS units).
        spread: ``"none"`` or ``"k-center"``.
        pool_factor: k-center chooses among the ``pool_factor * budget`` best candidates.
        balance_classes: alternate between dominant classes.
        excluded: candidates that must never be picked (see :func:`excluded_mask`).

    Returns:
        The picks in rank order (rank 1 first).

    Raises:
        ValueError: negative budget or distance, unknown spread.
    """
    if budget < 0 or min_distance < 0 or pool_factor < 1:
        raise ValueError("budget, min_distance must be >= 0 and pool_factor >= 1")
    if spread not in ("none", "k-center"):
        raise ValueError(f"unknown spread {spread!r}")
    n = len(candidates)
    if not n or not budget:
        return []
    scores = np.array([c.score for c in candidates], dtype=np.float64)
    geoms = np.asarray([c.geometry for c in candidates], dtype=object)
    classes = np.array([c.dominant_class for c in candidates])
    open_ = np.isfinite(scores)
    if excluded is not None:
        open_ &= ~excluded
    order = np.lexsort((np.arange(n), -np.where(np.isfinite(scores), scores, -np.inf)))
    in_pool = np.zeros(n, dtype=bool)
    pool_ids = [i for i in order if open_[i]][: pool_factor * budget]
    in_pool[pool_ids] = True
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    mind = np.full(n, np.inf)  # distance to the nearest pick
    counts: dict[int, int] = {}
    picks: list[Pick] = []
    while len(picks) < budget:
        ok = open_ & (mind >= min_distance) if min_distance > 0 else open_.copy()
        if not ok.any():
            break
        why = []
        if balance_classes:
            present = sorted(set(classes[ok].tolist()))
            best = {c: scores[ok & (classes == c)].max() for c in present}
            cls = min(present, key=lambda c: (counts.get(c, 0), -best[c], c))
            ok &= classes == cls
            why.append(f"class balance: class {cls}")
        if spread == "k-center" and picks and (ok & in_pool).any():
            cand = np.flatnonzero(ok & in_pool)
            far = mind[cand]
            i = int(cand[np.lexsort((rank_of[cand], -far))][0])
            why.append(f"k-center: {far.max():.1f} from the nearest pick")
        else:
            cand = np.flatnonzero(ok)
            i = int(cand[np.argmin(rank_of[cand])])
            why.append(f"score rank {int(rank_of[i]) + 1} of {n}")
        picks.append(Pick(i, len(picks) + 1, "; ".join(why)))
        open_[i] = False
        counts[int(classes[i])] = counts.get(int(classes[i]), 0) + 1
        mind = np.minimum(mind, shapely.distance(geoms, geoms[i]))
    return picks
