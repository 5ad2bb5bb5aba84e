"""Why ``prioritize`` picked fewer regions than ``--budget``, in one stderr paragraph.

Built from the counts ``prioritize`` records in ``run.json`` (``priority``: budget,
picked, candidates, excluded, min_distance, crs_units, spread, balance_classes,
min_valid, region_size, largest_scene), so the ranking code needs no change to
explain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["shortfall_message"]


#: plurals of the CRS units pyproj names
_PLURALS = {"metre": "metres", "degree": "degrees", "foot": "feet"}


def distance_units(units: object) -> str:
    """``--min-distance``'s unit as a reader says it: ``metres``, ``degrees``, ..."""
    if not units:
        return "scene coordinate units (no CRS)"
    name = str(units)
    for one, many in _PLURALS.items():
        if name == one or name.endswith(f" {one}"):
            return name[: -len(one)] + many
    return name


def _largest_region(rows: int, cols: int) -> int:
    """The largest region side with a candidate in a ``rows x cols`` scene.

    A region is a candidate when at least half of its square lies in the scene.
    """
    side = 1
    while 2 * min(side + 1, rows) * min(side + 1, cols) >= (side + 1) ** 2:
        side += 1
    return side


def _scene_too_small(summary: Mapping[str, Any]) -> str | None:
    """The message for regions that no scene can hold, else ``None``."""
    region = summary.get("region_size")
    largest = summary.get("largest_scene")
    if (
        summary.get("unit") != "regions"
        or not region
        or int(summary.get("candidates", 1))
        or not isinstance(largest, (list, tuple))
        or len(largest) != 2
    ):
        return None
    rows, cols, size = int(largest[0]), int(largest[1]), int(region)
    if 2 * min(size, rows) * min(size, cols) >= size * size:
        return None  # a region fits: too few valid pixels instead
    return (
        f"geolabel: prioritize: 0 of --budget {summary['budget']} picked: no "
        f"{size}-pixel region fits, the largest scene ({rows} x {cols} px) is smaller "
        f"than a region (one needs half of its {size} x {size} px inside the scene). "
        f"For picks: --region-size {_largest_region(rows, cols)} or smaller; or "
        "--unit points or superpixels."
    )


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
    too_small = _scene_too_small(summary)
    if too_small is not None:
        return too_small
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
        units = distance_units(summary.get("crs_units"))
        rules = [f"--min-distance {min_distance:g} ({units})"] if min_distance else []
        if summary.get("spread") not in (None, "none"):
            rules.append(f"--spread {summary['spread']}")
        if summary.get("balance_classes"):
            rules.append("--balance-classes")
        causes.append(f"{spaced} left out by {' / '.join(rules) or 'the selection'}")
        if min_distance:
            hints.append(f"a smaller --min-distance (in {units})")
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
