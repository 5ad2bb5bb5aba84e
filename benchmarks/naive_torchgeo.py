"""The naive baseline: what a torchgeo user writes to label a scene with a U-Net.

Runs in ``.venv-torchgeo`` (torchgeo 0.8.1 needs its own torch; see setup_torchgeo.sh),
started by bench_predict.py as a subprocess so its peak RSS is measured alone:
RasterDataset + GridGeoSampler (no overlap) + DataLoader, the per-tile argmax written
into a scene-sized array held in memory. Prints one JSON line.

``--precision fp32`` is what the torchgeo tutorials write. ``--precision bf16`` is the
fair baseline a competent user writes: the model in channels-last memory format and
the forward under ``torch.autocast(bfloat16)`` (no BatchNorm folding).

``--loader rasterio`` replaces torchgeo's dataset and sampler by a plain loop over
rasterio windows of the same chips (same model, normalisation, batches and argmax):
the stand-in when torchgeo cannot be installed (it runs in geolabel's own .venv).

Usage: naive_torchgeo.py SCENE WEIGHTS --base-channels 16 --depth 4 --mean M --std S
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from safetensors.torch import load_file

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


def _torchgeo_batches(a: argparse.Namespace) -> Iterator[tuple[Any, list[Any]]]:
    """(image batch, chip bounds) from RasterDataset + GridGeoSampler + DataLoader."""
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler, Units

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
    for batch in loader:
        yield batch["image"], list(batch["bounds"])


def _rasterio_batches(
    a: argparse.Namespace, height: int, width: int
) -> Iterator[tuple[Any, list[tuple[int, int]]]]:
    """(image batch, chip (row, col) offsets): the same chips read with rasterio windows
    (bottom-anchored like GridGeoSampler; boundless reads pad with 0)."""
    rows = list(range(height - a.tile, -a.tile, -a.tile))
    chips = [(r, c) for r in rows for c in range(0, width, a.tile)]
    with rasterio.open(a.scene) as src:
        for i in range(0, len(chips), a.batch_size):
            part = chips[i : i + a.batch_size]
            x = np.stack(
                [
                    src.read(window=Window(c, r, a.tile, a.tile), boundless=True)
                    for r, c in part
                ]
            )
            yield torch.from_numpy(x.astype(np.float32)), part


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
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--loader", choices=("torchgeo", "rasterio"), default="torchgeo")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--save-mask",
        type=Path,
        default=None,
        help="write the mask (.npy) after timing",
    )
    a = ap.parse_args()
    t0 = time.perf_counter()
    if a.threads:
        torch.set_num_threads(a.threads)

    model = _unet_class()(
        a.bands, a.classes, base_channels=a.base_channels, depth=a.depth
    )
    model.load_state_dict(load_file(str(a.weights)))
    model.eval()
    bf16 = a.precision == "bf16"
    if bf16:
        model = model.to(memory_format=torch.channels_last)

    with rasterio.open(a.scene) as src:
        height, width = src.shape
        left, top, res = src.bounds.left, src.bounds.top, src.res[0]
    if a.loader == "torchgeo":
        batches: Iterator[tuple[Any, list[Any]]] = _torchgeo_batches(a)
    else:
        batches = _rasterio_batches(a, height, width)
    out = np.zeros((height, width), dtype=np.uint8)
    tiles = 0
    t_model = 0.0
    t1 = time.perf_counter()
    with torch.inference_mode():
        for image, where in batches:
            x = (image.float() - a.mean) / a.std
            tm = time.perf_counter()
            if bf16:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = model(x)
            else:
                y = model(x)
            pred = y.argmax(dim=1).to(torch.uint8).numpy()
            t_model += time.perf_counter() - tm
            for p, loc in zip(pred, where, strict=True):
                if a.loader == "torchgeo":
                    xs, ys, _ = loc
                    r0 = round((top - ys.stop) / res)
                    c0 = round((xs.start - left) / res)
                else:
                    r0, c0 = loc
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
                "precision": a.precision,
                "channels_last": bf16,
                "loader": a.loader,
                "classes_seen": len(np.unique(out)),
            }
        )
    )


if __name__ == "__main__":
    main()
