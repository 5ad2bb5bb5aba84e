"""Review a predictions layer in a real QGIS, through its default style; report JSON.

Run with the system Python that has PyQGIS (Debian ``python3-qgis``), headless:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis/qgis_review.py GPKG

The ``predictions`` layer is opened as QGIS opens it (default style from
``layer_styles``). The report gives the edit widgets of ``status`` and ``label`` and
the default-value definitions of ``class_name``/``class_id``; then the first feature
is relabelled to another class and marked ``edited`` in an edit session, as a reviewer
does in the attribute form, and the saved feature is reported. The JSON report is the
last line of stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import QgsApplication, QgsVectorLayer


def _values(config: dict) -> list[str]:
    return [str(v) for entry in config.get("map", []) for v in entry.values()]


def main(gpkg: Path) -> dict:
    layer = QgsVectorLayer(f"{gpkg}|layername=predictions", "predictions", "ogr")
    if not layer.isValid():
        raise SystemExit(f"{gpkg}: layer predictions not valid in QGIS")
    fields = layer.fields()
    report: dict = {"widgets": {}, "defaults": {}}
    for name in ("status", "label"):
        setup = layer.editorWidgetSetup(fields.indexOf(name))
        report["widgets"][name] = {
            "type": setup.type(),
            "values": _values(setup.config()),
        }
    for name in ("class_name", "class_id"):
        d = layer.defaultValueDefinition(fields.indexOf(name))
        report["defaults"][name] = {
            "expression": d.expression(),
            "apply_on_update": d.applyOnUpdate(),
        }
    feature = next(layer.getFeatures())
    old = str(feature["label"])
    new = next(v for v in report["widgets"]["label"]["values"] if v != old)
    layer.startEditing()
    layer.changeAttributeValue(feature.id(), fields.indexOf("label"), new)
    layer.changeAttributeValue(feature.id(), fields.indexOf("status"), "edited")
    report["committed"] = layer.commitChanges()
    saved = layer.getFeature(feature.id())
    report["edited"] = {
        "id": int(saved["id"]),
        "old_label": old,
        "label": str(saved["label"]),
        "status": str(saved["status"]),
        "class_name": str(saved["class_name"]),
        "class_id": int(saved["class_id"]),
    }
    return report


if __name__ == "__main__":
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    try:
        result = main(Path(sys.argv[1]))
    finally:
        app.exitQgis()
    print(json.dumps(result))
