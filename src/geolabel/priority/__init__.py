"""Ranking the next regions to label: uncertainty × spatial diversity × exclusions.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.priority.rank import PriorityResult, prioritize, read_labelled
from geolabel.priority.regions import STRATEGIES, Region, load_run, score_regions
from geolabel.priority.select import Candidate, Pick, excluded_mask, select_regions

__all__ = [
    "STRATEGIES",
    "Candidate",
    "Pick",
    "PriorityResult",
    "Region",
    "excluded_mask",
    "load_run",
    "prioritize",
    "read_labelled",
    "score_regions",
    "select_regions",
]
