"""Render a run's uncertainty map with the top-ranked regions outlined, to a PNG.

Usage::

    python scripts/render_priority.py RUN_DIR OUT.png [--scene NAME] [--band N]

Left: the scene (bands 3,2,1 as RGB, 2-98 % stretch) with the predicted class mask
blended in; right: the uncertainty COG (band ``--band``, 0-1). Both show the regions
of ``RUN_DIR/next_to_label.gpkg`` with their rank.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyogrio
import rasterio
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle

from geolabel.io.run_record import resolve_path


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = np.nanpercentile(a, (2, 98))
    return np.clip((a - lo) / (hi - lo + 1e-9), 0, 1)


def main() -> None:
    """Parse arguments and draw the figure."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--scene", help="scene folder name (default: the first)")
    ap.add_argument(
        "--band", type=int, default=1, help="uncertainty band (1: the run's measure)"
    )
    ap.add_argument(
        "--vmax",
        type=float,
        help="colour scale top [default: 1, or the 99.5th "
        "percentile for the small model-based bands]",
    )
    args = ap.parse_args()
    doc = json.loads((args.run_dir / "run.json").read_text())
    outs: dict[str, dict[str, Path]] = {}
    for o in doc["outputs"]:  # paths relative to the run folder (io/run_record.py)
        if o.get("scene"):
            outs.setdefault(o["scene"], {})[o["role"]] = resolve_path(
                args.run_dir, o["path"]
            )
    scene = next(
        s
        for s in outs
        if args.scene is None or outs[s]["mask"].parent.name == args.scene
    )
    roles = outs[scene]
    with rasterio.open(resolve_path(args.run_dir, scene)) as src:
        rgb = src.read([3, 2, 1], masked=True).filled(np.nan).astype(np.float32)
        extent = (src.bounds.left, src.bounds.right, src.bounds.bottom, src.bounds.top)
    with rasterio.open(roles["uncertainty"]) as u:
        unc = u.read(args.band)
        measure = u.tags(args.band).get("MEASURE", "uncertainty")
    with rasterio.open(roles["mask"]) as m:
        mask = m.read(1)
        cmap = m.colormap(1)
    picks = pyogrio.read_dataframe(
        args.run_dir / "next_to_label.gpkg", layer="next_to_label"
    )
    picks = picks[picks["scene"] == scene]
    classes = doc["model"]["classes"]
    colors = [tuple(c / 255 for c in cmap[i][:3]) for i in range(len(classes))]
    fig, axes = plt.subplots(1, 2, figsize=(15, 7), constrained_layout=True)
    img = np.dstack([_stretch(b) for b in rgb])
    axes[0].imshow(np.nan_to_num(img), extent=extent)
    cls = np.ma.masked_equal(mask, 255)
    axes[0].imshow(
        cls,
        extent=extent,
        cmap=ListedColormap(colors),
        vmin=-0.5,
        vmax=len(classes) - 0.5,
        alpha=0.45,
        interpolation="nearest",
    )
    axes[0].set_title(
        "scene (RGB) + predicted classes: " + ", ".join(f"{n}" for n in classes),
        fontsize=9,
    )
    vmax = args.vmax or (
        1.0
        if measure in ("entropy", "margin", "least-confidence")
        else float(np.nanpercentile(unc, 99.5))
    )
    im = axes[1].imshow(
        unc, extent=extent, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest"
    )
    fig.colorbar(
        im, ax=axes[1], shrink=0.8, label=f"{measure} (scale 0-1, shown 0-{vmax:.3g})"
    )
    strategy = picks["strategy"].iloc[0] if len(picks) else "?"
    axes[1].set_title(f"{measure}; top {len(picks)} to label ({strategy})", fontsize=10)
    for ax in axes:
        for r in picks.itertuples():
            g = r.geometry
            x0, y0, x1, y1 = g.bounds
            if g.geom_type == "Point":
                ax.plot(g.x, g.y, marker="o", ms=5, mfc="none", mec="cyan", mew=1.5)
            elif g.geom_type == "Polygon" and not g.equals(g.envelope):  # superpixel
                xs, ys = g.exterior.xy
                ax.plot(xs, ys, color="cyan", lw=1.2)
            else:
                ax.add_patch(
                    Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=1.8)
                )
            ax.text(
                x0,
                y1,
                str(r.rank),
                color="cyan",
                fontsize=8,
                va="bottom",
                weight="bold",
            )
        ax.set_xlabel("x (CRS units)")
    fig.suptitle(f"{Path(scene).name} - model {doc['model']['id']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
