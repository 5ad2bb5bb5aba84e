"""Settings of a simulation: first-label sources, arms (strategy + unit), the config.

.. versionadded:: 0.2
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from geolabel.errors import ConfigError
from geolabel.priority.strategy import (
    Strategy,
    parse_strategy,
)
from geolabel.priority.units import UNITS
from geolabel.simulation.effort import CostModel
from geolabel.train import FitConfig

__all__ = ["Arm", "LabelSource", "SimulationConfig", "parse_arm"]


@dataclass(frozen=True, slots=True)
class LabelSource:
    """A vector layer of first labels: path, layer, class field, point buffer (px)."""

    path: str
    layer: str | None = None
    class_field: str = "label"
    point_buffer: int = 1


@dataclass(frozen=True, slots=True)
class Arm:
    """One compared policy: a strategy and the unit it asks for (``STRATEGY/UNIT``)."""

    name: str
    strategy: Strategy
    unit: str


def parse_arm(name: str, auto: str | None = None) -> Arm:
    """Parse ``STRATEGY/UNIT`` (the unit defaults to ``regions``).

    Unit ``auto`` is what ``prioritize --unit auto`` picks for the scene (``auto``,
    from :func:`~geolabel.priority.units.auto_unit`); the arm keeps its name.

    Raises:
        ConfigError: unknown strategy or unit.
    """
    strat, _, unit = name.partition("/")
    unit = unit or "regions"
    if unit not in (*UNITS, "auto"):
        raise ConfigError(
            f"arm {name!r}: unknown unit {unit!r}; choose auto or one of "
            f"{', '.join(UNITS)}"
        )
    resolved = (auto or "points") if unit == "auto" else unit
    return Arm(f"{strat}/{unit}", parse_strategy(strat), resolved)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Settings of :func:`run_simulation` (CPU-sized defaults).

    Attributes:
        arms: ``STRATEGY/UNIT`` names; the first is "the default" of the report.
        baselines: arms every other arm is compared with (paired by seed).
        seeds: one experiment per seed (first labels, model init, random picks).
        rounds: query-and-train rounds after the first model.
        round_seconds: labeller-seconds each arm spends per round.
        region_size: side of square regions (px).
        superpixel_size: typical side of a SLIC superpixel (px).
        point_spacing: minimum distance between two picked points (px).
        seed_points: first labels: this many random clicks in the training columns.
        holdout_fraction: right-most fraction of the columns held out for scoring.
        initial_steps: training steps of the first model (fresh weights).
        round_steps: fine-tuning steps after each round.
        retrain: retrain from fresh weights each round (``initial_steps + round *
            round_steps`` steps) instead of fine-tuning.
        full_steps: steps of the fully-labelled reference model (``None``: as many as
            an arm's final model had, ``initial_steps + rounds * round_steps``).
        fit: chip size, batch size, learning rate, sampler (its seed is replaced).
        oracle_offset: added to oracle codes to get model indexes (-1 for 1-based).
        min_valid_fraction: regions with fewer valid pixels are not candidates.
        cost: the labeller cost model.
        mc_passes: dropout passes of ``bald``.
        pool_factor, cold_labels: see :class:`~geolabel.priority.strategy.SelectionContext`.
        fractions: quality targets as fractions of the fully-labelled mIoU.
        bands: 1-based scene band indexes in model order (``None``: the spec's, by
            name, or all when the counts match).
    """

    arms: tuple[str, ...] = ("auto/auto", "random/auto", "random/regions")
    baselines: tuple[str, ...] = ("random/auto", "random/regions")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    rounds: int = 7
    round_seconds: float = 120.0
    region_size: int = 32
    superpixel_size: int = 12
    point_spacing: float = 3.0
    seed_points: int = 24
    holdout_fraction: float = 0.25
    initial_steps: int = 200
    round_steps: int = 60
    retrain: bool = False
    full_steps: int | None = None
    fit: FitConfig = field(default_factory=FitConfig)
    oracle_offset: int = -1
    min_valid_fraction: float = 0.25
    cost: CostModel = field(default_factory=CostModel)
    mc_passes: int = 8
    pool_factor: int = 10
    cold_labels: int = 100
    fractions: tuple[float, ...] = (0.9, 0.95)
    bands: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Validate the numbers and the arm names."""
        if not self.arms or not self.seeds:
            raise ConfigError("give at least one arm (--arm) and one seed")
        for a in self.arms:
            parse_arm(a)
        if self.rounds < 0 or self.region_size < 2 or self.superpixel_size < 2:
            raise ConfigError("rounds >= 0, region and superpixel sizes >= 2 px")
        if not (math.isfinite(self.round_seconds) and self.round_seconds > 0):
            raise ConfigError(
                f"--round-seconds must be > 0, got {self.round_seconds!r}"
            )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(
                f"holdout fraction must be in (0, 1), got {self.holdout_fraction!r}"
            )
        if self.seed_points < 0:
            raise ConfigError(f"--seed-points must be >= 0, got {self.seed_points}")
