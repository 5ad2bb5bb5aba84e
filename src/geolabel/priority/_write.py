"""Writing a queue: ``next_to_label.gpkg`` + ``.csv`` atomically, recorded in run.json.

.. versionadded:: 0.1
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
from pyproj import CRS

from geolabel.io.raster import atomic_replace
from geolabel.io.run_record import (
    read_record,
    record_path,
    to_record_paths,
    write_record,
)
from geolabel.io.vector import GpkgWriter, write_gpkg_layer

__all__ = ["LAYER", "ROLES", "PriorityResult", "crs_units", "write_queue"]

logger = logging.getLogger(__name__)

LAYER = "next_to_label"
ROLES = ("next_to_label", "next_to_label_csv")


@dataclass(slots=True)
class PriorityResult:
    """The written queue: paths and the ranked rows."""

    gpkg: Path
    csv: Path
    rows: list[dict[str, Any]]


def _update_run_json(
    run_dir: Path, entries: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    doc = to_record_paths(run_dir, read_record(run_dir))
    entries = [{**e, "path": record_path(run_dir, e["path"])} for e in entries]
    doc["outputs"] = [
        o for o in doc.get("outputs", []) if o.get("role") not in ROLES
    ] + entries
    doc["priority"] = options
    write_record(run_dir, doc)


def crs_units(crs: str | None) -> str | None:
    """The unit of a CRS's first axis (``metre``, ``degree``, ``US survey foot``).

    ``None`` without a CRS (coordinates are then those of the scene's transform).
    """
    if crs is None:
        return None
    axes = CRS.from_user_input(crs).axis_info
    return str(axes[0].unit_name) if axes else None


def write_queue(
    run_dir: Path,
    rows: list[dict[str, Any]],
    out_crs: str | None,
    options: dict[str, Any],
) -> PriorityResult:
    """Write the queue (GeoPackage layer + CSV) atomically and record it in run.json.

    Every row gets an empty ``label`` for the labeller to fill and status ``queued``.
    The record also says the units of ``out_crs`` (``crs_units``), those of
    ``--min-distance``.
    """
    for row in rows:
        row.setdefault("label", "")
        row.setdefault("status", "queued")
    options = {**options, "crs_units": crs_units(out_crs)}
    strategy = options["strategy"]
    gpkg_path, csv_path = run_dir / "next_to_label.gpkg", run_dir / "next_to_label.csv"
    geometry_type = "Point" if options.get("unit") == "points" else "Polygon"
    writer = GpkgWriter(gpkg_path, out_crs)
    try:
        if rows:
            writer.write(
                LAYER,
                [{k: v for k, v in row.items() if k != "geometry"} for row in rows],
                [row["geometry"] for row in rows],
                geometry_type=geometry_type,
            )
        else:  # nothing left to label: an empty layer that still has the columns
            _write_empty_layer(writer.tmp, out_crs, geometry_type)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    _write_csv(csv_path, rows, out_crs)
    _update_run_json(
        run_dir,
        [
            {
                "scene": None,
                "role": "next_to_label",
                "path": str(gpkg_path),
                "layer": LAYER,
                "strategy": strategy,
            },
            {
                "scene": None,
                "role": "next_to_label_csv",
                "path": str(csv_path),
                "strategy": strategy,
            },
        ],
        options,
    )
    logger.info(
        "picked %d of %d %s (%s)",
        len(rows),
        options.get("candidates", 0),
        options.get("unit", "regions"),
        strategy,
    )
    return PriorityResult(gpkg_path, csv_path, rows)


_SCHEMA = {
    "rank": "int64",
    "score": "float64",
    "strategy": "str",
    "unit": "str",
    "reason": "str",
    "scene": "str",
    "region_id": "str",
    "dominant_class": "str",
    "valid_fraction": "float64",
    "row_off": "int64",
    "col_off": "int64",
    "height": "int64",
    "width": "int64",
    "label": "str",
    "status": "str",
}


def _write_empty_layer(path: Path, crs: str | None, geometry_type: str) -> None:
    cols = {
        k: gpd.pd.Series([], dtype=object if t == "str" else t)
        for k, t in _SCHEMA.items()
    }
    gdf = gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    write_gpkg_layer(gdf, path, LAYER, geometry_type=geometry_type)


def _write_csv(path: Path, rows: list[dict[str, Any]], crs: str | None) -> None:
    crs_name = CRS.from_user_input(crs).to_string() if crs else ""
    buf = io.StringIO()
    fields = [
        "rank",
        "score",
        "strategy",
        "unit",
        "reason",
        "scene",
        "region_id",
        "dominant_class",
        "valid_fraction",
        "center_x",
        "center_y",
        "minx",
        "miny",
        "maxx",
        "maxy",
        "crs",
    ]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in rows:
        g = row["geometry"]
        c = g.centroid
        minx, miny, maxx, maxy = g.bounds
        w.writerow(
            {
                **{k: row[k] for k in fields[:9]},
                "center_x": round(c.x, 6),
                "center_y": round(c.y, 6),
                "minx": minx,
                "miny": miny,
                "maxx": maxx,
                "maxy": maxy,
                "crs": crs_name,
            }
        )
    tmp = path.with_name(path.stem + ".partial.csv")
    tmp.write_text(buf.getvalue())
    atomic_replace(tmp, path)
