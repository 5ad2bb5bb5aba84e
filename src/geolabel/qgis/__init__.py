"""QGIS-ready outputs: styles QGIS loads by default and a project per run (no PyQGIS).

* class masks: GDAL category names in ``NAME_mask.tif.aux.xml`` and a paletted
  ``NAME_mask.qml`` with class names (nodata is transparent);
* continuous rasters (confidence, probabilities, uncertainty): ``.qml`` colour ramps
  over their recorded scale (0–1);
* GeoPackages: a default style per layer in ``layer_styles`` (categorised by class,
  detections by score band; score labels on uncertain features only; a review form:
  ``status``/``label`` drop-downs with ``class_name``/``class_id`` following ``label``;
  graduated by rank for ``next_to_label``, by uncertainty for ``tiles``), written
  through GDAL so the file stays a valid GeoPackage 1.2;
* ``RUN_DIR/run.qgs``: every scene as a group of its styled outputs over the image.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.qgis._gpkg import STYLE_NAME, LayerStyle, embed_styles, layer_styles
from geolabel.qgis._project import build_groups, write_project
from geolabel.qgis._raster import raster_style, write_category_names, write_raster_qml
from geolabel.qgis._run import (
    PROJECT_NAME,
    record_project,
    recorded_scenes,
    style_run,
    style_scene_outputs,
    style_unstyled,
    write_run_project,
)

__all__ = [
    "style_scene_outputs",
    "write_run_project",
    "record_project",
    "recorded_scenes",
    "style_run",
    "style_unstyled",
    "PROJECT_NAME",
    "STYLE_NAME",
    "LayerStyle",
    "layer_styles",
    "embed_styles",
    "raster_style",
    "write_raster_qml",
    "write_category_names",
    "build_groups",
    "write_project",
]
