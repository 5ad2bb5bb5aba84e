"""Active-learning simulation against an oracle map (``geolabel simulate``).

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.simulation._report import plot_curves, write_json
from geolabel.simulation._simulate import (
    LabelSource,
    SimulationConfig,
    reach,
    run_simulation,
    summarize,
)
from geolabel.simulation._strategies import Strategy, parse_strategy, pick_regions

__all__ = [
    "LabelSource",
    "SimulationConfig",
    "Strategy",
    "parse_strategy",
    "pick_regions",
    "plot_curves",
    "reach",
    "run_simulation",
    "summarize",
    "write_json",
]
