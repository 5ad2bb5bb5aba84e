"""Evaluation: quality of a predicted mask against a reference raster or vector file.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.evaluation._evaluate import (
    EVALUATORS,
    EvalOptions,
    evaluate,
    reference_kind,
    register_evaluator,
    resolve_mask,
)
from geolabel.evaluation._metrics import (
    confusion_matrix,
    format_table,
    segmentation_scores,
)

__all__ = [
    "EVALUATORS",
    "EvalOptions",
    "confusion_matrix",
    "evaluate",
    "format_table",
    "reference_kind",
    "register_evaluator",
    "resolve_mask",
    "segmentation_scores",
]

# Object boxes (issue 7): box CSVs score detections with AP50 / precision / recall.
from geolabel.evaluation.boxes import box_evaluator as _box_evaluator

register_evaluator("boxes", _box_evaluator, suffixes=(".csv",))
