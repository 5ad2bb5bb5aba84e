"""``train`` refuses early and in one line (issue 19 item 6): several label layers
without a name, an existing output before any progress bar; ``--from-scratch`` needs no
weights file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli

from ..conftest import requires_torch

pytestmark = requires_torch


def _train(s: dict[str, Path], out: Path, labels: str, *extra: str):
    args = ["train", str(s["scene"]), "--labels", labels, "-m", str(s["spec"])]
    args += ["-o", str(out), "--steps", "2", "--chip-size", "32", "--threads", "1"]
    return CliRunner().invoke(cli, [*args, *extra])


def test_several_layers_need_a_name(setup: dict[str, Path], tmp_path: Path) -> None:
    r = _train(setup, tmp_path / "m.yaml", str(setup["labels"]))
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "['polygons', 'points']" in r.stderr and ":LAYER" in r.stderr
    assert not (tmp_path / "m.yaml").exists()


def test_a_table_without_geometry_is_not_a_label_layer(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    import pandas as pd
    import pyogrio

    one = tmp_path / "one.gpkg"
    df = pyogrio.read_dataframe(setup["labels"], layer="polygons")
    pyogrio.write_dataframe(df, one, layer="labels")
    pyogrio.write_dataframe(pd.DataFrame({"note": ["x"]}), one, layer="meta")
    assert len(pyogrio.list_layers(one)) == 2
    r = _train(setup, tmp_path / "m.yaml", str(one))
    assert r.exit_code == 0, r.output


def test_existing_output_is_refused_before_the_bar(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "m.yaml"
    out.write_text("keep me")
    r = _train(setup, out, f"{setup['labels']}:polygons")
    assert r.exit_code == 2
    assert r.stderr.startswith("geolabel: error: ") and "--overwrite" in r.stderr
    assert r.stderr.count("\n") == 1 and "step" not in r.stderr, r.stderr
    assert out.read_text() == "keep me"


def test_from_scratch_needs_no_weights_file(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    spec = yaml.safe_load(setup["spec"].read_text())
    spec["weights"] = "not-trained-yet.safetensors"
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump(spec))
    s = {**setup, "spec": fresh}
    r = _train(s, tmp_path / "m.yaml", f"{setup['labels']}:polygons")
    assert r.exit_code == 2 and "not found" in r.stderr  # fine-tuning needs them
    r = _train(s, tmp_path / "m.yaml", f"{setup['labels']}:polygons", "--from-scratch")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[-1])["metrics"]["from_scratch"] is True
    assert (tmp_path / "m.safetensors").is_file()
