"""Open a geolabel run folder in a real QGIS and report what QGIS sees, as JSON.

Run with the system Python that has PyQGIS (Debian ``python3-qgis``), headless:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis/qgis_check.py RUN_DIR PNG_DIR

Every raster and GeoPackage layer listed in ``RUN_DIR/run.json`` is loaded on its own
(so QGIS applies its default style: the ``.qml`` sidecar or the ``layer_styles`` row),
then ``RUN_DIR/run.qgs`` is read and rendered at twice the scene's resolution over its
extent. PNGs go to PNG_DIR: ``project.png`` (the project's visible layers),
``mask_over_scene.png`` (the project's mask and image layers alone), ``scene.png`` (the
image alone) and ``mask.png`` (the mask alone, opaque). The JSON report is the last line
of stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def _extent(layer) -> list[float]:
    e = layer.extent()
    return [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]


def _describe(layer) -> dict:
    d = {
        "valid": layer.isValid(),
        "name": layer.name(),
        "crs_wkt": layer.crs().toWkt(),
        "crs_valid": layer.crs().isValid(),
        "extent": _extent(layer),
    }
    if isinstance(layer, QgsRasterLayer):
        d["kind"] = "raster"
        r = layer.renderer()
        d["renderer"] = r.type() if r else None
        d["opacity"] = r.opacity() if r else None
        d["bands"] = layer.bandCount()
        if r is not None and r.type() == "paletted":
            d["classes"] = [
                {
                    "value": c.value,
                    "label": c.label,
                    "color": c.color.name(),
                    "alpha": c.color.alpha(),
                }
                for c in r.classes()
            ]
        if r is not None and r.type() == "singlebandpseudocolor":
            d["min"], d["max"] = r.classificationMin(), r.classificationMax()
            shader = r.shader().rasterShaderFunction()
            d["ramp_items"] = len(shader.colorRampItemList())
        prov = layer.dataProvider()
        d["nodata"] = (
            prov.sourceNoDataValue(1) if prov.sourceHasNoDataValue(1) else None
        )
        d["gdal_category_names"] = _category_names(layer.source())
    else:
        d["kind"] = "vector"
        d["features"] = layer.featureCount()
        r = layer.renderer()
        d["renderer"] = r.type() if r else None
        if r is not None and r.type() == "categorizedSymbol":
            d["field"] = r.classAttribute()
            d["categories"] = [
                {
                    "value": c.value(),
                    "label": c.label(),
                    "color": c.symbol().color().name(),
                }
                for c in r.categories()
            ]
        if r is not None and r.type() == "graduatedSymbol":
            d["field"] = r.classAttribute()
            d["ranges"] = [
                {
                    "lower": g.lowerValue(),
                    "upper": g.upperValue(),
                    "label": g.label(),
                    "color": g.symbol().color().name(),
                }
                for g in r.ranges()
            ]
        d["labels"] = layer.labelsEnabled()
        lab = layer.labeling()
        d["label_expression"] = (
            lab.settings().fieldName
            if lab is not None and layer.labelsEnabled()
            else None
        )
    return d


def _category_names(path: str) -> list[str] | None:
    from osgeo import gdal

    # GDAL 3.6's Band.GetCategoryNames() binding returns None; gdalinfo's JSON has them
    names = gdal.Info(path, format="json")["bands"][0].get("categories")
    return list(names) if names else None


def _render(layers, extent, size: QSize, path: Path) -> None:
    ms = QgsMapSettings()
    ms.setLayers(layers)
    ms.setDestinationCrs(layers[-1].crs())
    ms.setOutputSize(size)
    ms.setExtent(extent)
    ms.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(path), "PNG")


def main(run_dir: Path, png_dir: Path) -> dict:
    doc = json.loads((run_dir / "run.json").read_text())
    report: dict = {"outputs": [], "project": None}
    keep = []
    for o in doc["outputs"]:
        p = Path(o["path"])
        p = p if p.is_absolute() else run_dir / p if not p.exists() else p
        if p.suffix == ".tif":
            lyr = QgsRasterLayer(str(p), p.stem, "gdal")
            keep.append(lyr)
            report["outputs"].append(
                {"role": o["role"], "path": str(p), **_describe(lyr)}
            )
        elif p.suffix == ".gpkg":
            for name in _gpkg_layers(p):
                lyr = QgsVectorLayer(f"{p}|layername={name}", name, "ogr")
                keep.append(lyr)
                report["outputs"].append(
                    {"role": o["role"], "path": str(p), "layer": name, **_describe(lyr)}
                )
    scenes = {s["scene"] for s in doc["scenes"] if s["status"] == "done"}
    for s in sorted(scenes):  # recorded relative to the run folder (absolute before)
        s = s if Path(s).is_absolute() else str(run_dir / s)
        lyr = QgsRasterLayer(s, "scene", "gdal")
        keep.append(lyr)
        report.setdefault("scenes", []).append({"path": s, **_describe(lyr)})
    # the project
    proj = QgsProject.instance()
    qgs = run_dir / "run.qgs"
    ok = proj.read(str(qgs))
    root = proj.layerTreeRoot()
    groups = [
        {
            "name": g.name(),
            "layers": [t.name() for t in g.findLayers()],
            "visible": [t.name() for t in g.findLayers() if t.isVisible()],
        }
        for g in root.children()
    ]
    layers = [
        {
            "name": lyr.name(),
            "valid": lyr.isValid(),
            "source": lyr.source(),
            "crs_valid": lyr.crs().isValid(),
            "renderer": lyr.renderer().type() if lyr.renderer() else None,
        }
        for lyr in proj.mapLayers().values()
    ]
    report["project"] = {
        "read": ok,
        "groups": groups,
        "layers": layers,
        "crs_valid": proj.crs().isValid(),
        "crs_wkt": proj.crs().toWkt(),
    }
    visible = [t.layer() for t in root.findLayers() if t.isVisible()]
    by_name = {t.name(): t.layer() for t in root.findLayers()}
    scene_layer = next(lyr for n, lyr in by_name.items() if n.endswith(" image"))
    mask_layer = next(lyr for n, lyr in by_name.items() if n.endswith(" mask"))
    extent = scene_layer.extent()
    w = 2 * scene_layer.width()
    size = QSize(w, 2 * scene_layer.height())
    png_dir.mkdir(parents=True, exist_ok=True)
    _render(visible, extent, size, png_dir / "project.png")
    _render([scene_layer], extent, size, png_dir / "scene.png")
    _render([mask_layer, scene_layer], extent, size, png_dir / "mask_over_scene.png")
    mask_layer.renderer().setOpacity(1.0)
    _render([mask_layer], extent, size, png_dir / "mask.png")
    report["render"] = {
        "size": [size.width(), size.height()],
        "extent": _extent(scene_layer),
        "visible": [lyr.name() for lyr in visible],
        "mask_opacity_in_project": _project_mask_opacity(qgs),
    }
    proj.clear()
    del keep, visible, by_name, scene_layer, mask_layer
    return report


def _project_mask_opacity(qgs: Path) -> float:
    import xml.etree.ElementTree as ET

    for ml in ET.parse(qgs).getroot().iter("maplayer"):
        if ml.findtext("layername", "").endswith(" mask"):
            r = ml.find("pipe/rasterrenderer")
            return float(r.get("opacity", "1")) if r is not None else 1.0
    return 1.0


def _gpkg_layers(path: Path) -> list[str]:
    from osgeo import ogr

    ds = ogr.Open(str(path))
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    ds = None
    return [n for n in names if n != "layer_styles"]


if __name__ == "__main__":
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    try:
        result = main(Path(sys.argv[1]), Path(sys.argv[2]))
    finally:
        app.exitQgis()
    print(json.dumps(result))
