"""The queue of detection and tile-classification runs: their most uncertain predictions."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.errors import ConfigError
from geolabel.pipeline import run_predict
from geolabel.priority import prioritize
from geolabel.testing import make_scene, write_toy_spec
from geolabel.testing.detectors import draw_square, write_square_detector_spec

#: (row, col, class, score) of the drawn squares; margin uncertainty 1 - |2s - 1|
SQUARES = [
    (5, 10, 0, 0.9),  # 0.2
    (5, 60, 1, 0.65),  # 0.7
    (5, 110, 0, 0.4),  # 0.8
    (60, 10, 0, 0.55),  # 0.9
    (60, 60, 1, 0.2),  # 0.4
    (60, 110, 0, 0.1),  # 0.2
]


def _run(root: Path, task: str) -> Path:
    img = np.zeros((3, 100, 140), np.float32)
    for r, c, label, score in SQUARES:
        draw_square(img, r, c, 12, label=label, score=score)
    scene = make_scene(root / "squares.tif", data=img, nodata=-1.0)
    spec = write_square_detector_spec(
        root / f"{task}.yaml", tile_size=64, overlap=8, task=task
    )
    out = root / task
    res = run_predict(RunConfig(scenes=(str(scene),), model=str(spec), out=str(out)))
    assert res.ok, [s.error for s in res.scenes]
    return out


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("objects"), "detection")


def _scores(run: Path, strategy: str, n: int, **kw: object) -> list[float]:
    res = prioritize(run, n, strategy=strategy, **kw)  # type: ignore[arg-type]
    boxes = gpd.read_file(next(run.rglob("*_detections.gpkg")), layer="detections")
    by_id = dict(zip(boxes["id"], boxes["score"], strict=True))
    return [
        round(float(by_id[int(r["region_id"].split("box")[1])]), 2) for r in res.rows
    ]


def test_boxes_closest_to_a_coin_flip_first(detection_run: Path) -> None:
    assert _scores(detection_run, "margin", 3) == [0.55, 0.4, 0.65]
    # auto: classes take turns (class 0 and class 1 both unlabelled: 0 first)
    assert _scores(detection_run, "auto", 4) == [0.55, 0.65, 0.4, 0.2]
    entropy = _scores(detection_run, "entropy", 6)
    assert entropy[:4] == [0.55, 0.4, 0.65, 0.2] and sorted(entropy[4:]) == [0.1, 0.9]


def test_box_queue_is_a_polygon_layer_in_the_scene_crs(detection_run: Path) -> None:
    prioritize(detection_run, 2)
    q = gpd.read_file(detection_run / "next_to_label.gpkg", layer="next_to_label")
    boxes = gpd.read_file(
        next(detection_run.rglob("*_detections.gpkg")), layer="detections"
    )
    assert q.crs == boxes.crs and list(q["unit"]) == ["boxes", "boxes"]
    assert (
        list(q["status"]) == ["queued"] * 2 and list(q["label"].fillna("")) == [""] * 2
    )
    first = boxes[boxes["score"].round(2) == 0.55].geometry.iloc[0]
    assert shapely.equals(q.geometry.iloc[0], shapely.box(*first.bounds))
    # its pixel window is the drawn square's (rows 60-71, cols 10-21)
    assert (q["row_off"].iloc[0], q["col_off"].iloc[0]) == (60, 10)
    assert (q["height"].iloc[0], q["width"].iloc[0]) == (12, 12)
    record = json.loads((detection_run / "run.json").read_text())
    assert record["priority"]["unit"] == "boxes" and record["priority"]["picked"] == 2


def test_labelled_boxes_are_left_out_and_their_class_waits(
    detection_run: Path, tmp_path: Path
) -> None:
    boxes = gpd.read_file(
        next(detection_run.rglob("*_detections.gpkg")), layer="detections"
    )
    done = boxes[boxes["score"].round(2) == 0.55][["geometry"]].assign(label="thing0")
    labels = tmp_path / "labels.gpkg"
    done.to_file(labels, layer="labels")
    # the 0.55 box is labelled; class 0 has a label, so class 1 goes first
    assert _scores(detection_run, "auto", 3, exclude=(labels,)) == [0.65, 0.4, 0.2]


def test_random_is_seeded_and_picks_every_box(detection_run: Path) -> None:
    # random+balance: classes take turns, random within each class
    b = _scores(detection_run, "random+balance", 4, seed=3)
    cls = {round(s, 2): c for _, _, c, s in SQUARES}
    assert [cls[x] for x in b[:4]] == [0, 1, 0, 1]
    a = _scores(detection_run, "random", 6, seed=3)
    assert a == _scores(detection_run, "random", 6, seed=3)
    assert sorted(a) == sorted(round(s, 2) for *_, s in SQUARES)
    assert a != _scores(detection_run, "random", 6, seed=4)


def test_classification_tiles_smallest_margin_first(tmp_path: Path) -> None:
    run = _run(tmp_path, "classification")
    res = prioritize(run, 4, strategy="margin")
    tiles = gpd.read_file(next(run.rglob("*_tiles.gpkg")), layer="tiles")
    margin = dict(zip(tiles["tile_id"], tiles["margin"], strict=True))
    picked = [margin[r["region_id"]] for r in res.rows]
    assert [r["unit"] for r in res.rows] == ["tiles"] * 4
    assert picked == sorted(tiles["margin"])[:4]
    assert picked[0] < 1.0  # tiles holding both classes' squares come first


def test_wrong_unit_or_strategy_is_one_line(
    detection_run: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="--unit points: a detection run"):
        prioritize(detection_run, 2, unit="points")
    res = CliRunner().invoke(
        cli, ["prioritize", str(detection_run), "-n", "2", "--strategy", "bald"]
    )
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert (
        res.output.strip().count("\n") == 0 and "ranked by their scores" in res.output
    )
    spec = write_toy_spec(tmp_path / "toy.yaml")
    scene = make_scene(tmp_path / "s.tif")
    seg = tmp_path / "seg"
    assert run_predict(
        RunConfig(scenes=(str(scene),), model=str(spec), out=str(seg))
    ).ok
    with pytest.raises(ConfigError, match="segmentation run"):
        prioritize(seg, 2, unit="boxes")
