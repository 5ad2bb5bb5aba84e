"""COCO instances JSON for the chips of :mod:`geolabel.exchange._chips`.

Every chip is a COCO image (its ``file_name`` is the GeoTIFF chip, relative to the
export folder; ``geolabel`` adds the chip's scene, window, transform and CRS). Every
label polygon that meets a chip becomes one annotation, clipped to the chip, in chip
pixel coordinates (``x`` = column, ``y`` = row, ``(0, 0)`` the chip's top-left
corner): ``segmentation`` as polygon rings, or as uncompressed RLE for a polygon with
holes (COCO polygons cannot hold holes); ``bbox`` ``[x, y, width, height]``;
``area`` in pixels. Category ids are class index + 1 (COCO reserves 0 for
background in detectron-style trainers). Point labels have no extent and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from rasterio.features import rasterize

from geolabel import __version__
from geolabel.exchange._geo import apply_affine
from geolabel.grid import SceneGrid

__all__ = ["CocoWriter", "rle_counts"]


def rle_counts(mask: npt.NDArray[np.bool_]) -> list[int]:
    """COCO uncompressed RLE of a ``(rows, cols)`` mask (column-major, zeros first)."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return [int(r) for r in runs]


def _polygons(geom: Any) -> list[shapely.Polygon]:
    if isinstance(geom, shapely.Polygon):
        return [] if geom.is_empty else [geom]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


class CocoWriter:
    """Collects COCO images, annotations and categories chip by chip."""

    def __init__(self, classes: Sequence[str]) -> None:
        """Categories ``index + 1`` for ``classes``."""
        self.categories = [
            {"id": i + 1, "name": n, "supercategory": "label"}
            for i, n in enumerate(classes)
        ]
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.skipped_points = 0

    def add_image(
        self,
        entry: dict[str, Any],
        grid: SceneGrid,
        box: shapely.Polygon,
        features: gpd.GeoDataFrame,
    ) -> None:
        """Add one chip and the clipped polygons of ``features`` (column ``_cls``)."""
        image_id = len(self.images) + 1
        self.images.append(
            {
                "id": image_id,
                "file_name": entry["image"],
                "width": grid.width,
                "height": grid.height,
                "geolabel": {
                    "scene": entry["scene"],
                    "window": entry["window"],
                    "transform": list(grid.transform)[:6],
                    "crs": grid.crs,
                    "mask": entry["mask"],
                },
            }
        )
        inv = ~grid.transform
        for geom, cls in zip(features.geometry, features["_cls"], strict=True):
            if geom.geom_type in ("Point", "MultiPoint"):
                self.skipped_points += 1
                continue
            clipped = shapely.intersection(geom, box)
            for poly in _polygons(clipped):
                pix = shapely.transform(
                    poly,
                    lambda xy: np.column_stack(apply_affine(inv, xy[:, 0], xy[:, 1])),
                )
                ann = self._annotation(pix, grid.shape)
                if ann is None:
                    continue
                ann.update(
                    id=len(self.annotations) + 1,
                    image_id=image_id,
                    category_id=int(cls) + 1,
                )
                self.annotations.append(ann)

    @staticmethod
    def _annotation(
        pix: shapely.Polygon, shape: tuple[int, int]
    ) -> dict[str, Any] | None:
        """Segmentation, bbox and area of a polygon in chip pixel coordinates."""
        if pix.area <= 0:
            return None
        x0, y0, x1, y1 = pix.bounds
        segm: Any
        if len(pix.interiors) == 0:
            ring = np.asarray(pix.exterior.coords)[:-1]
            segm = [[round(float(v), 3) for v in ring.ravel()]]
        else:  # holes: uncompressed RLE of the burnt polygon
            burnt = rasterize(
                [(pix, 1)], out_shape=shape, fill=0, dtype="uint8"
            ).astype(bool)
            segm = {"counts": rle_counts(burnt), "size": [shape[0], shape[1]]}
        return {
            "segmentation": segm,
            "area": round(float(pix.area), 3),
            "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)],
            "iscrowd": 0,
        }

    def document(self) -> dict[str, Any]:
        """The COCO document."""
        return {
            "info": {"description": "geolabel training export", "version": __version__},
            "licenses": [],
            "categories": self.categories,
            "images": self.images,
            "annotations": self.annotations,
        }
