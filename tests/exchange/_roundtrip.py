"""What a Label Studio round trip must give back, computed from the run's own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyogrio
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

#: the 10 m pixels of geolabel.testing.make_scene; half a pixel is the tolerance
PIXEL = 10.0


def chip_box(task: dict[str, Any]) -> shapely.Polygon:
    ref = task["data"]["geolabel"]
    _, _, h, w = ref["window"]
    t = Affine(*ref["transform"])
    (x0, y0), (x1, y1) = t @ (0, 0), t @ (w, h)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def expected_regions(ls_run: dict[str, Any]) -> dict[tuple[str, str], tuple[Any, str]]:
    """``(image, region id) -> (outer ring polygon in map units, label)`` from the
    suggestions GeoPackage, clipped to each chip (region ``s{id}-{k}``: part k)."""
    sugg = pyogrio.read_dataframe(
        Path(ls_run["run"]) / "scene" / "scene_predictions.gpkg", layer="predictions"
    )
    by_id = {
        int(i): (g, str(lab))
        for i, g, lab in zip(sugg["id"], sugg.geometry, sugg["label"], strict=True)
    }
    out = {}
    with rasterio.open(ls_run["scene"]) as src:
        for task in ls_run["tasks"]:
            ref = task["data"]["geolabel"]
            r0, c0, h, w = ref["window"]
            assert Affine(*ref["transform"]) == src.window_transform(
                Window(c0, r0, w, h)
            )
            box = chip_box(task)
            for res in task["predictions"][0]["result"]:
                sid, k = res["id"][1:].split("-")
                geom, label = by_id[int(sid)]
                clipped = shapely.intersection(geom, box)
                parts = [
                    p
                    for p in getattr(clipped, "geoms", [clipped])
                    if isinstance(p, shapely.Polygon) and p.area > 0
                ]
                ring = shapely.Polygon(parts[int(k)].exterior)
                out[(task["data"]["image"], res["id"])] = (ring, label)
    return out


def check_round_trip(
    imported: Any,
    ls_run: dict[str, Any],
    edited: tuple[str, str],
    edit_label: str,
    edit_points: list[list[float]],
) -> None:
    """Every region comes back within half a pixel with its class; the edited one changed."""
    want = expected_regions(ls_run)
    tasks = {t["data"]["image"]: t for t in ls_run["tasks"]}
    assert len(imported) == len(want)
    seen = set()
    for row in imported.itertuples():
        geom = row.geometry
        if geom.geom_type == "MultiPolygon":
            (geom,) = geom.geoms
        key = (row.image, row.region_id)
        seen.add(key)
        ring, label = want[key]
        if key == edited:
            ref = tasks[row.image]["data"]["geolabel"]
            _, _, h, w = ref["window"]
            t = Affine(*ref["transform"])
            pts = [t @ (x * w / 100, y * h / 100) for x, y in edit_points]
            assert row.label == row.class_name == edit_label != label
            assert shapely.hausdorff_distance(geom, shapely.Polygon(pts)) < 1e-6
            continue
        assert row.label == row.class_name == label
        d = shapely.hausdorff_distance(geom, ring)
        assert d <= 0.5 * PIXEL, (key, d)
    assert seen == set(want)


def largest_region(task: dict[str, Any]) -> dict[str, Any]:
    results = task["predictions"][0]["result"]
    return max(results, key=lambda r: len(r["value"]["points"]))


def other_class(label: str, classes: list[str]) -> str:
    return next(c for c in classes if c != label)


__all__ = [
    "PIXEL",
    "check_round_trip",
    "chip_box",
    "expected_regions",
    "largest_region",
    "other_class",
]
