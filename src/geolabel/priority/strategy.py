"""Which units to label next: uncertainty, feature-space diversity, class balance and a
cold-start rule, combined in one greedy loop (the same code for ``prioritize`` and
``simulate`` and for every query unit).

Strategy names: ``NAME`` or ``MEASURE[+diverse][+balance][+cold]``.

* ``random``: uniform among the open candidates (the baseline); ``random+balance``
  draws uniformly within the predicted class that has the fewest labels;
* ``coreset``: diversity only: k-center greedy in the model's feature space (the
  candidate farthest from everything labelled or picked; Sener & Savarese 2018);
* ``typiclust``: typicality only: the densest member of the most populous cluster
  that holds the fewest labels (:mod:`geolabel.priority.typical`; Hacohen et al. 2022);
* ``entropy``, ``margin``, ``least-confidence``, ``bald`` (MC dropout mutual
  information), ``ensemble`` (disagreement of ensemble members): the highest mean score;
* ``+diverse``: among the ``pool_factor`` x quota most uncertain candidates, take the one
  farthest in feature space from every labelled or already picked unit (uncertainty
  first, then core-set diversity inside the uncertain pool, as Cluster-Margin and
  PixelPick's spread do);
* ``+balance``: each next pick comes from the predicted class that has the fewest labels
  so far (labelled before plus picked now): mIoU weighs every class alike, and random
  places under-sample rare classes;
* ``+cold``: while fewer than ``cold_labels`` units are labelled, a share
  (``cold_share``) of the picks, interleaved, is drawn at random, because a model
  trained on a few clicks ranks its uncertainty badly; with ``+typical`` that share
  is TypiClust's typical picks instead of random ones;
* ``+context``: a point's score is the mean uncertainty of its 5 x 5 neighbourhood
  (:func:`~geolabel.priority.units.context_mean`), so clicks land inside blobs of
  confusion rather than on one-pixel class edges (other units already pool);
* ``auto`` = ``margin+diverse+balance+power+cold+typical``: the default of
  ``geolabel prioritize``.

The legacy spelling ``MEASURE:k-center`` means ``MEASURE+diverse``.

.. versionadded:: 0.2
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from geolabel.errors import ConfigError
from geolabel.priority.typical import TypicalPicker
from geolabel.priority.units import UnitStats

__all__ = [
    "DEFAULT_STRATEGY",
    "MEASURE_NAMES",
    "Selection",
    "SelectionContext",
    "Strategy",
    "is_alias",
    "parse_strategy",
    "select_units",
]

MEASURE_NAMES = ("entropy", "margin", "least-confidence", "bald", "ensemble")
DEFAULT_STRATEGY = "auto"
_ALIASES = {"auto": "margin+diverse+balance+power+cold+typical"}
_MODIFIERS = ("diverse", "balance", "cold", "power", "typical", "context")
#: the most candidates the diversity-only step compares (a seeded subsample beyond)
MAX_DIVERSITY_POOL = 4096
#: the most labelled feature vectors kept as core-set centres
MAX_REFERENCE = 2048


@dataclass(frozen=True, slots=True)
class Strategy:
    """A parsed strategy (see the module docstring)."""

    name: str
    measure: str | None
    diverse: bool = False
    balance: bool = False
    cold: bool = False
    power: bool = False
    typical: bool = False
    context: bool = False

    @property
    def is_random(self) -> bool:
        """Uniform picks (no score, no diversity)."""
        return self.measure is None and not self.diverse and not self.typical


def is_alias(name: str) -> bool:
    """Whether ``name`` (e.g. ``auto``) stands for another spelling that may change."""
    return name in _ALIASES


def parse_strategy(name: str) -> Strategy:
    """Parse a strategy name.

    Raises:
        ConfigError: unknown measure or modifier, naming the valid ones.
    """
    spec = _ALIASES.get(name, name)
    if ":" in spec:  # legacy MEASURE:k-center
        head, _, spread = spec.partition(":")
        if spread != "k-center":
            raise ConfigError(
                f"strategy {name!r}: unknown spread {spread!r}; use k-center"
            )
        spec = f"{head}+diverse"
    head, *mods = spec.split("+")
    if head not in (*MEASURE_NAMES, "random", "coreset", "typiclust"):
        raise ConfigError(
            f"unknown strategy {name!r}: unknown measure {head!r}; choose auto, "
            f"random, coreset, typiclust or one of {', '.join(MEASURE_NAMES)} "
            f"(optionally +{', +'.join(_MODIFIERS)})"
        )
    bad = [m for m in mods if m not in _MODIFIERS]
    if bad:
        raise ConfigError(
            f"strategy {name!r}: unknown modifier {', '.join(bad)}; "
            f"choose from +{', +'.join(_MODIFIERS)}"
        )
    if head == "random":
        if set(mods) - {"balance"}:
            raise ConfigError(f"strategy {name!r}: random takes only +balance")
        return Strategy(name, None, balance="balance" in mods)
    if head == "coreset":
        return Strategy(name, None, True, "balance" in mods, False)
    if head == "typiclust":
        if mods:
            raise ConfigError(f"strategy {name!r}: typiclust takes no modifier")
        return Strategy(name, None, typical=True)
    return Strategy(
        name,
        head,
        "diverse" in mods,
        "balance" in mods,
        "cold" in mods,
        "power" in mods,
        "typical" in mods,
        "context" in mods,
    )


@dataclass(frozen=True, slots=True)
class SelectionContext:
    """What is known besides the candidates.

    Attributes:
        labelled_counts: per class, labelled pixels so far (a pick adds its valid
            pixels to its predicted class); ``None``: none yet.
        labelled_embedding: ``(m, d)`` feature vectors of labelled pixels/units
            (core-set centres), or ``None``.
        labelled_units: how many units are labelled (the cold-start rule).
        min_distance: no two picks closer than this (centre to centre, in the units
            of :attr:`UnitStats.centre`).
        pool_factor: the uncertain pool is this many times the per-class quota.
        cold_labels: the cold-start rule applies below this many labelled units.
        cold_share: share of the budget chosen by diversity alone while cold.
    """

    labelled_counts: npt.NDArray[np.int64] | None = None
    labelled_embedding: npt.NDArray[np.float32] | None = None
    labelled_units: int = 0
    min_distance: float = 0.0
    pool_factor: int = 10
    cold_labels: int = 100
    cold_share: float = 0.5


@dataclass(slots=True)
class Selection:
    """Picked unit indexes in rank order, with a reason each."""

    index: list[int] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)


def _features(stats: UnitStats) -> npt.NDArray[np.float32]:
    """Feature vectors per unit; the centre (spatial k-center) when the model gave none."""
    if stats.embedding is not None:
        return stats.embedding
    return stats.centre.astype(np.float32)


def _min_dist(
    x: npt.NDArray[np.float32], ref: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Euclidean distance of each row of ``x`` to its nearest row of ``ref`` (inf if none)."""
    if ref.shape[0] == 0:
        return np.full(x.shape[0], np.inf, np.float32)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ ref.T + (ref * ref).sum(1)[None, :]
    out: npt.NDArray[np.float32] = np.sqrt(np.maximum(d2.min(1), 0.0)).astype(
        np.float32
    )
    return out


