"""Finalize a detection or tile-classification scene: its GeoPackage(s).

When every tile of the scene is recorded done, :func:`finalize_objects` reads the
per-tile records of the :class:`~geolabel.io.object_store.ObjectStore` and writes:

* detection: ``NAME_detections.gpkg``, layer ``detections`` (one box or instance
  polygon per object after seam merging, :mod:`geolabel.stitch.objects`), and
  ``NAME_tiles.gpkg``, layer ``tiles`` (tile cores with per-tile counts and how many
  boxes fall in the ambiguous score band);
* classification: ``NAME_tiles.gpkg``, layer ``tiles`` (one tile-core polygon with
  the class scores of the tile).

Options come from ``RunConfig.extra`` (:func:`object_options`): ``merge``
(``wbf``/``nms``/``ownership``), ``merge_iou`` (0.5) and ``ambiguous_band``
(``[0.3, 0.7]``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geolabel.config import RunConfig
from geolabel.errors import ConfigError
from geolabel.grid import Tile, TileGrid
from geolabel.io.object_store import ObjectStore
from geolabel.io.scene import Scene
from geolabel.io.vector import GpkgWriter
from geolabel.models.spec import ModelSpec
from geolabel.stitch.georef import boxes_to_map, geometry_to_map
from geolabel.stitch.objects import TileDetections, merge_detections

__all__ = ["AMBIGUOUS_BAND", "finalize_objects", "object_options"]

logger = logging.getLogger(__name__)

#: default score band whose boxes count as ambiguous in the per-tile layer.
AMBIGUOUS_BAND = (0.3, 0.7)


def object_options(config: RunConfig) -> tuple[str, float, tuple[float, float]]:
    """``(merge method, merge IoU, ambiguous score band)`` from ``RunConfig.extra``.

    Raises:
        ConfigError: an ambiguous band that is not ``[low, high]`` within 0..1.
    """
    extra = config.extra or {}
    method = str(extra.get("merge", "wbf"))
    iou = float(extra.get("merge_iou", 0.5))
    band = tuple(float(v) for v in extra.get("ambiguous_band", AMBIGUOUS_BAND))
    if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
        raise ConfigError(
            f"ambiguous_band must be [low, high] within 0..1, got {band!r}"
        )
    return method, iou, (band[0], band[1])


def _core_fields(tile: Tile) -> dict[str, int]:
    c = tile.core_window
    return {
        "row_off": c.row_off,
        "col_off": c.col_off,
        "height": c.height,
        "width": c.width,
    }


def _core_polygon(grid: TileGrid, tile: Tile) -> Any:
    c = tile.core_window
    box = boxes_to_map(
        grid.scene.transform, [[c.col_off, c.row_off, c.col_stop, c.row_stop]]
    )[0]
    return shapely.box(*box)


def finalize_objects(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    store: ObjectStore,
    sdir: Path,
    *,
    run_id: str,
    method: str = "wbf",
    iou_threshold: float = 0.5,
    ambiguous: tuple[float, float] = AMBIGUOUS_BAND,
) -> dict[str, str]:
    """Write the GeoPackage(s) of a complete object store; returns ``role -> path``.

    Raises:
        RunStateError: a tile record is missing or unreadable.
    """
    names, labels = spec.class_names, spec.labels()
    records = [(tile, store.read(tile)) for tile in grid]
    base = {"model_id": spec.model_id, "run_id": run_id, "status": "suggested"}
    if spec.task == "classification":
        writer = GpkgWriter(sdir / f"{scene.name}_tiles.gpkg", scene.grid.crs)
        try:
            recs, geoms = [], []
            for tile, doc in records:
                s = np.asarray(doc["scores"], dtype=np.float64)
                top = np.sort(s)[::-1]
                k = int(np.argmax(s))
                recs.append(
                    {
                        "tile_id": tile.id,
                        "row": tile.index[0],
                        "col": tile.index[1],
                        **_core_fields(tile),
                        "class_id": k,
                        "class_name": names[k],
                        "label": labels[k],
                        "score": round(float(s[k]), 6),
                        "margin": round(
                            float(top[0] - (top[1] if len(top) > 1 else 0.0)), 6
                        ),
                        **{
                            f"score_{n}": round(float(v), 6)
                            for n, v in zip(names, s, strict=True)
                        },
                        **base,
                    }
                )
                geoms.append(_core_polygon(grid, tile))
            writer.write("tiles", recs, geoms, geometry_type="Polygon")
            return {"tiles": str(writer.close())}
        except BaseException:
            writer.abort()
            raise
    dets = [
        TileDetections(
            tile,
            np.asarray(doc["boxes"], dtype=np.float64).reshape(-1, 4),
            doc["scores"],
            doc["labels"],
            doc.get("polygons"),
        )
        for tile, doc in records
    ]
    objects = merge_detections(grid, dets, method=method, iou_threshold=iou_threshold)  # type: ignore[arg-type]
    transform = grid.scene.transform
    writer = GpkgWriter(sdir / f"{scene.name}_detections.gpkg", scene.grid.crs)
    try:
        recs, geoms = [], []
        per_tile: dict[str, list[float]] = {t.id: [] for t in grid}
        for fid, obj in enumerate(objects, start=1):
            mb = boxes_to_map(transform, [obj.box])[0]
            geom = (
                shapely.box(*mb)
                if obj.geometry is None
                else geometry_to_map(transform, obj.geometry)
            )
            recs.append(
                {
                    "id": fid,
                    "class_id": obj.label,
                    "class_name": names[obj.label],
                    "label": labels[obj.label],
                    "score": round(obj.score, 6),
                    "tile_id": obj.tile_id,
                    "n_tiles": len(obj.sources),
                    "xmin": mb[0],
                    "ymin": mb[1],
                    "xmax": mb[2],
                    "ymax": mb[3],
                    "kind": "box" if obj.geometry is None else "instance",
                    **base,
                }
            )
            geoms.append(geom)
            per_tile[obj.tile_id].append(obj.score)
        writer.write("detections", recs, geoms)
        outputs = {"detections": str(writer.close())}
    except BaseException:
        writer.abort()
        raise
    lo, hi = ambiguous
    writer = GpkgWriter(sdir / f"{scene.name}_tiles.gpkg", scene.grid.crs)
    try:
        trecs, tgeoms = [], []
        for tile in grid:
            s = np.asarray(per_tile[tile.id])
            n_amb = int(((s >= lo) & (s <= hi)).sum())
            trecs.append(
                {
                    "tile_id": tile.id,
                    "row": tile.index[0],
                    "col": tile.index[1],
                    **_core_fields(tile),
                    "n_detections": len(s),
                    "n_ambiguous": n_amb,
                    "ambiguous_fraction": round(n_amb / len(s), 6) if len(s) else 0.0,
                    "mean_score": round(float(s.mean()), 6) if len(s) else None,
                    "model_id": spec.model_id,
                    "run_id": run_id,
                }
            )
            tgeoms.append(_core_polygon(grid, tile))
        writer.write("tiles", trecs, tgeoms, geometry_type="Polygon")
        logger.info("%s: %d objects from %d tiles", scene.name, len(objects), len(grid))
        return {**outputs, "tiles": str(writer.close())}
    except BaseException:
        writer.abort()
        raise
