"""Detection runs (``task: detection``) get default styles and a project too.

Skipped where the detection pipeline is not installed.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from geolabel.config import RunConfig
from geolabel.pipeline import run_predict
from geolabel.qgis import layer_styles
from geolabel.testing import make_scene

from .conftest import run_doc
from .test_outputs import _renderer

detectors = pytest.importorskip("geolabel.testing.detectors")
pytest.importorskip("geolabel.detect_pipeline")


def test_detection_runs_get_styles_and_a_project(tmp_path: Path) -> None:
    img = np.zeros((3, 90, 101), np.float32)
    for r, c, label in [(5, 23, 0), (51, 51, 1), (70, 10, 0)]:
        detectors.draw_square(img, r, c, 9, label=label, score=0.8)
    scene = make_scene(
        tmp_path / "squares.tif",
        data=img,
        crs="EPSG:32633",
        nodata=-1.0,
        transform=Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0),
    )
    spec = detectors.write_square_detector_spec(
        tmp_path / "det.yaml", tile_size=48, overlap=8
    )
    res = run_predict(
        RunConfig(scenes=(str(scene),), model=str(spec), out=str(tmp_path / "run"))
    )
    assert res.ok, res.scenes[0].error
    det = Path(res.scenes[0].outputs["detections"])
    (style,) = [s for s in layer_styles(det) if s.layer == "detections"]
    with sqlite3.connect(det) as con:
        (qml,) = con.execute(
            "SELECT styleQML FROM layer_styles WHERE f_table_name = 'detections'"
            " AND useAsDefault"
        ).fetchone()
    con.close()
    r = _renderer(qml)
    assert (
        (r.get("type"), r.get("attr"))
        == ("categorizedSymbol", "class_name")
        == (style.renderer, style.field)
    )
    assert [c.get("value") for c in r.iter("category")] == ["thing0", "thing1"]
    doc = run_doc(res.out)
    assert {"scene": None, "role": "project", "path": str(res.out / "run.qgs")} in doc[
        "outputs"
    ]
    sources = [
        ml.findtext("datasource")
        for ml in ET.parse(res.out / "run.qgs").getroot().iter("maplayer")
    ]
    assert "./squares/squares_detections.gpkg|layername=detections" in sources
