"""``prioritize`` with fewer picks than ``--budget`` says why and how to get more
(issue 19 item 3), on stderr, with exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from geolabel.cli._shortfall import shortfall_message
from geolabel.cli.main import cli
from tests.uncertainty.helpers import half_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return half_run(tmp_path_factory.mktemp("short"))


def _prioritize(
    run: Path,
    *args: str,
    unit: tuple[str, ...] = ("--unit", "regions", "--strategy", "entropy"),
) -> tuple[list[dict], str]:
    r = CliRunner().invoke(cli, ["prioritize", str(run), *unit, *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["picks"], r.stderr


def test_full_queue_says_nothing(run_dir: Path) -> None:
    picks, err = _prioritize(run_dir, "--budget", "2")
    assert len(picks) == 2 and err == ""


def test_too_few_candidates(run_dir: Path) -> None:
    picks, err = _prioritize(run_dir, "--budget", "20")
    assert len(picks) < 20
    assert err.startswith(f"geolabel: prioritize: {len(picks)} of --budget 20 picked")
    assert f"{len(picks)} candidate tiles" in err
    assert "--region-size N" in err and "lower --min-valid" in err
    assert err.count("\n") == 1


def test_spacing_is_named(run_dir: Path) -> None:
    _, err = _prioritize(
        run_dir, "--budget", "20", "--region-size", "16", "--min-distance", "1000"
    )
    assert "left out by --min-distance 1000 (metres)" in err  # EPSG:32633
    assert "a smaller --min-distance (in metres)" in err


def test_exclusions_are_named(run_dir: Path, tmp_path: Path) -> None:
    labelled = tmp_path / "labelled.gpkg"
    gpd.GeoDataFrame(
        geometry=[box(499000, 3990000, 503000, 4001000)], crs="EPSG:32633"
    ).to_file(labelled)
    picks, err = _prioritize(run_dir, "--budget", "5", "--exclude", str(labelled))
    assert picks == []
    assert "0 of --budget 5 picked" in err and "inside --exclude footprints" in err


def test_points_queue_names_its_unit(run_dir: Path, tmp_path: Path) -> None:
    labelled = tmp_path / "labelled.gpkg"
    gpd.GeoDataFrame(
        geometry=[box(499000, 3990000, 503000, 4001000)], crs="EPSG:32633"
    ).to_file(labelled)
    picks, err = _prioritize(
        run_dir, "--budget", "5", "--exclude", str(labelled), unit=("--unit", "points")
    )
    assert picks == [] and "candidate points" in err
    assert "inside --exclude footprints" in err


def test_no_counts_no_message() -> None:
    assert shortfall_message({}) is None
    assert (
        shortfall_message({"budget": 3, "picked": 3, "candidates": 9, "excluded": 0})
        is None
    )


def test_min_distance_says_the_crs_units() -> None:
    base = {"budget": 9, "picked": 1, "candidates": 50, "excluded": 0,
            "min_distance": 500.0, "unit": "regions", "region_size": 32}  # fmt: skip
    geographic = shortfall_message({**base, "crs_units": "degree"})
    assert geographic is not None
    assert "49 left out by --min-distance 500 (degrees)" in geographic
    assert "a smaller --min-distance (in degrees)" in geographic
    feet = shortfall_message({**base, "crs_units": "US survey foot"})
    assert feet is not None and "(US survey feet)" in feet
    none = shortfall_message({**base, "crs_units": None})
    assert none is not None and "(scene coordinate units (no CRS))" in none


def test_min_distance_help_says_the_units() -> None:
    r = CliRunner().invoke(cli, ["prioritize", "--help"])
    assert "degrees for a geographic CRS" in " ".join(r.output.split())


def test_region_larger_than_every_scene_is_named(run_dir: Path) -> None:
    # the scene is 128 x 192 px: a 512-px region never has half its area inside
    picks, err = _prioritize(
        run_dir,
        "--budget",
        "3",
        "--region-size",
        "512",
        unit=("--unit", "regions", "--strategy", "auto"),
    )
    assert picks == []
    assert err.startswith(
        "geolabel: prioritize: 0 of --budget 3 picked: no 512-pixel region fits, the "
        "largest scene (128 x 192 px) is smaller than a region"
    )
    assert "--region-size 221 or smaller" in err and err.count("\n") == 1
    assert "min-valid" not in err  # not the cause
    # a region that fits the scene: the message stays the usual one
    _, err = _prioritize(
        run_dir,
        "--budget",
        "500",
        "--region-size",
        "64",
        unit=("--unit", "regions", "--strategy", "auto"),
    )
    assert "candidate 64-pixel regions" in err