def select_units(
    stats: UnitStats,
    budget: int,
    strategy: Strategy,
    rng: np.random.Generator,
    *,
    available: npt.NDArray[np.bool_] | None = None,
    context: SelectionContext | None = None,
) -> Selection:
    """Pick up to ``budget`` units (fewer when the candidates run out).

    Args:
        stats: pooled per-unit statistics (:func:`~geolabel.priority.units.pool_units`).
        budget: picks wanted.
        strategy: the parsed strategy.
        rng: random source (random picks, subsamples, ties).
        available: per unit, may be picked (default: every unit with valid pixels).
        context: labels so far and the spacing rules.
    """
    ctx = context or SelectionContext()
    open_ = (stats.valid > 0) if available is None else available & (stats.valid > 0)
    score = np.nan_to_num(stats.score.astype(np.float64), nan=-np.inf)
    if strategy.measure is not None:
        open_ &= np.isfinite(score)
    feats = _features(stats)
    num_classes = int(max(stats.dominant_class.max(initial=0) + 1, 1))
    if ctx.labelled_counts is not None:
        num_classes = max(num_classes, ctx.labelled_counts.size)
    counts = np.zeros(num_classes, np.float64)
    if ctx.labelled_counts is not None:
        counts[: ctx.labelled_counts.size] += ctx.labelled_counts
    ref = np.zeros((0, feats.shape[1]), np.float32)
    if ctx.labelled_embedding is not None and ctx.labelled_embedding.size:
        ref = ctx.labelled_embedding.astype(np.float32)
        if ref.shape[0] > MAX_REFERENCE:
            ref = ref[rng.choice(ref.shape[0], MAX_REFERENCE, replace=False)]
    share = (
        ctx.cold_share
        if strategy.cold and ctx.labelled_units < ctx.cold_labels
        else 0.0
    )
    typical = (
        TypicalPicker.build(feats, open_, ref, budget, rng)
        if strategy.typical and (strategy.measure is None or share > 0)
        else None
    )
    out = Selection()
    picked_class = np.zeros(num_classes, np.float64)
    cls = stats.dominant_class
    # open candidates per predicted class, kept up to date as picks close candidates
    open_by_class = np.bincount(cls[open_ & (cls >= 0)], minlength=num_classes)
    per_class = max(1, math.ceil(budget / max(1, int((open_by_class > 0).sum()))))
    for k in range(budget):
        if not open_.any():
            break
        cand = open_
        why = ""
        if strategy.balance and open_by_class.any():
            cls_open = np.flatnonzero(open_by_class)
            load = counts[cls_open] + picked_class[cls_open]
            c = int(cls_open[np.argmin(load)])
            cand = open_ & (cls == c)
            why = f"class {c} has the fewest labels ({int(load.min())}); "
        idx = np.flatnonzero(cand)
        cold_turn = math.floor((k + 1) * share) > math.floor(k * share)  # interleaved
        typical_pick = (
            typical.pick(open_)
            if typical is not None and (cold_turn or strategy.measure is None)
            else None
        )
        if typical_pick is not None:
            i = typical_pick
            why = ("cold start: " if cold_turn else "") + (
                "most typical member of the largest cluster with the fewest labels"
            )
        elif cold_turn:
            i = int(rng.choice(np.flatnonzero(open_)))
            why = "cold start: random share"
        elif strategy.is_random or (strategy.typical and strategy.measure is None):
            i = int(rng.choice(idx))
            why += "random draw"
        elif strategy.measure is None:
            if idx.size > MAX_DIVERSITY_POOL:
                idx = rng.choice(idx, MAX_DIVERSITY_POOL, replace=False)
            d = _min_dist(feats[idx], ref)
            i = int(idx[int(np.argmax(d))])
            why += "farthest from the labelled set"
        else:
            key = score[idx]
            if strategy.power:  # Gumbel top-k: draws with probability ~ score
                key = np.log(np.maximum(key, 1e-12)) + rng.gumbel(size=idx.size)
            quota = per_class if strategy.balance else budget
            size = max(1, ctx.pool_factor * quota) if strategy.diverse else 1
            if idx.size > size:
                keep = np.argpartition(-key, size - 1)[:size]
                idx, key = idx[keep], key[keep]
            drawn = "drawn by" if strategy.power else "with the highest"
            if strategy.diverse:
                d = _min_dist(feats[idx], ref)
                i = int(idx[int(np.argmax(d))])
                why += (
                    f"of {idx.size} {drawn} {strategy.measure}, farthest from the "
                    "labelled set"
                )
            else:
                i = int(idx[int(np.argmax(key))])
                why += f"{drawn} {strategy.measure}"
        out.index.append(i)
        out.reason.append(why)
        closed = np.zeros_like(open_)
        closed[i] = True
        if ctx.min_distance > 0:
            near = ((stats.centre - stats.centre[i]) ** 2).sum(1) < ctx.min_distance**2
            closed |= near & open_
        open_ &= ~closed
        gone = cls[closed]
        open_by_class -= np.bincount(gone[gone >= 0], minlength=num_classes)
        if cls[i] >= 0:
            picked_class[cls[i]] += stats.valid[i]
        ref = np.concatenate([ref, feats[i : i + 1]])
    return out
