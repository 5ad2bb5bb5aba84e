"""``geolabel accept``: thresholds, selections, no duplicates, QGIS edits respected.

The suggestions come from a real ``geolabel predict`` run (toy convolution model on a
synthetic scene); edits are simulated by rewriting the layer with pyogrio, as QGIS
would save it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.labels import Selection, accept_suggestions
from geolabel.testing import make_scene, write_toy_spec


def _run(*args: str) -> tuple[int, dict | None, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    out = json.loads(r.stdout) if r.exit_code == 0 and r.stdout.strip() else None
    return r.exit_code, out, r.stderr


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("accept")
    scene = make_scene(d / "scene.tif", shape=(90, 110))
    spec = write_toy_spec(d / "toy.yaml", tile_size=64)
    code, _, err = _run("predict", str(scene), "-m", str(spec), "-o", str(d / "run"))
    assert code == 0, err
    path = d / "run" / "scene" / "scene_predictions.gpkg"
    assert len(pyogrio.read_dataframe(path, layer="predictions")) > 20
    return path


@pytest.fixture
def suggestions(predicted: Path, tmp_path: Path) -> Path:
    p = tmp_path / "suggestions.gpkg"
    shutil.copy(predicted, p)
    return p


def _labels(path: Path) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(path, layer="labels")


def _rewrite(path: Path, gdf: gpd.GeoDataFrame) -> None:
    """Save the suggestions layer in place, like a QGIS edit session."""
    pyogrio.write_dataframe(gdf, path, layer="predictions", promote_to_multi=True)


def test_threshold_takes_exactly_the_scores_above(
    suggestions: Path, tmp_path: Path
) -> None:
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    t = float(np.median(sugg["score"]))
    labels = tmp_path / "labels.gpkg"
    code, out, err = _run(
        "accept", str(suggestions), "--threshold", str(t), "-o", str(labels)
    )
    assert code == 0, err
    got = _labels(labels)
    expected = sugg[sugg["score"] >= t]
    assert out["added"] == len(got) == len(expected) > 0
    assert sorted(got["source_id"]) == sorted(expected["id"])
    assert set(got["source_run_id"]) == set(sugg["run_id"])
    assert (got["review"] == "threshold").all()
    # GeoPackage 1.2 (QGIS 3.22 reads it)
    import sqlite3

    with sqlite3.connect(labels) as db:
        assert db.execute("pragma user_version").fetchone()[0] == 10200


def test_rerun_adds_nothing(suggestions: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.gpkg"
    _, first, _ = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(labels)
    )
    before = labels.read_bytes()
    code, again, err = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(labels)
    )
    assert code == 0, err
    assert again["added"] == 0 and again["duplicates"] == first["added"] > 0
    assert len(_labels(labels)) == first["added"]
    assert labels.read_bytes() == before  # nothing to write, file untouched


def test_same_geometry_from_another_run_is_a_duplicate(
    suggestions: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.gpkg"
    accept_suggestions(suggestions, labels, selection=Selection(threshold=0.0))
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    sugg["run_id"] = "another-run"
    _rewrite(suggestions, sugg)
    res = accept_suggestions(suggestions, labels, selection=Selection(threshold=0.0))
    assert res.added == 0 and res.duplicates == len(sugg)


def test_per_class_threshold(suggestions: Path, tmp_path: Path) -> None:
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    cls = sugg["class_name"].value_counts().index[0]
    t_cls = float(sugg.loc[sugg["class_name"] == cls, "score"].median())
    labels = tmp_path / "labels.gpkg"
    code, _, err = _run(
        "accept",
        str(suggestions),
        "--threshold",
        "0.4",
        "--threshold",
        f"{cls}={t_cls}",
        "-o",
        str(labels),
    )
    assert code == 0, err
    is_cls = sugg["class_name"] == cls
    want = sugg[
        (is_cls & (sugg["score"] >= t_cls)) | (~is_cls & (sugg["score"] >= 0.4))
    ]
    assert sorted(_labels(labels)["source_id"]) == sorted(want["id"])
    # only the per-class threshold: other classes are not taken
    only = tmp_path / "only.gpkg"
    _run("accept", str(suggestions), "--threshold", f"{cls}={t_cls}", "-o", str(only))
    assert set(_labels(only)["class_name"]) == {cls}


def test_ids_and_inside(suggestions: Path, tmp_path: Path) -> None:
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    ids = [int(i) for i in sugg["id"].iloc[[0, 3, 5]]]
    labels = tmp_path / "labels.gpkg"
    code, _, err = _run(
        "accept", str(suggestions), "--ids", ",".join(map(str, ids)), "-o", str(labels)
    )
    assert code == 0, err
    assert sorted(_labels(labels)["source_id"]) == sorted(ids)
    # polygons: the left half of the scene
    xmin, ymin, xmax, ymax = sugg.total_bounds
    area = gpd.GeoDataFrame(
        geometry=[shapely.box(xmin, ymin, (xmin + xmax) / 2, ymax)], crs=sugg.crs
    )
    area_path = tmp_path / "area.gpkg"
    pyogrio.write_dataframe(area, area_path, layer="area")
    inside = tmp_path / "inside.gpkg"
    code, _, err = _run(
        "accept", str(suggestions), "--inside", f"{area_path}:area", "-o", str(inside)
    )
    assert code == 0, err
    pts = shapely.point_on_surface(sugg.geometry.to_numpy())
    want = sugg["id"][shapely.contains(area.geometry.iloc[0], pts)]
    assert 0 < len(want) < len(sugg)
    assert sorted(_labels(inside)["source_id"]) == sorted(want)


def test_qgis_edits_are_respected(suggestions: Path, tmp_path: Path) -> None:
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    order = sugg.sort_values("score", ascending=False)
    rejected = int(order["id"].iloc[0])  # the best score: would pass any threshold
    low = order[order["score"] < 0.5]
    accepted, edited = int(low["id"].iloc[0]), int(low["id"].iloc[1])
    sugg.loc[sugg["id"] == rejected, "status"] = "rejected"
    sugg.loc[sugg["id"] == accepted, "status"] = "Accepted "  # QGIS user typing
    new_geom = shapely.box(*sugg.loc[sugg["id"] == edited].total_bounds)
    sugg.loc[sugg["id"] == edited, ["status", "label"]] = ["edited", "class2"]
    sugg.loc[sugg["id"] == edited, "geometry"] = new_geom
    _rewrite(suggestions, sugg)
    labels = tmp_path / "labels.gpkg"
    code, out, err = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(labels)
    )
    assert code == 0, err
    got = _labels(labels).set_index("source_id")
    assert rejected not in got.index
    assert got.loc[accepted, "review"] == "accepted"
    assert (
        got.loc[edited, "review"] == "edited" and got.loc[edited, "label"] == "class2"
    )
    assert shapely.equals(got.loc[edited, "geometry"], new_geom)
    want = set(sugg["id"][sugg["score"] >= 0.5]) - {rejected} | {accepted, edited}
    assert set(got.index) == want
    assert out["rejected"] == 1 and out["reviewed"] == 2
    # a later edit of an already accepted label replaces it
    sugg.loc[sugg["id"] == accepted, "label"] = "class0"
    sugg.loc[sugg["id"] == accepted, "geometry"] = new_geom.buffer(5)
    _rewrite(suggestions, sugg)
    code, out, err = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(labels)
    )
    assert code == 0, err
    assert out["added"] == 0 and out["replaced"] == 1
    after = _labels(labels).set_index("source_id")
    assert len(after) == len(got) and after.loc[accepted, "label"] == "class0"


def test_reviewed_only_without_criteria_and_other_layers_kept(
    suggestions: Path, tmp_path: Path
) -> None:
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    sugg.loc[sugg.index[:2], "status"] = "accepted"
    _rewrite(suggestions, sugg)
    labels = tmp_path / "labels.gpkg"
    keep = gpd.GeoDataFrame(
        {"label": ["class1"]}, geometry=[shapely.Point(0, 0)], crs=sugg.crs
    )
    pyogrio.write_dataframe(keep, labels, layer="points")
    res = accept_suggestions(suggestions, labels, selection=Selection())
    assert res.added == 2 and res.not_selected == len(sugg) - 2
    assert {str(n) for n, _ in pyogrio.list_layers(labels)} == {"points", "labels"}


def test_bad_input_is_one_clean_error(suggestions: Path, tmp_path: Path) -> None:
    code, _, err = _run(
        "accept",
        str(suggestions),
        "--threshold",
        "x=high",
        "-o",
        str(tmp_path / "l.gpkg"),
    )
    assert code == 2 and "--threshold" in err
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    sugg.loc[sugg.index[0], "status"] = "maybe"
    _rewrite(suggestions, sugg)
    code, _, err = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(tmp_path / "l.gpkg")
    )
    assert (
        code == 2
        and "unknown status values ['maybe']" in err
        and "Traceback" not in err
    )
    assert not (tmp_path / "l.gpkg").exists()


def _relabel_in_run(predicted: Path, label: str) -> tuple[Path, int]:
    """A reviewed copy inside the run's scene folder: one feature relabelled, edited."""
    path = predicted.with_name("reviewed_predictions.gpkg")
    shutil.copy(predicted, path)
    sugg = pyogrio.read_dataframe(path, layer="predictions")
    fid = int(sugg.loc[sugg["class_name"] != "class2", "id"].iloc[0])
    sugg.loc[sugg["id"] == fid, ["status", "label"]] = ["edited", label]
    _rewrite(path, sugg)
    return path, fid


