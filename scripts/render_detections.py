"""Overlay predicted boxes (from a ``*_detections.gpkg``) and ground-truth boxes on a scene.

Ground truth (DeepForest-style CSV in pixels) is drawn in cyan, predictions at or above
``--min-score`` in red with their score, the tile cores of the run (``NAME_tiles.gpkg``)
as thin white lines, and an optional hold-out boundary as a dashed yellow line. Map
coordinates of the predictions are taken back to pixels with the scene's affine.

Usage::

    .venv/bin/python scripts/render_detections.py SCENE.tif RUN/NAME/NAME_detections.gpkg \\
        --truth tests/data/neon-trees/OSBS_029.csv --split-x 280 -o detections.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import rasterio


def _to_pixels(transform: rasterio.Affine, bounds: np.ndarray) -> np.ndarray:
    inv = ~transform
    c0, r0 = inv * (bounds[:, 0], bounds[:, 1])
    c1, r1 = inv * (bounds[:, 2], bounds[:, 3])
    return np.stack(
        [
            np.minimum(c0, c1),
            np.minimum(r0, r1),
            np.maximum(c0, c1),
            np.maximum(r0, r1),
        ],
        1,
    )


def main() -> None:
    """Draw the PNG."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", type=Path)
    ap.add_argument("detections", type=Path)
    ap.add_argument("--truth", type=Path)
    ap.add_argument(
        "--split-x", type=float, help="pixel column of the hold-out boundary"
    )
    ap.add_argument("--min-score", type=float, default=0.3)
    ap.add_argument("--inches", type=float, default=10.0, help="figure side at 100 dpi")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    with rasterio.open(args.scene) as ds:
        img = ds.read([1, 2, 3])
        transform = ds.transform
    fig, ax = plt.subplots(figsize=(args.inches, args.inches), dpi=100)
    ax.imshow(np.moveaxis(img, 0, -1))
    tiles_gpkg = args.detections.with_name(
        args.detections.name.replace("_detections", "_tiles")
    )
    tiles = gpd.read_file(tiles_gpkg, layer="tiles")
    for x0, y0, x1, y1 in _to_pixels(transform, tiles.geometry.bounds.to_numpy()):
        ax.add_patch(
            mpatches.Rectangle(
                (x0, y0), x1 - x0, y1 - y0, fill=False, ec="white", lw=0.6, ls=":"
            )
        )
    if args.truth is not None:
        t = pd.read_csv(args.truth)
        for x0, y0, x1, y1 in t[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float):
            ax.add_patch(
                mpatches.Rectangle(
                    (x0, y0), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=1.6
                )
            )
    det = gpd.read_file(args.detections, layer="detections")
    det = det[det["score"] >= args.min_score]
    px = _to_pixels(transform, det[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float))
    for (x0, y0, x1, y1), s in zip(px, det["score"], strict=True):
        ax.add_patch(
            mpatches.Rectangle(
                (x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.2, ls="--"
            )
        )
        ax.text(x0 + 1, y0 + 6, f"{s:.2f}", color="yellow", fontsize=7)
    if args.split_x is not None:
        ax.axvline(args.split_x, color="yellow", ls="--", lw=1.2)
        ax.text(args.split_x + 3, 12, "hold-out", color="yellow", fontsize=10)
    ax.set_title(
        f"{args.detections.name}: red = predicted (score >= {args.min_score}), "
        f"cyan = ground truth, dotted = tile cores",
        fontsize=9,
    )
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(det)} predictions drawn)")


if __name__ == "__main__":
    main()
