"""Per-pixel uncertainty measures, per-tile aggregates and their finalize sinks.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.uncertainty.aggregate import (
    AggregateOptions,
    aggregate_boxes,
    aggregate_tile,
    class_columns,
)
from geolabel.uncertainty.measures import (
    MEASURES,
    MODEL_MEASURES,
    compute_measure,
    entropy,
    least_confidence,
    margin,
    mutual_information,
)

__all__ = [
    "MEASURES",
    "MODEL_MEASURES",
    "AggregateOptions",
    "aggregate_boxes",
    "aggregate_tile",
    "class_columns",
    "compute_measure",
    "entropy",
    "least_confidence",
    "margin",
    "mutual_information",
]
