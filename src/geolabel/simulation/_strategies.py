"""How the simulation chooses the next regions to reveal.

Uncertainty strategies score each candidate region by the mean of a per-pixel
measure of :mod:`geolabel.uncertainty` over its valid pixels and pick with
:func:`geolabel.priority.select.select_regions` (exclusion of revealed regions,
optional k-center spread). ``random`` draws uniformly among the unrevealed regions.
Strategy names: ``random``, ``entropy``, ``margin``, ``least-confidence``, optionally
suffixed ``:k-center`` (for example ``entropy:k-center``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from geolabel.errors import ConfigError
from geolabel.grid import Window
from geolabel.priority.select import Candidate, select_regions
from geolabel.uncertainty import MEASURES, compute_measure

__all__ = ["Strategy", "parse_strategy", "pick_regions"]


@dataclass(frozen=True, slots=True)
class Strategy:
    """A parsed strategy: ``measure`` (``None`` for random) and the spread rule."""

    name: str
    measure: str | None
    spread: str = "none"


def parse_strategy(name: str) -> Strategy:
    """Parse ``random`` / ``<measure>[:k-center]``.

    Raises:
        ConfigError: unknown measure or spread.
    """
    measure, _, spread = name.partition(":")
    if measure == "random":
        if spread:
            raise ConfigError(f"strategy {name!r}: random takes no spread")
        return Strategy(name, None)
    if measure not in MEASURES:
        raise ConfigError(
            f"unknown strategy {name!r}; choose random or one of {', '.join(MEASURES)}"
            " (optionally with :k-center)"
        )
    if spread not in ("", "k-center"):
        raise ConfigError(f"strategy {name!r}: unknown spread {spread!r}; use k-center")
    return Strategy(name, measure, spread or "none")


def pick_regions(
    strategy: Strategy,
    probs: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    regions: list[Window],
    revealed: npt.NDArray[np.bool_],
    budget: int,
    rng: np.random.Generator,
) -> list[int]:
    """Indexes of the next ``budget`` regions to reveal (never a revealed one).

    Args:
        strategy: the strategy.
        probs: ``(classes, rows, cols)`` probabilities of the current model.
        valid: ``(rows, cols)`` image validity.
        regions: candidate windows (pixels).
        revealed: per region, already revealed.
        budget: regions to pick.
        rng: random source (random strategy and ties).
    """
    open_ids = np.flatnonzero(~revealed)
    if strategy.measure is None:
        n = min(budget, open_ids.size)
        return [int(i) for i in rng.choice(open_ids, size=n, replace=False)]
    pix = compute_measure(strategy.measure, probs)
    cands = []
    for w in regions:
        v = valid[w.slices]
        score = float(pix[w.slices][v].mean()) if v.any() else float("nan")
        geom = shapely.box(w.col_off, w.row_off, w.col_stop, w.row_stop)
        cands.append(Candidate(score=score, geometry=geom))
    picks = select_regions(
        cands,
        budget,
        spread=strategy.spread,  # type: ignore[arg-type]
        excluded=revealed.copy(),
    )
    return [p.index for p in picks]
