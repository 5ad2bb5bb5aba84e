"""Train the shipped tree-crown detector on the NEON OSBS_029 orthophoto.

Data: ``tests/data/neon-trees/OSBS_029.tif`` (400 x 400 px, 0.1 m, RGB uint8, nodata
255) and the 61 hand-drawn boxes of ``OSBS_029.csv`` (pixel coordinates). The boxes
whose centre lies in the right-hand strip ``x >= 280`` px (18 boxes, 30 % of the width)
are held out: training sees only columns ``0 .. 279`` and ignores the pixels of any
held-out crown that reaches into them. The model is :class:`geolabel.models.detectors`
CenterNet (stride 4), trained from scratch on random square crops with flips, 90-degree
rotations and brightness jitter, with the CenterNet focal loss on Gaussian centre heat
maps and L1 losses on log size and offset.

At the end the script runs the model on the whole image and reports AP50, precision
and recall on the held-out boxes (predictions whose centre is in the strip) and on the
training boxes; the numbers go into the YAML spec's ``metrics``. It is seeded and runs
600 iterations of 8 crops, about 4 minutes of CPU time (one thread).

Usage::

    .venv/bin/python scripts/train_tree_detector.py [--iterations 600] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
import yaml
from safetensors.torch import save_file

from geolabel.evaluation.boxes import evaluate_boxes
from geolabel.models.detectors import build_centernet, decode_centernet

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests/data/neon-trees"
OUT = ROOT / "src/geolabel/_data/models"
SPLIT_X = 280  # hold-out strip: box centres with x >= SPLIT_X
STRIDE = 4
CROP = 160
logger = logging.getLogger("train_tree_detector")


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (3, H, W) float32 0..1, valid (H, W) and boxes (n, 4) pixel x0, y0, x1, y1."""
    with rasterio.open(DATA / "OSBS_029.tif") as ds:
        img = ds.read().astype(np.float32)
        nodata = ds.nodata
    valid = (
        ~(img == nodata).all(axis=0)
        if nodata is not None
        else np.ones(img.shape[1:], bool)
    )
    boxes = pd.read_csv(DATA / "OSBS_029.csv")[
        ["xmin", "ymin", "xmax", "ymax"]
    ].to_numpy(np.float64)
    return img / 255.0, valid, boxes


def targets(boxes: np.ndarray, ignore: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """CenterNet targets for a ``size`` crop: heat map, size/offset maps and weights."""
    g = size // STRIDE
    heat = np.zeros((g, g), np.float32)
    wh = np.zeros((2, g, g), np.float32)
    off = np.zeros((2, g, g), np.float32)
    reg = np.zeros((g, g), np.float32)
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float32) + 0.5
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        w, h = (x1 - x0) / STRIDE, (y1 - y0) / STRIDE
        sx, sy = max(w / 6, 0.8), max(h / 6, 0.8)
        heat = np.maximum(
            heat, np.exp(-((xx - cx) ** 2 / (2 * sx**2) + (yy - cy) ** 2 / (2 * sy**2)))
        )
        ix, iy = min(int(cx), g - 1), min(int(cy), g - 1)
        heat[iy, ix] = 1.0
        wh[:, iy, ix] = (math.log(w), math.log(h))
        off[:, iy, ix] = (cx - ix, cy - iy)
        reg[iy, ix] = 1.0
    weight = 1.0 - ignore.reshape(g, STRIDE, g, STRIDE).max(axis=(1, 3)).astype(
        np.float32
    )
    weight = np.maximum(weight, reg)
    return {"heat": heat, "wh": wh, "off": off, "reg": reg, "weight": weight}


