"""Why ``prioritize`` picked fewer regions than ``--budget``, in one stderr paragraph.

Built from the counts ``prioritize`` records in ``run.json`` (``priority``: budget,
picked, candidates, excluded, min_distance, spread, balance_classes, min_valid,
region_size), so the ranking code needs no change to explain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["shortfall_message"]


def shortfall_message(summary: Mapping[str, Any]) -> str | None:
    """The explanation of a queue shorter than its budget (``None`` if it is full).

    The causes are counted in the order the selection applies them: regions below
    ``--min-valid`` are never candidates, candidates inside ``--exclude`` footprints
    are dropped, and the rest are thinned by ``--min-distance`` / ``--spread`` /
    ``--balance-classes``. Each cause present comes with the option that loosens it.
    """
    try:
        budget, picked = int(summary["budget"]), int(summary["picked"])
        candidates, excluded = int(summary["candidates"]), int(summary["excluded"])
    except (KeyError, TypeError, ValueError):
        return None
    if picked >= budget:
        return None
    min_valid = float(summary.get("min_valid") or 0.0)
    min_distance = float(summary.get("min_distance") or 0.0)
    region = summary.get("region_size")
    kind = summary.get("unit") or "regions"
    if kind == "points":
        unit = "points"
    elif kind == "superpixels":
        unit = f"superpixels (~{summary.get('superpixel_size')} px a side)"
    else:
        unit = f"{region}-pixel regions" if region else "tiles"
    spaced = max(candidates - excluded - picked, 0)
    causes = [
        f"{candidates} candidate {unit} (those with at least {min_valid:.0%} valid "
        "pixels, --min-valid)"
    ]
    hints = []
    if excluded:
        causes.append(f"{excluded} inside --exclude footprints (already labelled)")
    if spaced:
        rules = [f"--min-distance {min_distance:g}"] if min_distance else []
        if summary.get("spread") not in (None, "none"):
            rules.append(f"--spread {summary['spread']}")
        if summary.get("balance_classes"):
            rules.append("--balance-classes")
        causes.append(f"{spaced} left out by {' / '.join(rules) or 'the selection'}")
        if min_distance:
            hints.append("a smaller --min-distance")
        if summary.get("spread") not in (None, "none"):
            hints.append("--spread none")
    if candidates - excluded < budget:
        if kind == "superpixels":
            hints.append("a smaller --superpixel-size (more, smaller superpixels)")
        elif kind == "points":
            hints.append("--unit points reads decimated maps: a larger --max-pixels")
        else:
            hints.append(
                "a smaller --region-size (more, smaller regions)"
                if region
                else "--region-size N (square regions smaller than a tile)"
            )
        if min_valid > 0:
            hints.append("a lower --min-valid")
        hints.append("more scenes in the run folder")
    return (
        f"geolabel: prioritize: {picked} of --budget {budget} picked: "
        + ", ".join(causes)
        + ". For more picks: "
        + "; ".join(dict.fromkeys(hints))
        + "."
    )
