"""Detection and tile classification through ``geolabel predict``: GPKG outputs and resume."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from affine import Affine
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.pipeline import run_predict
from geolabel.stitch.georef import boxes_to_map
from geolabel.testing import make_scene
from geolabel.testing.detectors import draw_square, write_square_detector_spec

TILE, OVERLAP = 48, 10  # cores of 28 px
SOUTH_UP_NEG = Affine(2.0, 0.0, 400000.0, 0.0, 2.0, -3000000.0)


def _scene(
    path: Path, transform: Affine
) -> tuple[Path, list[tuple[int, int, int, int]], list[float]]:
    h, w = 90, 101
    img = np.zeros((3, h, w), np.float32)
    boxes, scores = [], []
    # on a vertical seam, on a horizontal seam, on a corner, in a core, at the scene edge
    for r, c, side, label, score in [
        (5, 23, 10, 0, 0.9),
        (23, 5, 10, 1, 0.5),
        (51, 51, 10, 0, 0.65),
        (35, 33, 8, 1, 0.2),
        (80, 92, 9, 0, 0.95),
        (75, 20, 11, 1, 0.35),
    ]:
        boxes.append(draw_square(img, r, c, side, label=label, score=score))
        scores.append(score)
    return (
        make_scene(path, data=img, transform=transform, crs="EPSG:32633", nodata=-1.0),
        boxes,
        scores,
    )


@pytest.mark.parametrize(
    "transform",
    [Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0), SOUTH_UP_NEG],
    ids=["north-up", "south-up-negative-northing"],
)
def test_detections_gpkg_has_each_object_once_in_map_coordinates(
    tmp_path: Path, transform: Affine
) -> None:
    scene, truth, scores = _scene(tmp_path / "squares.tif", transform)
    spec = write_square_detector_spec(
        tmp_path / "det.yaml", tile_size=TILE, overlap=OVERLAP
    )
    res = run_predict(
        RunConfig(scenes=(str(scene),), model=str(spec), out=str(tmp_path / "run"))
    )
    assert res.ok, res.scenes[0].error
    gpkg = Path(res.scenes[0].outputs["detections"])
    assert gpkg.name == "squares_detections.gpkg"
    layers = set(pyogrio.list_layers(gpkg)[:, 0])
    assert (
        "detections" in layers and "tiles" not in layers
    )  # (QGIS styles may sit beside)
    det = gpd.read_file(gpkg, layer="detections")
    assert len(det) == len(truth)
    want = boxes_to_map(transform, truth)
    got = det[["xmin", "ymin", "xmax", "ymax"]].to_numpy()
    order_w, order_g = np.lexsort(want.T[::-1]), np.lexsort(got.T[::-1])
    np.testing.assert_array_equal(got[order_g], want[order_w])
    np.testing.assert_array_equal(
        np.array([g.bounds for g in det.geometry])[order_g], want[order_w]
    )
    assert sorted(det["score"]) == pytest.approx(sorted(scores))
    assert set(det["status"]) == {"suggested"} and set(det["model_id"]) == {
        "toy-squares@1"
    }
    assert (
        set(det["class_name"]) == {"thing0", "thing1"} and det["run_id"].nunique() == 1
    )
    assert det["n_tiles"].max() == 4 and det["tile_id"].str.contains("/r").all()
    assert det.crs.to_epsg() == 32633
    tiles = gpd.read_file(res.scenes[0].outputs["tiles"], layer="tiles")
    assert len(tiles) == res.scenes[0].tiles and tiles["n_detections"].sum() == len(
        truth
    )
    assert tiles["n_ambiguous"].sum() == sum(0.3 <= s <= 0.7 for s in scores)
    with sqlite3.connect(gpkg) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert con.execute("PRAGMA user_version").fetchone()[0] == 10200


def test_resume_redoes_only_failed_tiles_and_gives_the_same_bytes(
    tmp_path: Path,
) -> None:
    scene, truth, _ = _scene(tmp_path / "squares.tif", SOUTH_UP_NEG)
    clean = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=str(
                write_square_detector_spec(
                    tmp_path / "det.yaml", tile_size=TILE, overlap=OVERLAP
                )
            ),
            out=str(tmp_path / "clean"),
        )
    )
    failing = write_square_detector_spec(
        tmp_path / "fail.yaml",
        tile_size=TILE,
        overlap=OVERLAP,
        fail_on=["r00001c00001"],
    )
    cfg = RunConfig(
        scenes=(str(scene),),
        model=str(failing),
        out=str(tmp_path / "run"),
        batch_size=1,
    )
    first = run_predict(cfg)
    assert (
        first.scenes[0].status == "incomplete"
        and len(first.scenes[0].failed_tiles) == 1
    )
    assert not list((tmp_path / "run" / "squares").glob("*.gpkg"))
    fixed = write_square_detector_spec(
        tmp_path / "fail.yaml", tile_size=TILE, overlap=OVERLAP
    )
    again = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=str(fixed),
            out=str(tmp_path / "run"),
            batch_size=1,
            retry_failed=True,
        )
    )
    assert again.ok and again.scenes[0].tiles_run == 1
    a = Path(again.scenes[0].outputs["detections"]).read_bytes()
    third = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=str(fixed),
            out=str(tmp_path / "run"),
            batch_size=1,
        )
    )
    assert third.scenes[0].tiles_run == 0
    assert Path(third.scenes[0].outputs["detections"]).read_bytes() == a
    got = gpd.read_file(again.scenes[0].outputs["detections"], layer="detections")
    ref = gpd.read_file(clean.scenes[0].outputs["detections"], layer="detections")
    assert len(got) == len(truth)
    np.testing.assert_array_equal(
        got[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
        ref[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
    )


def test_tile_classification_writes_class_scores_per_tile(tmp_path: Path) -> None:
    scene, _, _ = _scene(
        tmp_path / "squares.tif", Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)
    )
    spec = write_square_detector_spec(
        tmp_path / "cls.yaml",
        tile_size=TILE,
        overlap=OVERLAP,
        task="classification",
        name="toy-tiles",
    )
    runner = CliRunner()
    result = runner.invoke(
        cli, ["-q", "predict", str(scene), "-m", str(spec), "-o", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    gpkg = tmp_path / "run" / "squares" / "squares_tiles.gpkg"
    tiles = gpd.read_file(gpkg, layer="tiles")
    assert len(tiles) == 16
    np.testing.assert_allclose(
        tiles["score_thing0"] + tiles["score_thing1"], 1.0, atol=1e-6
    )
    assert (tiles["score"] == tiles[["score_thing0", "score_thing1"]].max(axis=1)).all()
    # tile r0c0 reads rows/cols 0..48: class 0 marks 100 px there, class 1 marks 100 + 64 px
    first = tiles[(tiles["row"] == 0) & (tiles["col"] == 0)].iloc[0]
    assert first["class_name"] == "thing1" and first["class_id"] == 1
    assert first["score_thing1"] == pytest.approx(164 / 264, abs=1e-6)
    assert first["margin"] == pytest.approx(64 / 264, abs=1e-6)
    assert set(tiles["status"]) == {"suggested"}
    # the tile polygons are the cores: they tile the scene
    assert tiles.geometry.union_all().area == pytest.approx(90 * 101 * 0.25)
    assert tiles.geometry.area.sum() == pytest.approx(90 * 101 * 0.25)


def test_detection_cli_reports_the_gpkg(tmp_path: Path) -> None:
    scene, truth, _ = _scene(tmp_path / "squares.tif", SOUTH_UP_NEG)
    spec = write_square_detector_spec(
        tmp_path / "det.yaml", tile_size=TILE, overlap=OVERLAP
    )
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "predict",
            str(scene),
            "-m",
            str(spec),
            "-o",
            str(tmp_path / "r"),
            "--overlap",
            "12",
        ],
    )
    assert result.exit_code == 0, result.output
    det = gpd.read_file(
        tmp_path / "r" / "squares" / "squares_detections.gpkg", layer="detections"
    )
    assert len(det) == len(truth)


def test_evaluate_scores_boxes_from_a_csv(tmp_path: Path) -> None:
    scene, truth, _ = _scene(
        tmp_path / "squares.tif", SOUTH_UP_NEG
    )  # labels 0,1,0,1,0,1
    spec = write_square_detector_spec(
        tmp_path / "det.yaml", tile_size=TILE, overlap=OVERLAP
    )
    run = tmp_path / "run"
    assert (
        CliRunner()
        .invoke(cli, ["-q", "predict", str(scene), "-m", str(spec), "-o", str(run)])
        .exit_code
        == 0
    )
    rows = ["image_path,xmin,ymin,xmax,ymax,label"]
    rows += [
        f"squares.tif,{x0},{y0},{x1},{y1},THING{i % 2}"
        for i, (x0, y0, x1, y1) in enumerate(truth[:-1])
    ]
    rows.append("squares.tif,0,0,4,4,thing1")  # a box the detector cannot find
    (tmp_path / "truth.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        cli, ["-q", "evaluate", str(run), str(tmp_path / "truth.csv")]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["kind"] == "boxes" and scores["n_truth"] == 6
    # thing0: 3 of 3 found (AP 1). thing1 by score: 0.5 TP, 0.35 FP (its truth left out), 0.2 TP,
    # one truth never found: AP = 1/3 * 1 + 1/3 * 2/3.
    assert scores["per_class"]["thing0"]["ap"] == 1.0
    assert scores["per_class"]["thing1"]["ap"] == pytest.approx(1 / 3 + 2 / 9)
    assert scores["ap50"] == pytest.approx((1 + 1 / 3 + 2 / 9) / 2)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (4, 0, 2)  # at score 0.5
    # the README promises a table on stderr (issue 19 item 9)
    result = CliRunner().invoke(
        cli, ["evaluate", str(run), str(tmp_path / "truth.csv")]
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].split()[:4] == ["class", "AP", "prec", "recall"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["thing0", "thing1", "all"]
    assert lines[1].split()[1] == "1.000"


def test_instance_masks_across_seams_give_one_polygon_in_the_gpkg(
    tmp_path: Path,
) -> None:
    h, w = 90, 101
    img = np.zeros((3, h, w), np.float32)
    img[0, 25:31, 4:95] = 1.0  # a long bar across both vertical seams (cores of 28 px)
    img[0, 25:80, 60:66] = 1.0  # and down across both horizontal seams
    img[2] = 0.8
    scene = make_scene(
        tmp_path / "bar.tif",
        data=img,
        transform=SOUTH_UP_NEG,
        crs="EPSG:32633",
        nodata=-1.0,
    )
    spec = write_square_detector_spec(
        tmp_path / "inst.yaml", tile_size=TILE, overlap=OVERLAP, instances=True
    )
    res = run_predict(
        RunConfig(scenes=(str(scene),), model=str(spec), out=str(tmp_path / "run"))
    )
    assert res.ok, res.scenes[0].error
    det = gpd.read_file(res.scenes[0].outputs["detections"], layer="detections")
    assert len(det) == 1 and det["kind"].iloc[0] == "instance"
    assert det.geometry.iloc[0].area == pytest.approx(
        float(img[0].sum()) * 4.0
    )  # 2 m pixels
    np.testing.assert_array_equal(
        det.geometry.iloc[0].bounds, boxes_to_map(SOUTH_UP_NEG, [[4, 25, 95, 80]])[0]
    )
    assert det["n_tiles"].iloc[0] >= 6
