"""Exchange with other tools: training chips and COCO out, Label Studio tasks in and out.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.exchange._chips import TrainingExport, chip_windows, export_training
from geolabel.exchange._coco import CocoWriter, rle_counts
from geolabel.exchange._label_studio import (
    LabelStudioExport,
    export_tasks,
    import_annotations,
)
from geolabel.exchange._ls_format import (
    ChipRef,
    ConfigNames,
    config_names,
    labelling_config,
    polygon_result,
    result_geometry,
)

__all__ = [
    "TrainingExport",
    "chip_windows",
    "export_training",
    "CocoWriter",
    "rle_counts",
    "LabelStudioExport",
    "export_tasks",
    "import_annotations",
    "ChipRef",
    "ConfigNames",
    "config_names",
    "labelling_config",
    "polygon_result",
    "result_geometry",
]
