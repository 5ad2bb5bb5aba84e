"""Tiles shrink to fit the scene only for models that take other sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from geolabel.config import RunConfig
from geolabel.execution.plan import open_run_scene, plan_scene
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.pipeline import run_predict
from geolabel.testing import make_scene, toy_spec

from ..conftest import requires_torch


def _spec(**changes: object) -> ModelSpec:
    raw = toy_spec(bands=2, classes=2, tile_size=64)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        else:
            raw[section] = value
    return ModelSpec.model_validate(raw)


def test_which_models_take_other_sizes() -> None:
    assert _spec().size_multiple() is None  # unknown architecture: tile_size only
    assert _spec(input__size_multiple=32).size_multiple() == 32
    unet = {"name": "geolabel.unet", "params": {"depth": 4}}
    assert _spec(architecture=unet).size_multiple() == 16
    lin = {"name": "geolabel.linear", "params": {}}
    assert _spec(architecture=lin).size_multiple() == 1
    fixed = _spec(architecture=unet, input__fixed_size=True)
    assert fixed.size_multiple() is None


@pytest.mark.parametrize(("declared", "expected"), [(None, (64, 64)), (8, (56, 56))])
def test_plan_fits_tiles_to_the_scene(
    tmp_path: Path, declared: int | None, expected: tuple[int, int]
) -> None:
    raw = toy_spec(bands=3, classes=2, tile_size=64)
    raw["recommended_overlap"] = 8
    if declared:
        raw["input"]["size_multiple"] = declared
    spec_path = tmp_path / "toy.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    scene = make_scene(tmp_path / "s.tif", shape=(100, 120))
    spec = load_spec(spec_path)
    config = RunConfig(scenes=(str(scene),), model=str(spec_path), out=str(tmp_path))
    grid, _ = plan_scene(open_run_scene(scene, spec, config), spec, config)
    # 48-px cores: 3 x 3 tiles of 64 px; fitted: 34 + 16 -> 56 rows, 40 + 16 -> 56 cols
    assert grid.shape == (3, 3)
    assert grid.tile_shape == expected


@requires_torch
def test_a_unet_run_records_its_fitted_tiles(tmp_path: Path) -> None:
    from geolabel.testing.unet import write_unet_spec

    data = np.random.default_rng(0).normal(size=(3, 200, 230)).astype(np.float32)
    scene = make_scene(tmp_path / "s.tif", data=data)
    spec = write_unet_spec(
        tmp_path / "m",
        bands=3,
        classes=3,
        base_channels=4,
        depth=2,
        tile_size=128,
        overlap=16,
    )
    out = tmp_path / "out"
    config = RunConfig(
        scenes=(str(scene),), model=str(spec), out=str(out), precision="fp32"
    )
    result = run_predict(config)
    assert result.ok, [s.error for s in result.scenes]
    run = json.loads((out / "run.json").read_text())
    # 96-px cores: 3 x 3 tiles; fitted to 67 + 32 -> 100 rows, 77 + 32 -> 112 cols
    assert run["scenes"][0]["tile_size"] == [100, 112]
    assert run["scenes"][0]["tiles"] == 9
