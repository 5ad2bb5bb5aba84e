"""An untrained tiny ``geolabel.unet`` (3 bands, dark / bright) as weights + spec."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_tiny_unet(
    folder: Path, *, tile_size: int, receptive_field: int, overlap: int
) -> Path:
    """Write ``base.safetensors`` (seeded init) and ``base.yaml`` into ``folder``."""
    import torch
    from safetensors.torch import save_file

    from geolabel.models.arch import UNet

    params = {"in_channels": 3, "num_classes": 2, "base_channels": 4, "depth": 2}
    torch.manual_seed(0)
    save_file(
        {k: v.float().contiguous() for k, v in UNet(**params).state_dict().items()},
        str(folder / "base.safetensors"),
    )
    spec = {
        "name": "tiny",
        "version": "1.0",
        "task": "segmentation",
        "backend": "torch",
        "weights": "base.safetensors",
        "format": "state_dict",
        "architecture": {"name": "geolabel.unet", "params": params},
        "input": {
            "bands": ["b1", "b2", "b3"],
            "tile_size": tile_size,
            "mean": [100.0] * 3,
            "std": [50.0] * 3,
        },
        "classes": [{"index": 0, "name": "dark"}, {"index": 1, "name": "bright"}],
        "receptive_field": receptive_field,
        "recommended_overlap": overlap,
    }
    path = folder / "base.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
