"""Detection runs: boxes go to Label Studio as polygons and come back, and to COCO as bboxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.testing import make_scene
from geolabel.testing.detectors import draw_square, write_square_detector_spec

from .test_label_studio import as_ls_export

pycocotools_coco = pytest.importorskip("pycocotools.coco")

T = Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)
SQUARES = [(5, 23, 10, 0), (23, 5, 10, 1), (51, 51, 10, 0), (40, 80, 9, 1)]


def _ok(*args: str) -> dict:
    r = CliRunner().invoke(cli, ["-q", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout) if r.stdout.strip() else {}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("det")
    img = np.zeros((3, 70, 96), np.float32)
    for r, c, side, label in SQUARES:
        draw_square(img, r, c, side, label=label, score=0.9)
    scene = make_scene(d / "squares.tif", data=img, transform=T, nodata=-1.0)
    spec = write_square_detector_spec(d / "det.yaml", tile_size=48, overlap=10)
    _ok("predict", str(scene), "-m", str(spec), "-o", str(d / "run"))
    return {"dir": d, "scene": scene, "spec": spec, "run": d / "run"}


def _pixel_boxes(gdf, t: Affine) -> set[tuple[int, ...]]:
    inv = ~t
    out = set()
    for g in gdf.geometry:
        x0, y0, x1, y1 = g.bounds
        (c0, r0), (c1, r1) = inv @ (x0, y1), inv @ (x1, y0)
        out.add(
            tuple(
                round(v) for v in (min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1))
            )
        )
    return out


def test_boxes_round_trip_through_label_studio_tasks(
    run: dict[str, Path], tmp_path: Path
) -> None:
    _ok(
        "label-studio",
        "export",
        str(run["run"]),
        "-o",
        str(tmp_path / "ls"),
        "--chip-size",
        "96",
    )
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert len(tasks) == 1
    regions = tasks[0]["predictions"][0]["result"]
    assert len(regions) == len(SQUARES)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(as_ls_export(tasks, ("", "", ""))))
    _ok(
        "label-studio",
        "import",
        str(export),
        "-o",
        str(tmp_path / "l.gpkg"),
        "-m",
        str(run["spec"]),
    )
    got = pyogrio.read_dataframe(tmp_path / "l.gpkg", layer="labels")
    want = {(c, r, c + s, r + s) for r, c, s, _ in SQUARES}
    assert _pixel_boxes(got, T) == want
    names = {(c, r, c + s, r + s): f"thing{k}" for r, c, s, k in SQUARES}
    for g, name in zip(got.geometry, got["class_name"], strict=True):
        assert names[next(iter(_pixel_boxes(got[got.geometry == g], T)))] == name


def test_accepted_boxes_export_as_coco_bboxes(
    run: dict[str, Path], tmp_path: Path
) -> None:
    det = run["run"] / "squares" / "squares_detections.gpkg"
    _ok(
        "accept", f"{det}:detections", "--threshold", "0.5",
        "-o", str(tmp_path / "labels.gpkg"),
    )  # fmt: skip
    out = tmp_path / "chips"
    summary = _ok(
        "export-chips", str(run["scene"]), "--labels", f"{tmp_path / 'labels.gpkg'}:labels",
        "-m", str(run["spec"]), "-o", str(out), "--chip-size", "48", "--stride", "48",
    )  # fmt: skip
    coco = pycocotools_coco.COCO(str(out / "coco.json"))
    want = {(c, r, c + s, r + s): k + 1 for r, c, s, k in SQUARES}
    found = {}
    for img in coco.loadImgs(coco.getImgIds()):
        r0, c0, _, _ = img["geolabel"]["window"]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            x, y, w, h = ann["bbox"]
            box = (round(x + c0), round(y + r0), round(x + w + c0), round(y + h + r0))
            found.setdefault(box, set()).add(ann["category_id"])
            assert ann["area"] == pytest.approx(w * h)
    # boxes inside one chip come out whole; a box cut by a chip edge comes out in parts
    whole = {b: k for b, k in want.items() if b in found}
    assert len(whole) >= 3 and all(found[b] == {k} for b, k in whole.items())
    assert summary["annotations"] >= len(SQUARES)
    assert all(shapely.box(*b).area > 0 for b in found)
