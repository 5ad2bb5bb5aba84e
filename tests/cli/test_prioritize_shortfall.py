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
    assert "left out by --min-distance 1000" in err
    assert "a smaller --min-distance" in err


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
