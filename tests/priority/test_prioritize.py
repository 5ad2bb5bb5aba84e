"""``geolabel prioritize`` on runs whose uncertainty is known by construction."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from geolabel.cli.main import cli
from geolabel.errors import ConfigError
from geolabel.priority import prioritize
from tests.uncertainty.helpers import half_scene, run_ambiguity

RIGHT_X = (
    500000.0 + 96 * 10.0
)  # the uncertain half of the 192-column scene (10 m pixels)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("prio")
    scene = half_scene(tmp / "half.tif", shape=(128, 192))
    run_ambiguity([scene], tmp / "run", model_uncertainty="tta")
    return tmp / "run"


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least-confidence"])
@pytest.mark.parametrize("region_size", [None, 16])
def test_uncertain_half_ranks_first(
    run_dir: Path, strategy: str, region_size: int | None
) -> None:
    res = prioritize(
        run_dir, 4, unit="regions", strategy=strategy, region_size=region_size
    )
    assert len(res.rows) == 4
    for row in res.rows:
        assert row["geometry"].bounds[0] >= RIGHT_X - 1e-6, row
        assert row["score"] == pytest.approx(1.0, abs=1e-4)
        assert row["strategy"] == strategy and strategy in row["reason"]
    # the whole ranking: uncertain regions, then mixed ones, then confident ones
    allr = prioritize(
        run_dir, 10_000, unit="regions", strategy=strategy, region_size=region_size
    ).rows
    kind = [
        0
        if r["geometry"].bounds[0] >= RIGHT_X - 1e-6
        else 2
        if r["geometry"].bounds[2] <= RIGHT_X + 1e-6
        else 1
        for r in allr
    ]
    assert kind == sorted(kind) and kind[0] == 0 and kind[-1] == 2


def test_outputs_layer_csv_and_run_json(run_dir: Path) -> None:
    res = prioritize(
        run_dir, 3, unit="regions", strategy="entropy", region_size=32, min_distance=50
    )
    df = pyogrio.read_dataframe(res.gpkg, layer="next_to_label")
    assert list(df["rank"]) == [1, 2, 3]
    assert {"rank", "score", "strategy", "reason", "scene", "region_id"} <= set(
        df.columns
    )
    assert df.crs.to_epsg() == 32633
    rows = list(csv.DictReader(res.csv.open()))
    assert [r["region_id"] for r in rows] == list(df["region_id"])
    assert rows[0]["crs"] == "EPSG:32633"
    prioritize(
        run_dir, 2, unit="regions", strategy="random", seed=3
    )  # a rerun replaces the entries
    doc = json.loads((run_dir / "run.json").read_text())
    roles = [o["role"] for o in doc["outputs"]]
    assert roles.count("next_to_label") == 1 and roles.count("next_to_label_csv") == 1
    assert doc["priority"]["strategy"] == "random" and doc["priority"]["budget"] == 2
    assert not list(run_dir.glob("*.partial*"))


def test_random_is_seeded_and_bald_uses_the_model_channel(run_dir: Path) -> None:
    a = [
        r["region_id"]
        for r in prioritize(
            run_dir, 5, unit="regions", strategy="random", seed=1, region_size=16
        ).rows
    ]
    b = [
        r["region_id"]
        for r in prioritize(
            run_dir, 5, unit="regions", strategy="random", seed=1, region_size=16
        ).rows
    ]
    c = [
        r["region_id"]
        for r in prioritize(
            run_dir, 5, unit="regions", strategy="random", seed=2, region_size=16
        ).rows
    ]
    assert a == b != c
    rows = prioritize(
        run_dir, 2, strategy="bald", unit="regions"
    ).rows  # the pointwise model: TTA agrees
    assert all(
        "tta_disagreement" in r["reason"] and r["score"] == pytest.approx(0, abs=1e-5)
        for r in rows
    )


def test_exclusion_in_another_crs_and_min_distance(
    run_dir: Path, tmp_path: Path
) -> None:
    # label the top half of the uncertain area, written in EPSG:4326
    labelled = gpd.GeoDataFrame(
        geometry=[box(RIGHT_X, 4000000.0 - 640.0, RIGHT_X + 960.0, 4000000.0)],
        crs="EPSG:32633",
    ).to_crs("EPSG:4326")
    path = tmp_path / "labelled.gpkg"
    labelled.to_file(path, driver="GPKG")
    res = prioritize(
        run_dir,
        6,
        unit="regions",
        strategy="entropy",
        region_size=16,
        exclude=(path,),
        min_distance=100.0,
    )
    zone = labelled.to_crs("EPSG:32633").geometry[0]
    geoms = [r["geometry"] for r in res.rows]
    assert res.rows and all(
        g.intersection(zone).area < 1.0 for g in geoms
    )  # reprojection wobble only
    assert all(g.bounds[0] >= RIGHT_X - 1e-6 for g in geoms)  # still the uncertain half
    for i, g in enumerate(geoms):
        assert all(g.distance(h) >= 100.0 for h in geoms[i + 1 :])


def test_one_global_ranking_across_scenes(tmp_path: Path) -> None:
    calm = half_scene(tmp_path / "calm.tif", uncertain="none")
    wild = half_scene(tmp_path / "wild.tif", uncertain="all", x0=600000.0)
    run_ambiguity([calm, wild], tmp_path / "run")
    rows = prioritize(
        tmp_path / "run", 20, unit="regions", strategy="entropy", region_size=32
    ).rows
    scenes = [Path(r["scene"]).name for r in rows]
    assert set(scenes) == {"calm.tif", "wild.tif"}
    n_wild = scenes.count("wild.tif")
    assert scenes[:n_wild] == ["wild.tif"] * n_wild and n_wild == 15  # 3 x 5 regions


def test_cli_and_clean_errors(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(
        cli,
        [
            "prioritize",
            str(run_dir),
            "--unit",
            "regions",
            "--strategy",
            "entropy",
            "--budget",
            "2",
            "--spread",
            "k-center",
            "--balance-classes",
            "--region-size",
            "32",
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["picks"]) == 2
    bad = tmp_path / "bad.gpkg"
    bad.write_text("not a geopackage")
    r = runner.invoke(
        cli, ["prioritize", str(run_dir), "-n", "2", "--exclude", str(bad)]
    )
    assert r.exit_code == 2 and "bad.gpkg" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["prioritize", str(tmp_path), "-n", "2"])
    assert r.exit_code == 2 and "no run.json" in r.output
    nomodel = tmp_path / "plain"
    run_ambiguity([half_scene(tmp_path / "p.tif")], nomodel)
    r = runner.invoke(
        cli,
        [
            "prioritize",
            str(nomodel),
            "-n",
            "2",
            "--unit",
            "regions",
            "--strategy",
            "bald",
        ],
    )
    assert r.exit_code == 2 and "model-based uncertainty" in r.output
    with pytest.raises(ConfigError, match="--budget"):
        prioritize(run_dir, 0)
    assert np.isfinite(1.0)


def test_scenes_in_other_crss_are_ranked_together_in_the_first_scenes_crs(
    tmp_path: Path,
) -> None:
    calm = half_scene(tmp_path / "calm.tif", uncertain="none", crs="EPSG:32633")
    wild = half_scene(tmp_path / "wild.tif", uncertain="all", crs="EPSG:32634")
    run_ambiguity([calm, wild], tmp_path / "run")
    res = prioritize(
        tmp_path / "run",
        3,
        unit="regions",
        strategy="entropy",
        region_size=32,
        min_distance=10.0,
    )
    df = pyogrio.read_dataframe(res.gpkg, layer="next_to_label")
    assert df.crs.to_epsg() == 32633
    assert [Path(s).name for s in df["scene"]] == ["wild.tif"] * 3
    # UTM 34 easting 500 km lies about 6 degrees east, far past UTM 33's 500 km
    back = gpd.GeoSeries(list(df.geometry), crs="EPSG:32633").to_crs("EPSG:32634")
    assert all(499_990 < g.bounds[0] < 501_700 for g in back)


def test_everything_labelled_gives_an_empty_queue_with_columns(
    run_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "all.gpkg"
    gpd.GeoDataFrame(geometry=[box(0, 0, 1e7, 1e7)], crs="EPSG:32633").to_file(
        path, driver="GPKG"
    )
    res = prioritize(run_dir, 5, unit="regions", strategy="entropy", exclude=(path,))
    info = pyogrio.read_info(res.gpkg, layer="next_to_label")
    assert res.rows == [] and info["features"] == 0
    assert {"rank", "score", "strategy", "reason", "scene", "region_id"} <= set(
        info["fields"]
    )
    assert res.csv.read_text().startswith("rank,score,strategy,unit,reason")
