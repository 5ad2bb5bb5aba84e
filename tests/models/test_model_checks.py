"""`geolabel models check` measures the receptive field; predict warns on bad scaling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.errors import InputScalingWarning
from geolabel.models import load_model, load_spec
from geolabel.models.check import measure_receptive_field
from geolabel.pipeline import run_predict
from geolabel.testing import make_scene, toy_spec, write_toy_spec


@pytest.mark.parametrize(("layers", "kernel"), [(1, 3), (2, 5), (3, 7)])
def test_measured_receptive_field_of_the_toy_model(
    tmp_path: Path, layers: int, kernel: int
) -> None:
    spec = load_spec(write_toy_spec(tmp_path / "t.yaml", layers=layers, kernel=kernel))
    assert measure_receptive_field(load_model(spec), spec) == layers * (kernel - 1) + 1


def test_models_check_warns_when_the_spec_understates_it(tmp_path: Path) -> None:
    d = toy_spec(layers=2, kernel=5)
    d["receptive_field"] = 3
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(cli, ["models", "check", str(p)])
    assert r.exit_code == 0, r.stderr
    assert "geolabel: warning:" in r.stderr and "receptive_field: 9" in r.stderr
    steps = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert steps["receptive-field"]["warning"] is True
    d["receptive_field"] = 9
    p.write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(cli, ["models", "check", str(p)])
    assert r.exit_code == 0 and "warning" not in r.stderr


def _scaling_run(tmp_path: Path, data: np.ndarray, scale: float) -> None:
    d = toy_spec(mean=0.3, std=0.25)
    d["input"]["scale"] = scale
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(d))
    scene = make_scene(tmp_path / "refl.tif", data=data)
    run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=str(spec),
            out=str(tmp_path / "run"),
            vectors=False,
            probabilities=False,
        )
    )


def test_reflectance_fed_to_a_dn_spec_warns(tmp_path: Path) -> None:
    refl = np.random.default_rng(0).uniform(0, 0.6, size=(3, 80, 90))
    with pytest.warns(InputScalingWarning, match="nearly constant.*input.scale 0.0001"):
        _scaling_run(tmp_path, refl, 1e-4)


def test_dn_fed_to_a_reflectance_spec_warns(tmp_path: Path) -> None:
    dn = np.random.default_rng(0).uniform(500, 4000, size=(3, 80, 90))
    with pytest.warns(InputScalingWarning, match="standard deviations"):
        _scaling_run(tmp_path, dn, 1.0)


def test_fitting_scale_does_not_warn(tmp_path: Path) -> None:
    import warnings

    dn = np.random.default_rng(0).uniform(500, 6000, size=(3, 80, 90))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputScalingWarning)
        _scaling_run(tmp_path, dn, 1e-4)
