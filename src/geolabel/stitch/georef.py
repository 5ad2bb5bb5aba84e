"""Scene pixels to map coordinates for boxes and outlines, and core ownership lookups.

Pixel convention (GDAL ``AREA_OR_POINT=Area``): pixel ``(row, col)`` covers
``[col, col + 1) x [row, row + 1)``, and the scene affine maps the pixel-corner
position ``(col, row)`` to CRS ``(x, y)``. A box ``(x0, y0, x1, y1)`` in pixels has its
corners mapped exactly by that affine; the map box is the min/max of the mapped
corners, so south-up grids (positive ``e``), west-pointing grids (negative ``a``) and
negative northings all give ``xmin < xmax`` and ``ymin < ymax``.
"""

from __future__ import annotations

import bisect
from itertools import accumulate

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from geolabel.grid import SceneGrid, Tile, TileGrid

__all__ = [
    "boxes_to_map",
    "geometry_to_map",
    "mask_to_polygon",
    "owner_index",
    "tile_boxes_to_map",
]

F64 = npt.NDArray[np.float64]


def boxes_to_map(transform: Affine, boxes: npt.ArrayLike) -> F64:
    """Map ``(n, 4)`` pixel boxes ``(x0, y0, x1, y1)`` to CRS ``(xmin, ymin, xmax, ymax)``.

    Args:
        transform: the pixel-corner affine of the pixels the boxes are measured in
            (a scene's transform, or a read window's ``SceneGrid.window_transform``).
        boxes: ``(n, 4)`` boxes, ``x`` = column and ``y`` = row.

    Returns:
        ``(n, 4)`` float64 map boxes.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    t = transform
    xa = t.a * b[:, 0] + t.b * b[:, 1] + t.c
    ya = t.d * b[:, 0] + t.e * b[:, 1] + t.f
    xb = t.a * b[:, 2] + t.b * b[:, 3] + t.c
    yb = t.d * b[:, 2] + t.e * b[:, 3] + t.f
    return np.stack(
        [
            np.minimum(xa, xb),
            np.minimum(ya, yb),
            np.maximum(xa, xb),
            np.maximum(ya, yb),
        ],
        axis=1,
    )


def tile_boxes_to_map(scene: SceneGrid, tile: Tile, boxes: npt.ArrayLike) -> F64:
    """Map boxes given in a tile's read-window pixels through that window's transform."""
    return boxes_to_map(scene.window_transform(tile.read_window), boxes)


def geometry_to_map(transform: Affine, geom: BaseGeometry) -> BaseGeometry:
    """A shapely geometry in pixel coordinates mapped through ``transform``."""
    t = transform
    return shapely.affinity.affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


def owner_index(grid: TileGrid, row: float, col: float) -> tuple[int, int]:
    """``(tile_row, tile_col)`` of the core holding scene pixel position ``(row, col)``.

    Positions outside the scene go to the nearest edge tile.
    """
    r_starts = list(accumulate(grid.chunks[0], initial=0))[:-1]
    c_starts = list(accumulate(grid.chunks[1], initial=0))[:-1]
    r = min(max(bisect.bisect_right(r_starts, row) - 1, 0), len(r_starts) - 1)
    c = min(max(bisect.bisect_right(c_starts, col) - 1, 0), len(c_starts) - 1)
    return r, c


def mask_to_polygon(mask: npt.NDArray[np.bool_]) -> BaseGeometry:
    """The outline of a boolean ``(rows, cols)`` mask in pixel-corner coordinates.

    Returns a (Multi)Polygon along pixel edges; an empty mask gives an empty polygon.
    """
    from rasterio import features

    if not mask.any():
        return shapely.Polygon()
    shapes = [
        shapely.geometry.shape(g)
        for g, v in features.shapes(mask.astype(np.uint8), mask=mask, connectivity=4)
        if v == 1
    ]
    return shapely.union_all(shapes)