def sample(
    img: np.ndarray,
    valid: np.ndarray,
    train: np.ndarray,
    held: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One augmented crop of the training region and its targets."""
    h = img.shape[1]
    r0 = int(rng.integers(0, h - CROP + 1))
    c0 = int(rng.integers(0, SPLIT_X - CROP + 1))
    x = img[:, r0 : r0 + CROP, c0 : c0 + CROP].copy()
    v = valid[r0 : r0 + CROP, c0 : c0 + CROP]
    ignore = np.zeros((CROP, CROP), bool)
    kept = []
    for b in train:
        bx = np.clip(b - [c0, r0, c0, r0], 0, CROP)
        area = (b[2] - b[0]) * (b[3] - b[1])
        vis = (bx[2] - bx[0]) * (bx[3] - bx[1])
        if vis <= 0:
            continue
        if vis >= 0.6 * area:
            kept.append(bx)
        else:
            ignore[int(bx[1]) : math.ceil(bx[3]), int(bx[0]) : math.ceil(bx[2])] = True
    for b in held:  # crowns of the hold-out strip reaching into the training columns
        bx = np.clip(b - [c0, r0, c0, r0], 0, CROP)
        bx[2] = min(bx[2], SPLIT_X - c0)
        if bx[2] > bx[0] and bx[3] > bx[1]:
            ignore[int(bx[1]) : math.ceil(bx[3]), int(bx[0]) : math.ceil(bx[2])] = True
    boxes = np.array(kept, np.float64).reshape(-1, 4)
    if rng.random() < 0.5:  # horizontal flip
        x, v, ignore = x[:, :, ::-1], v[:, ::-1], ignore[:, ::-1]
        boxes = np.stack(
            [CROP - boxes[:, 2], boxes[:, 1], CROP - boxes[:, 0], boxes[:, 3]], 1
        )
    for _ in range(int(rng.integers(0, 4))):  # rotate 90 degrees counter-clockwise
        x, v, ignore = np.rot90(x, axes=(1, 2)), np.rot90(v), np.rot90(ignore)
        boxes = np.stack(
            [boxes[:, 1], CROP - boxes[:, 2], boxes[:, 3], CROP - boxes[:, 0]], 1
        )
    x = x * np.float32(rng.uniform(0.85, 1.15)) + np.float32(rng.uniform(-0.05, 0.05))
    return np.ascontiguousarray(x), {
        **targets(boxes, ignore, CROP),
        "valid": np.ascontiguousarray(v),
    }


def focal(
    logits: torch.Tensor, heat: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4)."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos) * weight
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def main() -> None:
    """Train, evaluate, write weights and spec."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    img, valid, boxes = load()
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    train, held = boxes[centre_x < SPLIT_X], boxes[centre_x >= SPLIT_X]
    tv = valid[:, :SPLIT_X]
    mean = [float(img[b, :, :SPLIT_X][tv].mean()) for b in range(3)]
    std = [float(img[b, :, :SPLIT_X][tv].std()) for b in range(3)]
    norm = (img - np.array(mean, np.float32)[:, None, None]) / np.array(
        std, np.float32
    )[:, None, None]
    norm[:, ~valid] = 0.0
    model = build_centernet(in_channels=3, num_classes=1, width=16)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=2e-3, total_steps=args.iterations, pct_start=0.1
    )
    t0 = time.perf_counter()
    model.train()
    for it in range(args.iterations):
        items = [sample(norm, valid, train, held, rng) for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([i[0] for i in items]))
        t = {
            k: torch.from_numpy(np.stack([i[1][k] for i in items])) for k in items[0][1]
        }
        x = x * t.pop("valid")[:, None].float()
        out = model(x)
        reg = t["reg"][:, None]
        n = reg.sum().clamp(min=1)
        loss = (
            focal(out[:, :1], t["heat"][:, None], t["weight"][:, None])
            + 0.1 * (torch.abs(out[:, 1:3] - t["wh"]) * reg).sum() / n
            + (torch.abs(out[:, 3:5] - t["off"]) * reg).sum() / n
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 25 == 0 or it == args.iterations - 1:
            logger.info(
                "iter %d loss %.4f (%.0f s)", it, float(loss), time.perf_counter() - t0
            )
    model.eval()
    with torch.inference_mode():
        raw = model(torch.from_numpy(norm[None])).numpy()[0]
    pb, ps, _ = decode_centernet(
        raw,
        num_classes=1,
        stride=STRIDE,
        score_threshold=0.05,
        max_detections=200,
        extent=img.shape[1:],
    )
    pcx = (pb[:, 0] + pb[:, 2]) / 2
    metrics = {
        "holdout": evaluate_boxes(
            pb[pcx >= SPLIT_X], ps[pcx >= SPLIT_X], held
        ).to_dict(),
        "train": evaluate_boxes(pb[pcx < SPLIT_X], ps[pcx < SPLIT_X], train).to_dict(),
    }
    logger.info(
        "hold-out AP50 %.3f, train AP50 %.3f",
        metrics["holdout"]["ap"],
        metrics["train"]["ap"],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / "neon_tree_detector.safetensors"))
    spec = {
        "name": "neon-tree-detector",
        "version": "1",
        "task": "detection",
        "description": (
            "Tree-crown detector (CenterNet, stride 4) trained from scratch on the "
            "NEON OSBS_029 orthophoto, boxes with centre x < 280 px; "
            "scripts/train_tree_detector.py"
        ),
        "backend": "torch",
        "format": "state_dict",
        "weights": "package:geolabel/_data/models/neon_tree_detector.safetensors",
        "architecture": {
            "name": "geolabel.centernet",
            "params": {"in_channels": 3, "num_classes": 1, "width": 16},
        },
        "input": {
            "bands": ["red", "green", "blue"],
            "tile_size": 256,
            "dtype": "float32",
            "scale": 1 / 255,
            "mean": [round(m, 5) for m in mean],
            "std": [round(s, 5) for s in std],
        },
        "output": {
            "activation": "sigmoid",
            "score_threshold": 0.05,
            "max_detections": 300,
        },
        "classes": [{"index": 0, "name": "tree", "color": "#1a9641"}],
        "recommended_overlap": 48,
        "metrics": {
            "holdout_strip": f"box centre x >= {SPLIT_X} px ({len(held)} boxes)",
            "iterations": args.iterations,
            "seed": args.seed,
            "holdout_ap50": round(metrics["holdout"]["ap"], 4),
            "holdout_precision_at_0.5": round(metrics["holdout"]["precision"], 4),
            "holdout_recall_at_0.5": round(metrics["holdout"]["recall"], 4),
            "train_ap50": round(metrics["train"]["ap"], 4),
            "whole_image_inference": True,
        },
    }
    (args.out / "neon_tree_detector.yaml").write_text(
        yaml.safe_dump(spec, sort_keys=False)
    )
    print(
        json.dumps(
            {"seconds": round(time.perf_counter() - t0, 1), **metrics},
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()
