"""The torch backend loads TorchScript, torch.export programs and state dicts safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from geolabel.errors import BackendError, ModelSpecError
from geolabel.models import load_model, load_spec

from ..conftest import requires_torch

pytestmark = requires_torch


def _spec(tmp_path: Path, weights: str, fmt: str, arch: dict | None = None) -> Path:
    raw = {
        "name": "u",
        "version": "1",
        "task": "segmentation",
        "backend": "torch",
        "weights": weights,
        "format": fmt,
        "input": {"bands": ["a", "b", "c"], "tile_size": 32},
        "classes": [{"index": i, "name": f"c{i}"} for i in range(4)],
    }
    if arch is not None:
        raw["architecture"] = arch
    p = tmp_path / f"{fmt}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture
def unet():
    import torch

    from geolabel.models.arch import UNet

    torch.manual_seed(0)
    return UNet(3, 4, base_channels=8, depth=2).eval()


ARCH = {
    "name": "geolabel.unet",
    "params": {"in_channels": 3, "num_classes": 4, "base_channels": 8, "depth": 2},
}


def test_all_formats_agree(tmp_path: Path, unet) -> None:
    import torch
    from safetensors.torch import save_file

    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = unet(torch.from_numpy(x)).numpy()
    save_file(unet.state_dict(), str(tmp_path / "u.safetensors"))
    torch.save(unet.state_dict(), tmp_path / "u.pth")
    torch.jit.trace(unet, torch.from_numpy(x)).save(str(tmp_path / "u.ts"))
    ep = torch.export.export(unet, (torch.from_numpy(x),))
    torch.export.save(ep, str(tmp_path / "u.pt2"))
    specs = [
        _spec(tmp_path, "u.safetensors", "state_dict", ARCH),
        _spec(tmp_path, "u.ts", "torchscript"),
        _spec(tmp_path, "u.pt2", "export"),
    ]
    pth = _spec(tmp_path, "u.pth", "state_dict", ARCH)
    for p in [*specs, pth]:
        out = load_model(load_spec(p), device="cpu", channels_last=False).forward(x)
        np.testing.assert_allclose(out, ref, atol=1e-4)


def test_pickled_objects_are_refused(tmp_path: Path, unet) -> None:
    import torch

    torch.save({"model": unet}, tmp_path / "evil.pth")  # a whole pickled module
    with pytest.raises(BackendError, match=r"evil\.pth: .*pickled Python objects"):
        load_model(
            load_spec(_spec(tmp_path, "evil.pth", "state_dict", ARCH)), device="cpu"
        )


def test_weights_that_do_not_fit(tmp_path: Path, unet) -> None:
    from safetensors.torch import save_file

    save_file(unet.state_dict(), str(tmp_path / "u.safetensors"))
    bad = dict(ARCH, params={**ARCH["params"], "base_channels": 16})
    with pytest.raises(ModelSpecError, match="do not fit"):
        load_model(
            load_spec(_spec(tmp_path, "u.safetensors", "state_dict", bad)), device="cpu"
        )
