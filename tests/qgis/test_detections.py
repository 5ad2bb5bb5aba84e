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
from .test_review_styles import REVIEW_STATUSES, _default_qml, _value_map

detectors = pytest.importorskip("geolabel.testing.detectors")


def _squares_run(tmp_path: Path, squares: list[tuple[int, int, int, float]]) -> Path:
    """Detections GeoPackage of the square detector over ``(row, col, label, score)``."""
    img = np.zeros((3, 90, 101), np.float32)
    for r, c, label, score in squares:
        detectors.draw_square(img, r, c, 9, label=label, score=score)
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
    return Path(res.scenes[0].outputs["detections"])


def test_detection_runs_get_styles_and_a_project(tmp_path: Path) -> None:
    det = _squares_run(tmp_path, [(5, 23, 0, 0.8), (51, 51, 1, 0.8), (70, 10, 0, 0.8)])
    out = det.parents[1]
    (style,) = [s for s in layer_styles(det) if s.layer == "detections"]
    with sqlite3.connect(det) as con:
        (qml,) = con.execute(
            "SELECT styleQML FROM layer_styles WHERE f_table_name = 'detections'"
            " AND useAsDefault"
        ).fetchone()
    con.close()
    r = _renderer(qml)
    # drawn by score band, one rule per class in each (tests/qgis/test_review_styles.py)
    assert (r.get("type"), style.renderer, style.field) == (
        "RuleRenderer",
        "RuleRenderer",
        "score",
    )
    assert [x.get("label") for x in r.find("rules")[0]] == ["thing0", "thing1"]
    doc = run_doc(out)
    assert {"scene": None, "role": "project", "path": "run.qgs"} in doc["outputs"]
    sources = [
        ml.findtext("datasource")
        for ml in ET.parse(out / "run.qgs").getroot().iter("maplayer")
    ]
    assert "./squares/squares_detections.gpkg|layername=detections" in sources


def test_detections_are_drawn_by_score_band(tmp_path: Path) -> None:
    """Issue 19: a rule per score band (the low one off), a rule per class inside."""
    det = _squares_run(tmp_path, [(5, 23, 0, 0.8), (51, 51, 1, 0.5), (70, 10, 0, 0.2)])
    root = _default_qml(det, "detections")
    rend = root.find("renderer-v2")
    assert rend.get("type") == "RuleRenderer"
    bands = list(rend.find("rules"))
    assert [b.get("filter") for b in bands] == [
        '"score" >= 0.7',
        '"score" >= 0.3 AND "score" < 0.7',
        '"score" < 0.3',
    ]
    assert [b.get("checkstate") for b in bands] == [None, None, "0"]
    for b in bands:
        assert [r.get("filter") for r in b] == [
            "\"class_name\" = 'thing0'",
            "\"class_name\" = 'thing1'",
        ]
    symbols = {s.get("name") for s in rend.find("symbols")}
    assert symbols == {r.get("symbol") for r in rend.iter("rule") if r.get("symbol")}
    styles = [
        o.get("value")
        for s in rend.find("symbols")
        for o in s.iter("Option")
        if o.get("name") == "outline_style"
    ]
    assert styles == ["solid", "solid", "dash", "dash", "dot", "dot"]
    assert _value_map(root, "status") == list(REVIEW_STATUSES)
