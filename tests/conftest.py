"""Shared fixtures: synthetic scenes and toy model specs (numpy only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from geolabel.testing import make_scene, toy_spec, write_toy_spec

from .io._remote_helpers import NAMES

DATA = Path(__file__).parent / "data"
LANDSAT8 = DATA / "landsat8-foz" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"

requires_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch"
)
requires_csmask = pytest.mark.skipif(
    importlib.util.find_spec("ukis_csmask") is None, reason="needs ukis-csmask"
)


@pytest.fixture
def scene_path(tmp_path: Path) -> Path:
    """An odd, non-square 3-band float scene with a nodata corner."""
    return make_scene(
        tmp_path / "scene.tif",
        shape=(157, 203),
        nodata=-1.0,
        nodata_region=(slice(0, 20), slice(0, 30)),
    )


@pytest.fixture
def toy_spec_path(tmp_path: Path) -> Path:
    """A toy convolution model spec (receptive field 9)."""
    return write_toy_spec(tmp_path / "toy.yaml", tile_size=64)


@pytest.fixture
def spec5(tmp_path: Path) -> Path:
    """A toy spec for 5 named bands (``NAMES``), 3 classes, 64 px tiles."""
    d = toy_spec(bands=5, classes=3, tile_size=64, mean=70.0, std=20.0)
    d["input"]["bands"] = list(NAMES)
    p = tmp_path / "toy5.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p
