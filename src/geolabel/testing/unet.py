"""A seeded random-init :class:`~geolabel.models.arch.UNet` written as safetensors + spec.

Used by tests and benchmarks/ to get a real torch model with known weights (the same
file loads in geolabel and in a plain torch/torchgeo script). Imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from geolabel.testing.backends import toy_io

__all__ = ["write_unet_spec"]


def write_unet_spec(
    folder: str | Path,
    *,
    name: str = "unet-random",
    bands: int = 4,
    classes: int = 5,
    base_channels: int = 32,
    depth: int = 4,
    tile_size: int = 512,
    seed: int = 0,
    mean: float = 0.0,
    std: float = 1.0,
    overlap: int | None = None,
    linear: bool = False,
) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.yaml`` (backend torch) into ``folder``.

    ``linear`` writes a :class:`~geolabel.models.arch.PixelLinear` (a 1x1 convolution,
    the near-free "null model" of the benchmarks) instead of the U-Net.

    Returns:
        The spec path.
    """
    import torch
    from safetensors.torch import save_file

    from geolabel.models.arch import PixelLinear, UNet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    params: dict[str, int] = {"in_channels": bands, "num_classes": classes}
    module: torch.nn.Module
    if linear:
        module = PixelLinear(**params).eval()
    else:
        params.update(base_channels=base_channels, depth=depth)
        module = UNet(**params).eval()
    weights = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    spec: dict[str, Any] = {
        "name": name,
        "version": "1",
        "task": "segmentation",
        "backend": "torch",
        "weights": weights.name,
        "format": "state_dict",
        "architecture": {
            "name": "geolabel.linear" if linear else "geolabel.unet",
            "params": params,
        },
        **toy_io(bands=bands, classes=classes, tile_size=tile_size, mean=mean, std=std),
    }
    if overlap is not None:
        spec["recommended_overlap"] = overlap
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