def test_unknown_label_is_refused_naming_the_classes(
    predicted: Path, tmp_path: Path
) -> None:
    path, _ = _relabel_in_run(predicted, "wetland")
    out = tmp_path / "labels.gpkg"
    r = CliRunner().invoke(cli, ["accept", str(path), "-o", str(out)])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "['wetland']" in r.stderr and "['class0', 'class1', 'class2']" in r.stderr
    assert not out.exists()


def test_relabelled_feature_gets_the_class_name_and_id_of_its_label(
    predicted: Path, tmp_path: Path
) -> None:
    path, fid = _relabel_in_run(predicted, "CLASS2")
    out = tmp_path / "labels.gpkg"
    code, _, err = _run("accept", str(path), "-o", str(out))
    assert code == 0, err
    got = _labels(out).set_index("source_id")
    assert (got.loc[fid, "class_name"], got.loc[fid, "class_id"]) == ("class2", 2)
    assert set(got["class_id"]) <= {0, 1, 2}
    assert all(got["class_name"] == got["class_id"].map(lambda i: f"class{i}"))


def test_model_option_checks_labels_outside_a_run(
    suggestions: Path, tmp_path: Path
) -> None:
    sugg = pyogrio.read_dataframe(suggestions, layer="predictions")
    sugg.loc[sugg.index[0], ["status", "label"]] = ["accepted", "lava"]
    _rewrite(suggestions, sugg)
    spec = write_toy_spec(tmp_path / "toy.yaml", tile_size=64)
    out = tmp_path / "labels.gpkg"
    code, _, err = _run("accept", str(suggestions), "-o", str(out), "-m", str(spec))
    assert code == 2 and "['lava']" in err
    code, _, err = _run("accept", str(suggestions), "-o", str(out))  # nothing known
    assert code == 0, err


def test_missing_output_folder_is_created(suggestions: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "labels.gpkg"
    code, res, err = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(out)
    )
    assert code == 0, err
    assert res is not None and res["added"] > 0 and len(_labels(out)) == res["added"]
    assert [p.name for p in out.parent.iterdir()] == ["labels.gpkg"]  # no partials


def test_output_under_a_file_is_one_error_line(
    suggestions: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    out = blocker / "labels.gpkg"
    code, _, err = _run(
        "accept", str(suggestions), "--threshold", "0.5", "-o", str(out)
    )
    assert code == 2, err
    assert err.splitlines() == [
        f"geolabel: error: {out}: its folder {str(blocker)!r} is a file"
    ]
