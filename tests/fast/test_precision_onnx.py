"""``--precision auto`` (checked against fp32, recorded, kept on resume) and ``export-onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import GeolabelError
from geolabel.models.precision import MIN_AGREEMENT, argmax_agreement
from geolabel.testing import make_scene, write_toy_spec

from ..conftest import requires_torch


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def unet(tmp_path: Path) -> Path:
    from geolabel.testing.unet import write_unet_spec

    return write_unet_spec(
        tmp_path / "m",
        base_channels=8,
        depth=2,
        tile_size=64,
        bands=3,
        classes=4,
        mean=100.0,
        std=20.0,
        overlap=8,
    )


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return make_scene(
        tmp_path / "s.tif",
        shape=(120, 150),
        nodata=-1.0,
        nodata_region=(slice(0, 10), slice(0, 10)),
    )


def _mask(out: Path) -> np.ndarray:
    with rasterio.open(next(out.rglob("*_mask.tif"))) as ds:
        return ds.read(1)


def test_argmax_agreement_counts_valid_pixels_only() -> None:
    a = np.zeros((1, 2, 2, 2), np.float32)
    b = a.copy()
    a[0, 0, 0, 0], b[0, 1, 0, 0] = 1, 1  # pixel (0, 0) disagrees
    valid = np.ones((1, 2, 2), bool)
    assert argmax_agreement(a, b, valid) == 0.75
    valid[0, 0, 0] = False
    assert argmax_agreement(a, b, valid) == 1.0


@requires_torch
def test_auto_precision_is_checked_recorded_and_used(
    tmp_path: Path, unet: Path, scene: Path
) -> None:
    out = tmp_path / "auto"
    code, _, err = _run(
        "predict",
        str(scene),
        "-m",
        str(unet),
        "-o",
        str(out),
        "--precision",
        "auto",
        "--no-vectors",
        "--device",
        "cpu",
    )
    assert code == 0, err
    rec = json.loads((out / "run.json").read_text())["precision"]
    assert rec == json.loads((out / "precision.json").read_text())
    assert rec["requested"] == "auto" and rec["precision"] in ("fp32", "bf16")
    if rec["candidate"] is not None:
        assert 0.0 <= rec["agreement"] <= 1.0 and rec["pixels"] > 0
        assert (rec["precision"] == "bf16") == (rec["agreement"] >= MIN_AGREEMENT)
    # the chosen mode is the one that ran: same mask as an explicit run of that mode
    fixed = tmp_path / "fixed"
    code, _, err = _run(
        "predict",
        str(scene),
        "-m",
        str(unet),
        "-o",
        str(fixed),
        "--precision",
        rec["precision"],
        "--no-vectors",
        "--device",
        "cpu",
    )
    assert code == 0, err
    np.testing.assert_array_equal(_mask(out), _mask(fixed))


def test_check_sample_is_one_mostly_valid_tile_cropped_to_the_model_size(
    tmp_path: Path,
) -> None:
    from geolabel.config import RunConfig
    from geolabel.execution.model_load import sample_tile
    from geolabel.models.spec import load_spec

    # the top-left 3x3 tiles are fill: the sample must come from valid data
    path = make_scene(
        tmp_path / "fill.tif",
        shape=(300, 330),
        nodata=-1.0,
        nodata_region=(slice(0, 150), slice(0, 165)),
    )
    spec_path = write_toy_spec(tmp_path / "toy.yaml", tile_size=64)
    spec = load_spec(spec_path)
    config = RunConfig(
        scenes=(str(path),),
        model=str(spec_path),
        out=str(tmp_path / "o"),
        tile_size=128,
    )  # type: ignore[arg-type]
    sample = sample_tile(spec, config)
    assert len(sample.tiles) == 1
    assert sample.data.shape[2:] == (64, 64) == sample.valid.shape[1:]
    assert sample.valid.mean() >= 0.5
    # all fill: no sample, and the error names the scene
    empty = make_scene(
        tmp_path / "empty.tif",
        shape=(100, 100),
        nodata=-1.0,
        nodata_region=(slice(0, 100), slice(0, 100)),
    )
    config = RunConfig(
        scenes=(str(empty),), model=str(spec_path), out=str(tmp_path / "e")
    )  # type: ignore[arg-type]
    with pytest.raises(GeolabelError, match=r"empty\.tif: no valid pixels"):
        sample_tile(spec, config)


@requires_torch
def test_resume_keeps_the_recorded_precision(
    tmp_path: Path, unet: Path, scene: Path
) -> None:
    out = tmp_path / "auto"
    out.mkdir()
    # an earlier run of this folder chose fp32 (e.g. on other data): a resume must keep it
    (out / "precision.json").write_text(
        json.dumps(
            {
                "requested": "auto",
                "precision": "fp32",
                "candidate": "bf16",
                "agreement": 0.5,
                "device": "cpu",
                "model_id": "unet-random@1",
            }
        )
    )
    code, _, err = _run(
        "predict",
        str(scene),
        "-m",
        str(unet),
        "-o",
        str(out),
        "--precision",
        "auto",
        "--no-vectors",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["precision"]["agreement"] == 0.5
    ref = tmp_path / "fp32"
    _run(
        "predict",
        str(scene),
        "-m",
        str(unet),
        "-o",
        str(ref),
        "--no-vectors",
        "--device",
        "cpu",
    )
    np.testing.assert_array_equal(_mask(out), _mask(ref))


def test_auto_precision_on_a_numpy_backend_stays_fp32(
    tmp_path: Path, scene: Path
) -> None:
    spec = write_toy_spec(tmp_path / "toy.yaml", tile_size=64)
    out = tmp_path / "run"
    code, _, err = _run(
        "predict",
        str(scene),
        "-m",
        str(spec),
        "-o",
        str(out),
        "--precision",
        "auto",
        "--no-vectors",
    )
    assert code == 0, err
    rec = json.loads((out / "run.json").read_text())["precision"]
    assert rec["precision"] == "fp32" and rec["candidate"] is None


@requires_torch
def test_export_onnx_agrees_with_torch(tmp_path: Path, unet: Path, scene: Path) -> None:
    onnx = tmp_path / "export" / "unet.onnx"
    code, out, err = _run("export-onnx", str(unet), str(onnx))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["argmax_agreement_vs_torch_fp32"] >= MIN_AGREEMENT
    assert summary["opset"] >= 17 and Path(summary["spec"]).is_file()
    assert not list(onnx.parent.glob("*.partial*"))
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx))
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    masks = {}
    for name, spec in (("torch", unet), ("onnx", Path(summary["spec"]))):
        code, _, err = _run(
            "predict",
            str(scene),
            "-m",
            str(spec),
            "-o",
            str(tmp_path / name),
            "--no-vectors",
            "--device",
            "cpu",
            "--batch-size",
            "3",
        )
        assert code == 0, err
        masks[name] = _mask(tmp_path / name)
    assert (masks["torch"] == masks["onnx"]).mean() >= MIN_AGREEMENT


def test_export_onnx_rejects_a_non_torch_spec(tmp_path: Path) -> None:
    spec = write_toy_spec(tmp_path / "toy.yaml")
    code, _, err = _run("export-onnx", str(spec), str(tmp_path / "x.onnx"))
    assert code == 2 and err.startswith("geolabel: error:") and "torch spec" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()


@requires_torch
def test_batchnorm_folding_keeps_the_outputs(tmp_path: Path) -> None:
    import torch

    from geolabel.models._fuse import fold_batchnorm
    from geolabel.models.spec import load_spec
    from geolabel.models.torch_ import TorchBackend, load_torch_module
    from geolabel.testing.unet import write_unet_spec

    spec = load_spec(write_unet_spec(tmp_path, base_channels=4, depth=2, tile_size=64))
    module = load_torch_module(spec)
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)  # non-trivial statistics, so folding matters
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3 + 1, 64, 64)
    with torch.inference_mode():
        want = module(x)
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
        assert fold_batchnorm(module) == n_bn > 0
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
        torch.testing.assert_close(module(x), want, rtol=1e-4, atol=1e-4)
    fast = TorchBackend(spec, device="cpu", precision="bf16")  # the fast mode folds
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.module.modules())
    plain = TorchBackend(spec, device="cpu", precision="fp32")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.module.modules())
