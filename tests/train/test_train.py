"""``geolabel train`` -> ``geolabel predict`` round trip on a tiny U-Net (seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.models.spec import load_spec
from geolabel.train import bump_version

from ..conftest import requires_torch

pytestmark = requires_torch


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


def _train(s: dict[str, Path], out: Path, *extra: str) -> dict:
    code, stdout, err = _run(
        "train",
        str(s["scene"]),
        "--labels",
        f"{s['labels']}:polygons",
        "--labels",
        f"{s['labels']}:points",
        "--point-buffer",
        "1",
        "-m",
        str(s["spec"]),
        "-o",
        str(out),
        "--steps",
        "40",
        "--batch-size",
        "4",
        "--chip-size",
        "32",
        "--lr",
        "0.01",
        "--threads",
        "1",
        *extra,
    )
    assert code == 0, err
    return json.loads(stdout)


def test_train_predict_evaluate_round_trip(setup: dict[str, Path]) -> None:
    d = setup["dir"]
    res = _train(setup, d / "v2" / "tiny.yaml")
    spec = load_spec(res["spec"])
    assert spec.model_id == res["model_id"] == "tiny@1.1"
    assert spec.metrics["base_model"] == "tiny@1.0"
    assert spec.metrics["labelled_pixels"] > 500
    assert spec.weights_path() == d / "v2" / "tiny.safetensors"
    code, _, err = _run(
        "predict",
        str(setup["scene"]),
        "-m",
        res["spec"],
        "-o",
        str(d / "run"),
        "--device",
        "cpu",
        "--no-vectors",
    )
    assert code == 0, err
    code, stdout, err = _run(
        "evaluate", str(d / "run"), str(setup["truth"]), "--class-offset", "-1"
    )
    assert code == 0, err
    scores = json.loads(stdout)
    assert scores["pixels"] == 80 * 96
    assert scores["overall_accuracy"] > 0.95, scores
    # the untrained base model is far worse: training did the work
    code, _, err = _run(
        "predict",
        str(setup["scene"]),
        "-m",
        str(setup["spec"]),
        "-o",
        str(d / "run0"),
        "--device",
        "cpu",
        "--no-vectors",
    )
    assert code == 0, err
    code, stdout, _ = _run(
        "evaluate", str(d / "run0"), str(setup["truth"]), "--class-offset", "-1"
    )
    assert json.loads(stdout)["miou"] < scores["miou"] - 0.2


def test_same_seed_same_weights_and_outputs_guarded(setup: dict[str, Path]) -> None:
    d = setup["dir"]
    a = _train(setup, d / "a.yaml", "--from-scratch", "--seed", "3")
    b = _train(setup, d / "b.yaml", "--from-scratch", "--seed", "3")
    assert Path(a["weights"]).read_bytes() == Path(b["weights"]).read_bytes()
    assert a["metrics"]["final_loss"] == b["metrics"]["final_loss"]
    assert a["metrics"]["from_scratch"] is True
    code, _, err = _run(
        "train",
        str(setup["scene"]),
        "--labels",
        f"{setup['labels']}:polygons",
        "-m",
        str(setup["spec"]),
        "-o",
        str(d / "a.yaml"),
        "--steps",
        "1",
    )
    assert code == 2 and "--overwrite" in err


def test_unknown_class_names_fail_cleanly(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    bad = gpd.GeoDataFrame(
        {"label": ["lava"]}, geometry=[shapely.Point(500100, 3999900)], crs="EPSG:32633"
    )
    pyogrio.write_dataframe(bad, tmp_path / "bad.gpkg")
    code, _, err = _run(
        "train",
        str(setup["scene"]),
        "--labels",
        str(tmp_path / "bad.gpkg"),
        "-m",
        str(setup["spec"]),
        "-o",
        str(tmp_path / "x.yaml"),
    )
    assert code == 2 and "unknown class names ['lava']" in err
    assert (
        not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.safetensors").exists()
    )


@pytest.mark.parametrize(
    ("old", "new"), [("1.0", "1.1"), ("v2", "v3"), ("1.9", "1.10"), ("beta", "beta.1")]
)
def test_bump_version(old: str, new: str) -> None:
    assert bump_version(old) == new
