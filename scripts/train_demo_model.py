#!/usr/bin/env python
"""Train the demo land-cover U-Net that geolabel ships (``nc-landcover-unet``).

Data: the 5-band Landsat-7 ETM+ 2000 scene of the GRASS North Carolina sample data and
its ``strata`` land-cover map as dense labels (``src/geolabel/_data/nc-landsat7/``,
written by ``scripts/prepare_sample_data.py``). Class code ``c`` (1..7) is model index
``c - 1``; label 0 and image nodata are ignored.

Protocol: the right-most 25 % of the columns are held out (never trained on, not even
as input context); training samples random 128 x 128 crops from the rest, with flips and
rot90. Bands are normalised with per-band mean/std of the raw DN over the valid pixels
of the training columns. The held-out metrics come from one forward pass over the
whole image (padded to a multiple of 8) scored on the held-out columns.

Writes into ``--out-dir``: ``nc_landcover_unet.safetensors`` (state dict, float32),
``nc_landcover_unet.yaml`` (model spec) and ``nc_landcover_unet.metrics.json``.
Deterministic for a given seed, torch version and thread count (2).

Usage::

    python scripts/train_demo_model.py [--data-dir DIR] [--out-dir DIR]
        [--epochs 10] [--steps 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning
# slows training ten-fold. It changes no numbers. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from geolabel.models.arch import UNet  # noqa: E402

NAME = "nc_landcover_unet"
BANDS = ("blue", "green", "red", "nir", "swir1")
CLASSES = (
    ("developed", "#d7191c"),
    ("agriculture", "#fdae61"),
    ("herbaceous", "#ffffbf"),
    ("shrubland", "#a6d96a"),
    ("forest", "#1a9641"),
    ("water", "#2b83ba"),
    ("sediment", "#8c510a"),
)
ARCH = {
    "in_channels": 5,
    "num_classes": 7,
    "base_channels": 16,
    "depth": 3,
    "dropout": 0.1,
}
IGNORE = 255
HOLDOUT_FRACTION = 0.25


def load_data(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``(5, H, W)`` float32 DN, target ``(H, W)`` (IGNORE: none), valid mask."""
    with rasterio.open(data_dir / "nc_landsat7_2000.tif") as src:
        if src.descriptions != BANDS:
            raise SystemExit(f"unexpected bands {src.descriptions}")
        image = src.read().astype(np.float32)
        valid = (image != src.nodata).all(axis=0)
        grid = (src.crs, src.transform, src.shape)
    with rasterio.open(data_dir / "strata.tif") as src:
        if (src.crs, src.transform, src.shape) != grid:
            raise SystemExit("strata.tif is not on the image grid")
        strata = src.read(1)
    labelled = valid & (strata > 0)
    target = np.where(labelled, strata.astype(np.int64) - 1, IGNORE)
    return image, target, valid


