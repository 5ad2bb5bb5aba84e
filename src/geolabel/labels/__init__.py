"""Labels: accept suggestions into a labels GeoPackage, import and rasterise labels.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.labels._accept import (
    STATUSES,
    AcceptResult,
    Selection,
    accept_suggestions,
)
from geolabel.labels._rasterize import (
    IGNORE_INDEX,
    class_indexes,
    class_lookup,
    merge_labels,
    rasterize_labels,
    read_labels,
)

__all__ = [
    "STATUSES",
    "AcceptResult",
    "Selection",
    "accept_suggestions",
    "IGNORE_INDEX",
    "class_indexes",
    "class_lookup",
    "merge_labels",
    "rasterize_labels",
    "read_labels",
]
