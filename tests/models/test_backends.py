"""Real backends: the ukis-csmask ONNX U-Net and the shipped torch U-Net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from geolabel.config import RunConfig
from geolabel.errors import BackendNotFoundError, ModelSpecError
from geolabel.models import get_backend, list_backends, load_model, load_spec
from geolabel.models.base import Batch
from geolabel.pipeline import run_predict
from geolabel.samples import sample_path

from ..conftest import requires_csmask, requires_torch

CONFIGS = Path(__file__).parents[2] / "configs" / "models"


def test_registry_lists_and_refuses() -> None:
    assert {"torch", "onnx"} <= set(list_backends())
    with pytest.raises(BackendNotFoundError, match="installed backends"):
        get_backend("nope")


@requires_csmask
def test_csmask_onnx_runs_through_predict(tmp_path: Path) -> None:
    raw = yaml.safe_load((CONFIGS / "ukis-csmask-4b-l1c.yaml").read_text())
    raw["input"]["scale"] = 1 / 255  # Landsat-7 DN to a rough [0, 1] reflectance
    raw["input"]["band_indexes"] = [1, 2, 3, 4]
    spec_path = tmp_path / "csmask.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path)
    assert (
        spec.weights_path() is not None
        and spec.weights_path().name == "model_4b_l1c.onnx"
    )  # type: ignore[union-attr]
    scene = sample_path("nc-landsat7/nc_landsat7_2000.tif")
    res = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=str(spec_path),
            out=str(tmp_path / "run"),
            vectors=False,
            probabilities=False,
        )
    )
    assert res.ok, res.scenes[0].error
    import rasterio

    with rasterio.open(res.scenes[0].outputs["mask"]) as ds:
        mask, nodata = ds.read(1), ds.nodata
    assert set(np.unique(mask)) <= {0, 1, 2, nodata}
    # a cloud-free scene: most valid pixels must come out clear
    valid = mask != nodata
    assert (mask[valid] == 0).mean() > 0.5


@requires_csmask
def test_onnx_backend_checks_band_count(tmp_path: Path) -> None:
    raw = yaml.safe_load((CONFIGS / "ukis-csmask-4b-l1c.yaml").read_text())
    raw["input"]["bands"] = ["a", "b", "c"]
    for k in ("mean", "std"):
        raw["input"][k] = raw["input"][k][:3]
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelSpecError, match="takes 4 bands"):
        load_model(load_spec(p))


@requires_torch
def test_shipped_unet_bf16_agrees_with_fp32() -> None:
    from geolabel.models.spec import builtin_spec_path

    spec = load_spec(builtin_spec_path("nc_landcover_unet"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 256, 256)).astype(np.float32)
    fp32 = load_model(
        spec, device="cpu", precision="fp32", channels_last=False
    ).forward(x)
    bf16 = load_model(spec, device="cpu", precision="bf16").forward(x)
    agree = (fp32.argmax(1) == bf16.argmax(1)).mean()
    assert agree > 0.98


def test_weights_of_missing_package(tmp_path: Path) -> None:
    raw = yaml.safe_load((CONFIGS / "ukis-csmask-4b-l1c.yaml").read_text())
    raw["weights"] = "package:not_a_pkg_xyz/model.onnx"
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelSpecError, match="not installed"):
        load_spec(p)


def test_batch_validates_shapes() -> None:
    with pytest.raises(ValueError, match="batch"):
        Batch((), np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 8, 8), bool))
