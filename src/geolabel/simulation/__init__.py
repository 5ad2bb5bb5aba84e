"""Active-learning simulation against an oracle map (``geolabel simulate``).

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.simulation._report import plot_curves, write_json
from geolabel.simulation._simulate import run_simulation
from geolabel.simulation.config import Arm, LabelSource, SimulationConfig, parse_arm
from geolabel.simulation.effort import CostModel
from geolabel.simulation.protocol import (
    alc,
    bootstrap_ci,
    effort_to_reach,
    summarize,
)

__all__ = [
    "Arm",
    "CostModel",
    "LabelSource",
    "SimulationConfig",
    "alc",
    "bootstrap_ci",
    "effort_to_reach",
    "parse_arm",
    "plot_curves",
    "run_simulation",
    "summarize",
    "write_json",
]
