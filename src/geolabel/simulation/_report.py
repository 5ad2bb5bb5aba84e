"""Write a simulation record: JSON (atomic) and a quality-vs-labelled-pixels PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from geolabel.errors import MissingDependencyError

__all__ = ["plot_curves", "write_json"]


def write_json(record: dict[str, Any], path: Path) -> Path:
    """Write ``record`` as indented JSON via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def plot_curves(record: dict[str, Any], path: Path) -> Path:
    """mIoU (held-out strip) vs labelled pixels: one thin line per seed, the mean over
    seeds as a thick line with a ± 1 sd band, one colour per strategy.

    Raises:
        MissingDependencyError: matplotlib is not installed (extra ``viz``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError("matplotlib", "viz") from err
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, summ) in enumerate(record["summary"].items()):
        col = colours[i % len(colours)]
        for run in record["runs"]:
            if run["strategy"] == name:
                xs = [r["labelled_pixels"] for r in run["rounds"]]
                ys = [r["miou"] for r in run["rounds"]]
                ax.plot(xs, ys, color=col, alpha=0.3, lw=0.8)
        cx = [c["labelled_pixels_mean"] for c in summ["curve"]]
        cy = [c["miou_mean"] for c in summ["curve"]]
        sd = [c["miou_sd"] for c in summ["curve"]]
        ax.plot(
            cx,
            cy,
            color=col,
            lw=2.2,
            marker="o",
            ms=4,
            label=f"{name} (mean of {summ['seeds']} seeds)",
        )
        ax.fill_between(
            cx,
            [y - s for y, s in zip(cy, sd, strict=True)],
            [y + s for y, s in zip(cy, sd, strict=True)],
            color=col,
            alpha=0.15,
        )
    cfg = record["config"]
    ax.set_xlabel("labelled pixels")
    ax.set_ylabel("mIoU on the held-out columns")
    ax.set_title(
        f"Active learning: {cfg['rounds']} rounds x {cfg['regions_per_round']} regions "
        f"of {cfg['region_size']} px",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
