"""``geolabel.linear``: a per-pixel linear classifier, tiled exactly as it is whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import ModelSpecError
from geolabel.testing import make_scene

from ..conftest import requires_torch

pytestmark = requires_torch


def test_tiled_prediction_is_softmax_of_the_linear_map(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from geolabel.testing.unet import write_unet_spec

    data = np.random.default_rng(3).normal(size=(4, 150, 170)).astype(np.float32)
    scene = make_scene(tmp_path / "s.tif", data=data)
    spec = write_unet_spec(
        tmp_path / "m",
        name="lin",
        bands=4,
        classes=3,
        tile_size=64,
        linear=True,
        mean=0.0,
        std=1.0,
        overlap=8,
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "-q",
            "predict",
            str(scene),
            "-m",
            str(spec),
            "-o",
            str(out),
            "--precision",
            "fp32",
            "--no-vectors",
            "--uncertainty",
            "none",
        ],
    )
    assert res.exit_code == 0, res.output
    w = load_file(str(spec.with_suffix(".safetensors")))
    weight, bias = w["head.weight"][:, :, 0, 0], w["head.bias"]
    with rasterio.open(scene) as ds:
        x = ds.read().astype(np.float64)
    logits = np.einsum("kb,brc->krc", weight, x) + bias[:, None, None]
    expected = np.argmax(logits, axis=0)
    with rasterio.open(next(out.rglob("*_mask.tif"))) as ds:
        mask = ds.read(1).astype(np.int64)
    # mask values are class indexes (nodata 3 of the 2-bit encoding: none here);
    # it agrees everywhere except where two logits tie to float32 precision
    assert len(np.unique(expected)) == 3
    top2 = np.sort(logits, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4
    assert clear.mean() > 0.99
    assert np.array_equal(mask[clear], expected[clear])


def test_bad_parameters_are_one_spec_error() -> None:
    from geolabel.models.arch import build_architecture

    with pytest.raises(ModelSpecError, match=r"geolabel\.linear"):
        build_architecture("geolabel.linear", {"in_channels": 0, "num_classes": 2})
    m = build_architecture("geolabel.linear", {"in_channels": 4, "num_classes": 2})
    assert m.receptive_field == 1
