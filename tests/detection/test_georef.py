"""Pixel boxes to map coordinates: exact, for north-up, south-up and negative-northing grids."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from geolabel.grid import SceneGrid, TileGrid
from geolabel.stitch.georef import (
    boxes_to_map,
    geometry_to_map,
    mask_to_polygon,
    owner_index,
    tile_boxes_to_map,
)

TRANSFORMS = {
    "north-up": Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0),
    "south-up": Affine(0.5, 0, 500000.0, 0, 0.5, 4000000.0),
    "negative-northing": Affine(10.0, 0, 300000.0, 0, -10.0, -2000000.0),
    "south-up-negative-northing": Affine(10.0, 0, -1000.0, 0, 10.0, -9000000.0),
    "west-pointing": Affine(-2.0, 0, 1000.0, 0, -2.0, 0.0),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_box_corners_map_exactly(name: str) -> None:
    t = TRANSFORMS[name]
    box = np.array([[2.0, 3.0, 6.5, 9.0]])
    ((xmin, ymin, xmax, ymax),) = boxes_to_map(t, box)
    xs = sorted([t.c + t.a * 2.0, t.c + t.a * 6.5])
    ys = sorted([t.f + t.e * 3.0, t.f + t.e * 9.0])
    assert (xmin, xmax) == (xs[0], xs[1]) and (ymin, ymax) == (ys[0], ys[1])
    assert xmin < xmax and ymin < ymax
    # the map box's corners map back onto the pixel box's corners
    back = sorted(
        tuple(round(v, 9) for v in ~t @ (x, y))
        for x in (xmin, xmax)
        for y in (ymin, ymax)
    )
    assert back == [(2.0, 3.0), (2.0, 9.0), (6.5, 3.0), (6.5, 9.0)]


@pytest.mark.parametrize(
    "name", ["north-up", "south-up", "negative-northing", "south-up-negative-northing"]
)
def test_read_window_boxes_use_the_window_transform(name: str) -> None:
    scene = SceneGrid((100, 130), TRANSFORMS[name], "EPSG:32633")
    grid = TileGrid(scene, 48, 8)
    tile = grid[1, 2]
    local = np.array([[4.0, 5.0, 10.0, 12.0]])
    shifted = local + [tile.read_window.col_off, tile.read_window.row_off] * 2
    np.testing.assert_array_equal(
        tile_boxes_to_map(scene, tile, local), boxes_to_map(scene.transform, shifted)
    )
    # pixel (row, col) of the top-left corner lands where SceneGrid.xy says
    x, y = scene.xy(shifted[0, 1], shifted[0, 0])
    xmin, ymin, _, ymax = tile_boxes_to_map(scene, tile, local)[0]
    assert x == xmin and y == (ymax if scene.transform.e < 0 else ymin)


def test_geometry_and_mask_outline() -> None:
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:7] = True
    poly = mask_to_polygon(mask)
    assert poly.area == 10 and poly.bounds == (2.0, 1.0, 7.0, 3.0)
    t = TRANSFORMS["south-up"]
    mapped = geometry_to_map(t, poly)
    assert mapped.bounds == tuple(boxes_to_map(t, [poly.bounds])[0])
    assert mapped.area == pytest.approx(10 * 0.25)
    assert mask_to_polygon(np.zeros((3, 3), bool)).is_empty
    assert isinstance(poly, shapely.Polygon)


def test_owner_index_follows_half_open_cores() -> None:
    grid = TileGrid(
        SceneGrid((100, 100), TRANSFORMS["north-up"], None), 48, 8
    )  # cores of 32
    assert owner_index(grid, 31.999, 32.0) == (0, 1)
    assert owner_index(grid, 32.0, 0.0) == (1, 0)
    assert owner_index(grid, 99.5, 99.5) == (3, 3)
    assert owner_index(grid, -1.0, 200.0) == (0, 3)
