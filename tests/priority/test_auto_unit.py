"""``--unit auto``: points on coarse pixels, superpixels on fine ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from affine import Affine

from geolabel.config import RunConfig
from geolabel.grid import SceneGrid
from geolabel.pipeline import run_predict
from geolabel.priority import prioritize
from geolabel.priority.units import auto_unit
from geolabel.testing import make_scene, write_toy_spec


@pytest.mark.parametrize(
    ("transform", "crs", "metres"),
    [
        (Affine(30, 0, 500000, 0, -30, 4e6), "EPSG:32633", 30.0),
        (Affine(1, 0, 1e6, 0, -1, 2e5), "EPSG:2263", 0.3048),  # US survey feet
        (Affine(1e-4, 0, 10, 0, -1e-4, 60), "EPSG:4326", 8.4),  # ~ at 60 N
        (Affine(1, 0, 0, 0, -1, 0), None, None),
    ],
)
def test_ground_resolution(
    transform: Affine, crs: str | None, metres: float | None
) -> None:
    got = SceneGrid((10, 10), transform, crs).ground_resolution_m()
    if metres is None:
        assert got is None
    else:
        assert got == pytest.approx(metres, rel=0.02)


@pytest.mark.parametrize(("pixel", "unit"), [(30.0, "points"), (0.5, "superpixels")])
def test_the_default_unit_follows_the_pixel_size(
    tmp_path: Path, pixel: float, unit: str
) -> None:
    t = Affine(pixel, 0, 500000, 0, -pixel, 4_000_000)
    scene = make_scene(tmp_path / "s.tif", shape=(80, 90), transform=t)
    spec = write_toy_spec(tmp_path / "toy.yaml", tile_size=48)
    run = tmp_path / "run"
    config = RunConfig(scenes=(str(scene),), model=str(spec), out=str(run))
    assert run_predict(config).ok
    res = prioritize(run, 5)
    assert {r["unit"] for r in res.rows} == {unit}
    record = json.loads((run / "run.json").read_text())["priority"]
    assert record["unit"] == unit
    assert record["unit_from"]["auto"] == unit == auto_unit(pixel)
    assert record["unit_from"]["resolution_m"] == pytest.approx(pixel)
    # an explicit unit wins
    assert {r["unit"] for r in prioritize(run, 3, unit="regions").rows} == {"regions"}
