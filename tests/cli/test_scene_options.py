"""The options a scene error's hint names exist on every command that opens scenes.

``simulate``, ``train`` and ``export-chips`` take ``predict``'s ``-b/--bands``,
``--allow-vrt`` and ``--allow-pixel-space`` and pass them to where the scene is opened.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import click
import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.shutil
import shapely
from click.testing import CliRunner
from rasterio.transform import Affine

from geolabel.cli.main import cli
from geolabel.testing import make_scene

from .._models import write_tiny_unet
from ..conftest import requires_torch

#: pixel-space scenes: no CRS, 1-unit pixels (rows downwards)
PIXELS = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 48.0)

TINY_SIM = [
    "--seed", "0", "--rounds", "1", "--round-seconds", "10", "--initial-steps", "2",
    "--round-steps", "1", "--full-steps", "2", "--chip-size", "16", "--batch-size",
    "2", "--seed-points", "6", "--arm", "random/points", "--baseline",
    "random/points",
]  # fmt: skip

COMMANDS = ("predict", "simulate", "train", "export-chips", "loop")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 48x48 two-class scene without CRS, its oracle, labels and a tiny U-Net."""
    d = tmp_path_factory.mktemp("scene_opts")
    truth = np.zeros((48, 48), np.uint8)
    truth[:, 24:] = 1
    rng = np.random.default_rng(0)
    data = np.where(truth, 150.0, 50.0)[None] + rng.normal(0, 5, (3, 48, 48))
    kw = {"data": data.astype(np.float32), "transform": PIXELS}
    nocrs = make_scene(d / "nocrs.tif", crs=None, **kw)
    geo = make_scene(d / "geo.tif", **kw)
    rasterio.shutil.copy(geo, d / "geo.vrt", driver="VRT")
    profile = {"driver": "GTiff", "width": 48, "height": 48, "count": 1}
    with rasterio.open(
        d / "oracle.tif", "w", dtype="uint8", nodata=0, transform=PIXELS, **profile
    ) as dst:  # codes 1..2, as --oracle-offset -1 expects
        dst.write(truth + 1, 1)
    boxes = [shapely.box(2, 2, 20, 46), shapely.box(28, 2, 46, 46)]
    for name, crs in (("labels_nocrs.gpkg", None), ("labels_geo.gpkg", "EPSG:32633")):
        gdf = gpd.GeoDataFrame({"label": ["dark", "bright"]}, geometry=boxes, crs=crs)
        with warnings.catch_warnings():  # no CRS on purpose
            warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
            pyogrio.write_dataframe(gdf, d / name, layer="labels")
    write_tiny_unet(d, tile_size=32, receptive_field=9, overlap=4)
    return {
        "dir": d,
        "nocrs": nocrs,
        "vrt": d / "geo.vrt",
        "oracle": d / "oracle.tif",
        "labels_nocrs": d / "labels_nocrs.gpkg",
        "labels_geo": d / "labels_geo.gpkg",
        "spec": d / "base.yaml",
    }


def _options(name: str) -> set[str]:
    assert isinstance(cli, click.Group)
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    return {o for p in command.params for o in p.opts}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_scene_opening_command_has_the_hinted_options(name: str) -> None:
    assert {"-b", "--bands", "--allow-vrt", "--allow-pixel-space"} <= _options(name)


def _invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["-q", *map(str, args)])
    return r.exit_code, r.output


def _hinted(output: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z-]+", output))


@requires_torch
def test_simulate_takes_a_pixel_space_scene_with_the_flag(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    base = ("simulate", tiny["nocrs"], "--oracle", tiny["oracle"], "-m", tiny["spec"],
            *TINY_SIM, "-o", tmp_path / "sim.json")  # fmt: skip
    code, out = _invoke(*base)
    assert code != 0 and "Traceback" not in out
    assert "--allow-pixel-space" in out and _hinted(out) <= _options("simulate")
    code, out = _invoke(*base, "--allow-pixel-space")
    assert code == 0, out
    assert json.loads((tmp_path / "sim.json").read_text())["complete"] is True


@requires_torch
def test_simulate_takes_a_vrt_and_bands_with_the_flags(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    with rasterio.open(tiny["oracle"]) as src:  # the oracle on the VRT's grid
        profile = src.profile | {"crs": "EPSG:32633"}
        codes = src.read(1)
    oracle = tmp_path / "oracle.tif"
    with rasterio.open(oracle, "w", **profile) as dst:
        dst.write(codes, 1)
    base = ("simulate", tiny["vrt"], "--oracle", oracle, "-m", tiny["spec"],
            *TINY_SIM, "-o", tmp_path / "sim.json")  # fmt: skip
    code, out = _invoke(*base)
    assert code != 0 and "--allow-vrt" in out and "Traceback" not in out
    assert _hinted(out) <= _options("simulate")
    code, out = _invoke(*base, "--allow-vrt", "--bands", "3,2,1")
    assert code == 0, out
    rec = json.loads((tmp_path / "sim.json").read_text())
    assert rec["config"]["bands"] == [3, 2, 1]


@requires_torch
def test_train_takes_a_pixel_space_scene_with_the_flag(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    base = ("train", tiny["nocrs"], "--labels", f"{tiny['labels_nocrs']}:labels",
            "-m", tiny["spec"], "-o", tmp_path / "v2.yaml", "--steps", "2",
            "--chip-size", "16", "--batch-size", "2")  # fmt: skip
    code, out = _invoke(*base)
    assert code != 0 and "--allow-pixel-space" in out and "Traceback" not in out
    assert _hinted(out) <= _options("train")
    code, out = _invoke(*base, "--allow-pixel-space")
    assert code == 0, out
    assert (tmp_path / "v2.safetensors").is_file()


def test_export_chips_takes_a_vrt_with_the_flag(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    base = ("export-chips", tiny["vrt"], "--labels", f"{tiny['labels_geo']}:labels",
            "-m", tiny["spec"], "-o", tmp_path / "chips", "--chip-size", "16")  # fmt: skip
    code, out = _invoke(*base)
    assert code != 0 and "--allow-vrt" in out and "Traceback" not in out
    assert _hinted(out) <= _options("export-chips")
    code, out = _invoke(*base, "--allow-vrt")
    assert code == 0, out
    assert list((tmp_path / "chips" / "images").glob("*.tif"))


@requires_torch
def test_loop_takes_a_pixel_space_scene_with_the_flag(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """The loop predicts and queues a pixel-space scene (training and prediction
    open it with the same flags)."""
    base = ("loop", tiny["nocrs"], "-m", tiny["spec"],
            "--labels", f"{tiny['labels_nocrs']}:labels", "-o", tmp_path / "loop",
            "--rounds", "1", "--every", "1", "--steps", "2", "--budget", "3",
            "--no-wait")  # fmt: skip
    code, out = _invoke(*base)
    assert code != 0 and "--allow-pixel-space" in out and "Traceback" not in out
    code, out = _invoke(*base, "--allow-pixel-space")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["status"] in ("done", "waiting")
