"""Default styles guide the review (issue 19 item 7): a drop-down ``status``, ``label``
from the model's classes with ``class_name``/``class_id`` following it, score labels
only where the model is unsure, detections drawn and switchable by score band.

QGIS is not needed: the QML is checked as QGIS 3.22 reads it, and the derived-field
expressions are evaluated here for every class."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from geolabel.config import RunConfig
from geolabel.pipeline import run_predict
from geolabel.qgis._review import REVIEW_STATUSES, class_expression
from geolabel.testing import make_scene, write_toy_spec


def _default_qml(gpkg: Path, layer: str) -> ET.Element:
    with sqlite3.connect(gpkg) as con:
        (qml,) = con.execute(
            "SELECT styleQML FROM layer_styles WHERE f_table_name = ? AND useAsDefault",
            (layer,),
        ).fetchone()
    con.close()
    return ET.fromstring(qml.split("\n", 1)[1])


def _value_map(root: ET.Element, field: str) -> list[str]:
    (fld,) = [f for f in root.iter("field") if f.get("name") == field]
    assert fld.find("editWidget").get("type") == "ValueMap"
    return [o.get("value") for o in fld.iter("Option") if o.get("type") == "QString"]


def _evaluate(expression: str, label: str, current: str) -> str:
    """The CASE expressions geolabel writes, evaluated for one feature."""
    for key, value in re.findall(
        r"WHEN lower\(\"label\"\) = '(.*?)' THEN (\S+)", expression
    ):
        if label.lower() == key:
            return value.strip("'")
    return current


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("review")
    scene = make_scene(d / "scene.tif", shape=(90, 110))
    spec = write_toy_spec(d / "toy.yaml", tile_size=64)
    res = run_predict(
        RunConfig(scenes=(str(scene),), model=str(spec), out=str(d / "run"))
    )
    assert res.ok
    return Path(res.scenes[0].outputs["vectors"])


def test_status_is_a_value_list(predictions: Path) -> None:
    root = _default_qml(predictions, "predictions")
    assert _value_map(root, "status") == list(REVIEW_STATUSES)


def test_relabelling_keeps_class_name_and_id_in_step(predictions: Path) -> None:
    root = _default_qml(predictions, "predictions")
    assert _value_map(root, "label") == ["class0", "class1", "class2"]
    defaults = {d.get("field"): d for d in root.iter("default")}
    assert {"class_name", "class_id"} <= set(defaults)
    assert all(d.get("applyOnUpdate") == "1" for d in defaults.values())
    for i in range(3):  # a feature of class0 relabelled to each class
        new = f"class{i}"
        assert _evaluate(defaults["class_id"].get("expression"), new, "0") == str(i)
        assert _evaluate(defaults["class_name"].get("expression"), new, "class0") == new
    assert _evaluate(defaults["class_id"].get("expression"), "wetland", "0") == "0"


def test_score_labels_only_for_uncertain_features(predictions: Path) -> None:
    root = _default_qml(predictions, "predictions")
    show = [o for o in root.iter("Option") if o.get("name") == "Show"]
    (expr,) = [o.get("value") for o in show[0] if o.get("name") == "expression"]
    assert expr == '"score" < 0.7'


def test_project_layers_carry_the_review_form(predictions: Path) -> None:
    qgs = ET.parse(predictions.parents[1] / "run.qgs").getroot()
    (layer,) = [
        ml
        for ml in qgs.iter("maplayer")
        if "layername=predictions" in ml.findtext("datasource")
    ]
    assert layer.find("fieldConfiguration") is not None
    assert layer.find("defaults") is not None


def test_class_expression_first_label_wins_and_quotes() -> None:
    expr = class_expression([("O'Hare", "urban", 0), ("o'hare", "x", 1)], "class_id")
    assert expr == "CASE WHEN lower(\"label\") = 'o''hare' THEN 0 ELSE \"class_id\" END"
