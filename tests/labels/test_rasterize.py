"""Rasterising label vectors onto a scene grid: pixel-exact on a synthetic grid."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from geolabel.errors import ConfigError, CRSMismatchError
from geolabel.grid import SceneGrid, Window
from geolabel.labels import IGNORE_INDEX, class_lookup, merge_labels, rasterize_labels

CRS = "EPSG:32633"
GRID = SceneGrid((20, 30), Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 2000.0), CRS)
NAMES = ("water", "forest", "urban")
LOOKUP = class_lookup(NAMES)


def centres_inside(geom: shapely.Geometry, grid: SceneGrid) -> np.ndarray:
    """Independent oracle: True where the pixel centre lies inside ``geom``."""
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    xs, ys = grid.transform @ (cols + 0.5, rows + 0.5)
    return np.asarray(shapely.contains_xy(geom, xs, ys))


def gdf(geoms: list, labels: list, crs: str | None = CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"label": labels}, geometry=geoms, crs=crs)


class TestPolygons:
    def test_aligned_box_burns_exact_pixels(self) -> None:
        # x 1020..1050 = cols 2..4, y 1990..1970 = rows 1..2
        box = shapely.box(1020, 1970, 1050, 1990)
        out = rasterize_labels(
            gdf([box], ["forest"]), GRID, num_classes=3, lookup=LOOKUP
        )
        expected = np.full(GRID.shape, IGNORE_INDEX, np.uint8)
        expected[1:3, 2:5] = 1
        np.testing.assert_array_equal(out, expected)

    def test_oblique_polygon_matches_pixel_centres(self) -> None:
        tri = shapely.Polygon([(1013.0, 1991.0), (1187.0, 1912.0), (1071.0, 1807.0)])
        out = rasterize_labels(
            gdf([tri], ["urban"]), GRID, num_classes=3, lookup=LOOKUP
        )
        inside = centres_inside(tri, GRID)
        assert inside.sum() > 50
        np.testing.assert_array_equal(out == 2, inside)
        assert (out[~inside] == IGNORE_INDEX).all()

    def test_crop_of_the_grid_is_the_same_pixels(self) -> None:
        tri = shapely.Polygon([(1013.0, 1991.0), (1187.0, 1912.0), (1071.0, 1807.0)])
        full = rasterize_labels(
            gdf([tri], ["urban"]), GRID, num_classes=3, lookup=LOOKUP
        )
        w = Window(3, 5, 9, 11)
        part = rasterize_labels(
            gdf([tri], ["urban"]), GRID.crop(w), num_classes=3, lookup=LOOKUP
        )
        np.testing.assert_array_equal(part, full[w.slices])

    def test_overlap_of_two_classes_is_ignored(self) -> None:
        a, b = shapely.box(1000, 1900, 1100, 2000), shapely.box(1050, 1850, 1150, 1950)
        out = rasterize_labels(
            gdf([a, b], ["water", "forest"]), GRID, num_classes=3, lookup=LOOKUP
        )
        ina, inb = centres_inside(a, GRID), centres_inside(b, GRID)
        np.testing.assert_array_equal(out == 0, ina & ~inb)
        np.testing.assert_array_equal(out == 1, inb & ~ina)
        assert (out[ina & inb] == IGNORE_INDEX).all() and (ina & inb).sum() == 25

    def test_reprojected_labels_land_on_the_same_pixels(self) -> None:
        box = shapely.box(1020, 1970, 1050, 1990)
        src = gdf([box], ["forest"]).to_crs("EPSG:4326")
        out = rasterize_labels(src, GRID, num_classes=3, lookup=LOOKUP)
        assert set(zip(*np.nonzero(out == 1), strict=True)) == {
            (r, c) for r in (1, 2) for c in (2, 3, 4)
        }


class TestPoints:
    def test_point_burns_its_pixel(self) -> None:
        pt = shapely.Point(1000 + 10 * 7.3, 2000 - 10 * 4.8)  # row 4, col 7
        out = rasterize_labels(gdf([pt], ["water"]), GRID, num_classes=3, lookup=LOOKUP)
        assert list(zip(*np.nonzero(out != IGNORE_INDEX), strict=True)) == [(4, 7)]
        assert out[4, 7] == 0

    def test_buffered_point_is_a_square_clipped_at_the_edge(self) -> None:
        inner = shapely.Point(1000 + 10 * 7.3, 2000 - 10 * 4.8)
        corner = shapely.Point(1000.5, 1999.5)  # row 0, col 0
        out = rasterize_labels(
            gdf([inner, corner], ["water", "urban"]),
            GRID,
            num_classes=3,
            lookup=LOOKUP,
            point_buffer=1,
        )
        expected = np.full(GRID.shape, IGNORE_INDEX, np.uint8)
        expected[3:6, 6:9] = 0
        expected[0:2, 0:2] = 2
        np.testing.assert_array_equal(out, expected)

    def test_points_outside_are_dropped(self) -> None:
        out = rasterize_labels(
            gdf([shapely.Point(0, 0)], ["water"]), GRID, num_classes=3, lookup=LOOKUP
        )
        assert (out == IGNORE_INDEX).all()


class TestClassField:
    def test_integer_codes_with_offset(self) -> None:
        labels = gpd.GeoDataFrame(
            {"code": [3]}, geometry=[shapely.box(1020, 1970, 1050, 1990)], crs=CRS
        )
        out = rasterize_labels(
            labels, GRID, num_classes=3, class_field="code", class_offset=-1
        )
        assert (out[1:3, 2:5] == 2).all()

    def test_codes_out_of_range_fail(self) -> None:
        labels = gpd.GeoDataFrame(
            {"code": [4]}, geometry=[shapely.Point(1005, 1995)], crs=CRS
        )
        with pytest.raises(ConfigError, match=r"outside 0\.\.2"):
            rasterize_labels(
                labels, GRID, num_classes=3, class_field="code", class_offset=-1
            )

    def test_unknown_names_and_missing_field_fail(self) -> None:
        with pytest.raises(ConfigError, match="unknown class names"):
            rasterize_labels(
                gdf([shapely.Point(1005, 1995)], ["lava"]),
                GRID,
                num_classes=3,
                lookup=LOOKUP,
            )
        with pytest.raises(ConfigError, match="no class field 'kind'"):
            rasterize_labels(
                gdf([shapely.Point(1005, 1995)], ["water"]),
                GRID,
                num_classes=3,
                lookup=LOOKUP,
                class_field="kind",
            )

    def test_names_are_case_insensitive(self) -> None:
        out = rasterize_labels(
            gdf([shapely.Point(1005, 1995)], ["Forest"]),
            GRID,
            num_classes=3,
            lookup=LOOKUP,
        )
        assert out[0, 0] == 1

    def test_crs_missing_on_one_side_fails(self) -> None:
        with pytest.raises(CRSMismatchError):
            rasterize_labels(
                gdf([shapely.Point(1005, 1995)], ["water"], crs=None),
                GRID,
                num_classes=3,
                lookup=LOOKUP,
            )


def test_merge_labels_adds_and_ignores_conflicts() -> None:
    a = np.array([[0, 255, 1]], np.uint8)
    b = np.array([[0, 2, 2]], np.uint8)
    np.testing.assert_array_equal(merge_labels(a, b), [[0, 2, 255]])
