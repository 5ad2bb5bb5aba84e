"""A demo-like run over the shipped nc-landsat7 scene, prioritised and styled, shared by
the QGIS-output tests (made once per session: about 20 s). The shipped demo model is used
once it exists, else the toy ``testing`` backend on the same scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geolabel.cli.main import COMMANDS, cli
from geolabel.io.run_record import resolve_path
from geolabel.samples import sample_path
from geolabel.testing import make_scene, write_toy_spec

#: the shipped demo model, once it is trained (scripts/train_demo_model.py)
DEMO_SPEC = (
    Path(__file__).parents[2]
    / "src"
    / "geolabel"
    / "_data"
    / "models"
    / "nc_landcover_unet.yaml"
)


def _invoke(*args: str) -> str:
    r = CliRunner().invoke(cli, ["-q", *args])
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r.stdout


@pytest.fixture(scope="session")
def qgis_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``geolabel demo`` (or the toy model on the same scene), then ``prioritize``."""
    base = tmp_path_factory.mktemp("qgis")
    run = base / "run"
    if DEMO_SPEC.exists():
        _invoke("demo", "--out", str(run))
    else:
        spec = write_toy_spec(base / "toy.yaml", bands=5, classes=4, tile_size=128)
        try:
            scene = sample_path("nc-landsat7/nc_landsat7_2000.tif")
        except (
            FileNotFoundError
        ):  # a checkout without the sample data: a synthetic scene
            scene = make_scene(
                base / "synthetic.tif",
                shape=(301, 347),
                bands=5,
                nodata=-1.0,
                nodata_region=(slice(0, 40), slice(0, 60)),
            )
        _invoke("predict", str(scene), "-m", str(spec), "-o", str(run))
    if "prioritize" in COMMANDS:
        _invoke("prioritize", str(run), "--budget", "5")
        _invoke("qgis", str(run))  # the project then holds next_to_label too
    return run


def run_doc(run: Path) -> dict:
    """The run's run.json."""
    return json.loads((run / "run.json").read_text())


def outputs_of(run: Path) -> dict[str, Path]:
    """``role -> path`` of the run's outputs (one scene; paths from the working dir)."""
    return {o["role"]: resolve_path(run, o["path"]) for o in run_doc(run)["outputs"]}