def scores(pred: np.ndarray, target: np.ndarray, k: int) -> dict[str, Any]:
    """Overall accuracy, per-class IoU and mIoU over the classes present in target."""
    keep = target != IGNORE
    cm = np.bincount(k * target[keep] + pred[keep], minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    union = support + cm.sum(axis=0) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    present = support > 0
    return {
        "pixels": int(keep.sum()),
        "overall_accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "miou": float(np.mean(iou[present])),
        "iou": {
            CLASSES[i][0]: (None if np.isnan(v) else round(float(v), 4))
            for i, v in enumerate(iou)
        },
        "support": {CLASSES[i][0]: int(s) for i, s in enumerate(support)},
        "confusion_matrix_rows_true": cm.tolist(),
    }


@torch.no_grad()
def predict_full(model: UNet, x: np.ndarray) -> np.ndarray:
    """Class index per pixel of normalised ``(C, H, W)``, padded to a multiple of 8."""
    model.eval()
    h, w = x.shape[1:]
    m = 2**model.depth
    ph, pw = -h % m, -w % m
    t = torch.from_numpy(np.pad(x, ((0, 0), (0, ph), (0, pw))))[None]
    logits = model(t)[0, :, :h, :w]
    return logits.argmax(0).numpy().astype(np.int64)


def write_spec(
    path: Path,
    mean: list[float],
    std: list[float],
    receptive_field: int,
    metrics: dict[str, Any],
    description: str,
) -> None:
    """Write the model spec YAML in the project's fixed layout."""
    params = ", ".join(f"{k}: {v}" for k, v in ARCH.items())
    classes = "\n".join(
        f'  - {{index: {i}, name: {n}, color: "{c}"}}'
        for i, (n, c) in enumerate(CLASSES)
    )
    text = f"""name: nc-landcover-unet
version: "1.0"
task: segmentation
description: {json.dumps(description)}
backend: torch
weights: {NAME}.safetensors
format: state_dict
architecture:
  name: geolabel.unet
  params: {{{params}}}
input:
  bands: [{", ".join(BANDS)}]
  tile_size: 256
  dtype: float32
  scale: 1.0
  offset: 0.0
  mean: [{", ".join(repr(v) for v in mean)}]
  std: [{", ".join(repr(v) for v in std)}]
output:
  activation: softmax
classes:
{classes}
receptive_field: {receptive_field}
recommended_overlap: 32
metrics: {{holdout_overall_accuracy: {metrics["holdout_overall_accuracy"]}, \
holdout_miou: {metrics["holdout_miou"]}, train_seconds: {metrics["train_seconds"]}, \
seed: {metrics["seed"]}}}
"""
    path.write_text(text, encoding="utf-8", newline="\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / "src" / "geolabel" / "_data" / "nc-landsat7",
        help="folder with nc_landsat7_2000.tif and strata.tif",
    )
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=REPO_ROOT / "src" / "geolabel" / "_data" / "models",
    )
    ap.add_argument("--epochs", type=int, default=10, help="number of epochs")
    ap.add_argument("--steps", type=int, default=40, help="steps per epoch")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)

    image, target, valid = load_data(args.data_dir)
    _, h, w = image.shape
    split = w - math.ceil(HOLDOUT_FRACTION * w)  # columns >= split are held out
    train_valid = valid.copy()
    train_valid[:, split:] = False
    mean = [round(float(image[b][train_valid].mean()), 4) for b in range(5)]
    std = [round(float(image[b][train_valid].std()), 4) for b in range(5)]
    x = (image - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[
        :, None, None
    ]
    x = np.where(valid[None], x, 0.0).astype(np.float32)  # nodata -> band mean
    train_target = target.copy()
    train_target[:, split:] = IGNORE

    model = UNet(**ARCH)
    total_steps = args.epochs * args.steps
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    warmup = max(1, total_steps // 20)

    def lr_factor(step: int) -> float:
        # Linear warm-up over 5 % of the steps, then cosine decay to 0.
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (
            1.0 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup))
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    xt, yt = torch.from_numpy(x), torch.from_numpy(train_target)
    crop, bs = args.crop, args.batch_size
    if split < crop or h < crop:
        raise SystemExit("training region smaller than one crop")
    history = []
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(args.epochs):
        model.train()
        losses = []
        for _ in range(args.steps):
            rows = rng.integers(0, h - crop + 1, bs)
            cols = rng.integers(
                0, split - crop + 1, bs
            )  # crops lie wholly left of split
            flips = rng.integers(0, 2, (bs, 2))
            rots = rng.integers(0, 4, bs)
            xb, yb = [], []
            for r, c, (fv, fh), k in zip(rows, cols, flips, rots, strict=True):
                xi = xt[:, r : r + crop, c : c + crop]
                yi = yt[r : r + crop, c : c + crop]
                if fv:
                    xi, yi = xi.flip(-2), yi.flip(-2)
                if fh:
                    xi, yi = xi.flip(-1), yi.flip(-1)
                xb.append(torch.rot90(xi, int(k), (-2, -1)))
                yb.append(torch.rot90(yi, int(k), (-2, -1)))
            logits = model(torch.stack(xb))
            loss = F.cross_entropy(logits, torch.stack(yb), ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append(round(float(np.mean(losses)), 4))
        print(
            f"epoch {epoch + 1}/{args.epochs}  loss {history[-1]:.4f}  "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )
    train_seconds = round(time.perf_counter() - t0, 1)
    train_cpu_seconds = round(time.process_time() - c0, 1)

    model.eval()
    pred = predict_full(model, x)
    hold = scores(pred[:, split:], target[:, split:], 7)
    train = scores(pred[:, :split], target[:, :split], 7)
    oa, miou = round(hold["overall_accuracy"], 4), round(hold["miou"], 4)
    train_oa = train["overall_accuracy"]
    print(f"holdout OA {oa:.4f}  mIoU {miou:.4f}  (train columns OA {train_oa:.4f})")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = args.out_dir / f"{NAME}.safetensors"
    # All tensors float32 (BatchNorm's num_batches_tracked too; it loads back as int).
    state = {
        k: v.detach().to(torch.float32).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(weights), metadata={"architecture": "geolabel.unet"})
    weights.chmod(0o644)  # safetensors creates the file 0600
    check = UNet(**ARCH)
    check.load_state_dict(load_file(str(weights)), strict=True)
    check.eval()
    if not np.array_equal(predict_full(check, x), pred):
        raise SystemExit("reloaded weights do not reproduce the predictions")

    metrics = {
        "holdout_overall_accuracy": oa,
        "holdout_miou": miou,
        "train_seconds": train_seconds,
        "seed": args.seed,
    }
    description = (
        "7-class land-cover U-Net for Landsat-7 ETM+ DN bands 1-5, trained on the "
        "GRASS North Carolina 2000 scene with the ~1996 strata map as labels; "
        f"held-out right 25% of columns: OA {oa:.3f}, mIoU {miou:.3f}"
    )
    write_spec(
        args.out_dir / f"{NAME}.yaml",
        mean,
        std,
        model.receptive_field,
        metrics,
        description,
    )
    report = {
        **metrics,
        "holdout": hold,
        "train_region": train,
        "split": {
            "holdout_columns": [split, w - 1],
            "train_columns": [0, split - 1],
            "image_shape": [h, w],
            "train_labelled_pixels": int((train_target != IGNORE).sum()),
        },
        "normalisation": {
            "mean": mean,
            "std": std,
            "computed_on": "valid pixels of the training columns, raw DN",
        },
        "training": {
            "epochs": args.epochs,
            "steps_per_epoch": args.steps,
            "batch_size": bs,
            "crop": crop,
            "optimizer": "Adam",
            "lr_schedule": f"lr {args.lr}, linear warm-up 5 % of steps, cosine to 0",
            "loss": "cross-entropy, ignore label 0 and image nodata",
            "augmentation": "random vertical/horizontal flips, rot90",
            "epoch_loss": history,
            "threads": args.threads,
            "train_cpu_seconds": train_cpu_seconds,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "architecture": {"name": "geolabel.unet", "params": ARCH},
        "receptive_field": model.receptive_field,
        "parameters": sum(p.numel() for p in model.parameters()),
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    (args.out_dir / f"{NAME}.metrics.json").write_text(
        json.dumps(report, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and the spec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
