"""``prioritize --unit points|superpixels`` and the labels that come back from the queue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.io.run_record import resolve_path
from geolabel.io.scene import open_scene
from geolabel.labels import IGNORE_INDEX, rasterize_labels, read_labels
from geolabel.priority import prioritize
from tests.uncertainty.helpers import half_run

RIGHT_X = 500000.0 + 96 * 10.0  # the uncertain half of the 192-column scene


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return half_run(tmp_path_factory.mktemp("queue"))


def test_points_default_queue_is_uncertain_spread_and_queued(run_dir: Path) -> None:
    res = prioritize(run_dir, 12, min_distance=40.0)  # auto, points
    df = pyogrio.read_dataframe(res.gpkg, layer="next_to_label")
    assert len(df) == 12 and set(df.geometry.geom_type) == {"Point"}
    assert set(df["unit"]) == {"points"} and set(df["strategy"]) == {"auto"}
    assert set(df["status"]) == {"queued"} and set(df["label"].fillna("")) == {""}
    # nothing labelled yet: the cold-start rule makes every other point a typical one
    # (TypiClust); the others alternate between the predicted classes (the confident
    # half is one class, the coin-toss half the other; cold picks count too), so at
    # least half of them lie in the uncertain half
    cold = df["reason"].str.contains("cold start: most typical")
    assert cold.sum() == 6
    assert (df.geometry.x[~cold] >= RIGHT_X).sum() >= 3
    assert df["reason"][~cold].str.contains("has the fewest labels").all()
    xy = np.c_[df.geometry.x, df.geometry.y]
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(12) * 1e9
    assert d.min() >= 40.0
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["priority"]["unit"] == "points" and doc["priority"]["picked"] == 12


def test_warm_margin_points_and_superpixels(run_dir: Path) -> None:
    rows = prioritize(run_dir, 8, strategy="margin+diverse", unit="points").rows
    assert all(r["geometry"].x >= RIGHT_X for r in rows)
    sp = prioritize(run_dir, 5, strategy="margin", unit="superpixels").rows
    assert len(sp) == 5
    for r in sp:
        assert r["geometry"].geom_type == "Polygon" and r["unit"] == "superpixels"
        assert r["geometry"].bounds[0] >= RIGHT_X - 1e-6  # homogeneous: in the half
        assert r["score"] == pytest.approx(1.0, abs=1e-3)


def test_labels_come_back_through_accept_train_and_exclude(
    run_dir: Path, tmp_path: Path
) -> None:
    res = prioritize(run_dir, 6, strategy="margin", unit="points")
    gdf = read_labels(res.gpkg, layer="next_to_label")
    gdf.loc[gdf.index[:3], "label"] = ["class1", "class0", "class1"]  # a QGIS user
    queue = tmp_path / "queue.gpkg"
    gdf.to_file(queue, layer="next_to_label", driver="GPKG")
    labels = tmp_path / "labels.gpkg"
    r = CliRunner().invoke(
        cli, ["accept", f"{queue}:next_to_label", "--labels", str(labels)]
    )
    assert r.exit_code == 0, r.output
    got = read_labels(labels, layer="labels")
    assert len(got) == 3 and list(got["label"]) == ["class1", "class0", "class1"]
    assert set(got["review"]) == {"labelled"}
    # train reads the queue as it is: unlabelled points add nothing
    scene = json.loads((run_dir / "run.json").read_text())["scenes"][0]["scene"]
    grid = open_scene(resolve_path(run_dir, scene)).grid
    raster = rasterize_labels(
        gdf, grid, num_classes=2, lookup={"class0": 0, "class1": 1}, point_buffer=0
    )
    assert int((raster != IGNORE_INDEX).sum()) == 3
    # labelled points are never asked again
    again = prioritize(run_dir, 6, strategy="margin", unit="points", exclude=(labels,))
    asked = {(round(r["geometry"].x), round(r["geometry"].y)) for r in again.rows}
    done = {(round(p.centroid.x), round(p.centroid.y)) for p in got.geometry}
    assert not asked & done
