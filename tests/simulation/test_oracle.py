"""The oracle of ``simulate``: codes outside the model's classes are refused, not ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import ConfigError
from geolabel.io.scene import open_scene
from geolabel.labels import IGNORE_INDEX
from geolabel.simulation._prepare import read_oracle
from geolabel.testing import make_scene

from .._models import write_tiny_unet
from ..conftest import requires_torch


def _oracle(path: Path, scene: Path, codes: np.ndarray) -> Path:
    with rasterio.open(scene) as src:
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": 0}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes.astype(np.uint8), 1)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return make_scene(tmp_path / "scene.tif", shape=(20, 24))


def test_codes_outside_the_classes_name_the_file_and_range(
    scene: Path, tmp_path: Path
) -> None:
    codes = np.ones((20, 24), np.uint8)
    codes[:, 12:] = 2
    codes[5, 5] = 7  # one stray code beyond the 3 classes
    oracle = _oracle(tmp_path / "oracle.tif", scene, codes)
    opened = open_scene(scene)
    with pytest.raises(ConfigError) as err:
        read_oracle(oracle, opened, 3, -1)
    msg = str(err.value)
    assert msg.startswith(f"{oracle}: oracle holds class values outside 0..2")
    assert "codes 7;" in msg and "1..7 map to 0..6" in msg and "--oracle-offset" in msg
    # with the right offset and class count every code maps: nothing is refused
    assert read_oracle(oracle, opened, 7, -1).max() == 6
    # a stray code under the scene's invalid pixels is not the model's business
    valid = np.ones((20, 24), bool)
    valid[5, 5] = False
    got = read_oracle(oracle, opened, 3, -1, valid)
    assert got[5, 5] == IGNORE_INDEX and set(np.unique(got).tolist()) == {
        0,
        1,
        IGNORE_INDEX,
    }


@requires_torch
def test_simulate_refuses_a_wrong_offset_in_one_line(
    scene: Path, tmp_path: Path
) -> None:
    codes = np.ones((20, 24), np.uint8)
    codes[:, 12:] = 2
    oracle = _oracle(tmp_path / "oracle.tif", scene, codes)
    spec = write_tiny_unet(tmp_path, tile_size=16, receptive_field=9, overlap=4)
    out = tmp_path / "sim.json"
    r = CliRunner().invoke(
        cli,
        ["-q", "simulate", str(scene), "--oracle", str(oracle), "-m", str(spec),
         "--oracle-offset", "0", "--seed", "0", "--rounds", "1", "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 2, r.output  # a ConfigError: bad input
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output
    assert lines[0].startswith(f"geolabel: error: {oracle}: oracle holds class values")
    assert "outside 0..1 with --oracle-offset 0 (codes 2;" in lines[0]
    assert not out.exists()
