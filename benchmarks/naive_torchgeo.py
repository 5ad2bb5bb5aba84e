"""The naive baseline: what a torchgeo user writes to label a scene with a U-Net.

Runs in ``.venv-torchgeo`` (torchgeo 0.8.1 needs its own torch; see setup_torchgeo.sh),
started by bench_predict.py as a subprocess so its peak RSS is measured alone:
RasterDataset + GridGeoSampler (no overlap) + DataLoader, fp32, the per-tile argmax
written into a scene-sized array held in memory. Prints one JSON line.

Usage: naive_torchgeo.py SCENE WEIGHTS --base-channels 16 --depth 4 --mean M --std S
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler, Units

ROOT = Path(__file__).resolve().parents[1]


def _unet_class() -> type:
    """geolabel's UNet from its source file (geolabel itself is not installed here)."""
    sys.path.insert(0, str(ROOT / "src"))  # for geolabel.errors only
    spec = importlib.util.spec_from_file_location(
        "geolabel_arch", ROOT / "src/geolabel/models/arch.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.UNet  # type: ignore[no-any-return]


def main() -> None:
    """Label SCENE; print timings as JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("scene", type=Path)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--bands", type=int, default=4)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--mean", type=float, default=0.0)
    ap.add_argument("--std", type=float, default=1.0)
    ap.add_argument(
        "--save-mask",
        type=Path,
        default=None,
        help="write the mask (.npy) after timing",
    )
    a = ap.parse_args()
    t0 = time.perf_counter()

    model = _unet_class()(
        a.bands, a.classes, base_channels=a.base_channels, depth=a.depth
    )
    model.load_state_dict(load_file(str(a.weights)))
    model.eval()

    class Scene(RasterDataset):
        filename_glob = a.scene.name
        is_image = True

    ds = Scene(paths=str(a.scene.parent))
    sampler = GridGeoSampler(ds, size=a.tile, stride=a.tile, units=Units.PIXELS)
    loader = DataLoader(
        ds,
        sampler=sampler,
        batch_size=a.batch_size,
        collate_fn=stack_samples,
        num_workers=a.workers,
    )
    with rasterio.open(a.scene) as src:
        height, width = src.shape
        left, top, res = src.bounds.left, src.bounds.top, src.res[0]
    out = np.zeros((height, width), dtype=np.uint8)
    tiles = 0
    t_model = 0.0
    t1 = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            x = (batch["image"].float() - a.mean) / a.std
            tm = time.perf_counter()
            pred = model(x).argmax(dim=1).to(torch.uint8).numpy()
            t_model += time.perf_counter() - tm
            for p, (xs, ys, _) in zip(pred, batch["bounds"], strict=True):
                r0 = round((top - ys.stop) / res)
                c0 = round((xs.start - left) / res)
                # chips start at the scene's bottom edge, so the top row may stick out
                ra, ca = max(r0, 0), max(c0, 0)
                rb, cb = min(r0 + p.shape[0], height), min(c0 + p.shape[1], width)
                if rb > ra and cb > ca:
                    out[ra:rb, ca:cb] = p[ra - r0 : rb - r0, ca - c0 : cb - c0]
            tiles += len(pred)
    t_end = time.perf_counter()
    if a.save_mask is not None:
        np.save(a.save_mask, out)
    print(
        json.dumps(
            {
                "tiles": tiles,
                "seconds": t_end - t0,
                "loop_seconds": t_end - t1,
                "model_seconds": t_model,
                "pixels": height * width,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "classes_seen": len(np.unique(out)),
            }
        )
    )


if __name__ == "__main__":
    main()
