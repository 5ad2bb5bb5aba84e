"""The labelling loop as one command: predict, prioritise, wait for labels, fine-tune.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.loop._loop import LoopConfig, LoopResult, count_labels, run_loop
from geolabel.loop._state import LoopState, RoundState

__all__ = [
    "LoopConfig",
    "LoopResult",
    "LoopState",
    "RoundState",
    "count_labels",
    "run_loop",
]
