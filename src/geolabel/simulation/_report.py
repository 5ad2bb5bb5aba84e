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
    """Held-out mIoU vs labeller-seconds: one thin line per seed, the mean over seeds
    as a thick line with a +- 1 sd band, one colour per arm; dashed lines at the
    fully-labelled mIoU and its target fractions.

    Raises:
        MissingDependencyError: matplotlib is not installed (extra ``viz``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError("matplotlib", "viz") from err
    summary = record.get("summary") or {}
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, arm) in enumerate(summary.get("arms", {}).items()):
        col = colours[i % len(colours)]
        for run in record["runs"]:
            if run["arm"] == name:
                xs = [r["seconds"] / 60 for r in run["rounds"]]
                ys = [r["miou"] for r in run["rounds"]]
                ax.plot(xs, ys, color=col, alpha=0.25, lw=0.7)
        cx = [c["seconds_mean"] / 60 for c in arm["curve"]]
        cy = [c["miou_mean"] for c in arm["curve"]]
        sd = [c["miou_sd"] for c in arm["curve"]]
        ax.plot(
            cx,
            cy,
            color=col,
            lw=2.2,
            marker="o",
            ms=3.5,
            label=f"{name} (ALC {arm['alc']['mean']:.3f}, {len(arm['seeds'])} seeds)",
        )
        ax.fill_between(
            cx,
            [y - s for y, s in zip(cy, sd, strict=True)],
            [y + s for y, s in zip(cy, sd, strict=True)],
            color=col,
            alpha=0.12,
        )
    full = (summary.get("full_miou") or {}).get("mean")
    if full is not None:
        ax.axhline(full, color="k", ls="--", lw=1, label=f"fully labelled {full:.3f}")
        for key, t in summary.get("targets_miou", {}).items():
            ax.axhline(t, color="grey", ls=":", lw=0.8)
            ax.annotate(
                f"{float(key):.0%}",
                (0, t),
                fontsize=7,
                color="grey",
                xytext=(2, 2),
                textcoords="offset points",
            )
    cfg = record["config"]
    ax.set_xlabel("labeller minutes (cost model)")
    ax.set_ylabel("mIoU on the held-out columns")
    ax.set_title(
        f"{Path(record['scene']).name}: {cfg['rounds']} rounds x "
        f"{cfg['round_seconds']:g} s",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
