"""Block-wise polygonising equals whole-mask polygonising: one region, one polygon."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import shapes
from shapely.geometry import shape
from shapely.ops import unary_union

from geolabel.grid import SceneGrid, Tile, TileGrid
from geolabel.stitch.vectorize import vectorize_blocks


def _blockwise(mask: np.ndarray, grid: TileGrid, nodata: int = 255) -> list:
    prob = np.linspace(0.5, 1.0, mask.size, dtype=np.float32).reshape(mask.shape)

    def read(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        return mask[tile.core_window.slices], prob[tile.core_window.slices]

    return [c for batch in vectorize_blocks(grid, read, nodata=nodata) for c in batch]


def _whole(mask: np.ndarray, transform: Affine, nodata: int = 255) -> list:
    return [
        (int(v), shape(g))
        for g, v in shapes(
            mask, mask=mask != nodata, connectivity=4, transform=transform
        )
    ]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 40), st.integers(3, 4))
def test_blockwise_matches_whole_mask(seed: int, tile: int, classes: int) -> None:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, size=(8, 9)).astype(np.uint8)
    mask = np.kron(coarse, np.ones((9, 11), np.uint8))[:67, :93]
    mask[rng.random(mask.shape) < 0.02] = 255
    transform = Affine(
        30, 0, 717345, 0, -30, -2776995
    )  # negative northings, as Landsat-8
    grid = TileGrid(SceneGrid(mask.shape, transform, "EPSG:32621"), tile, 0)
    comps = _blockwise(mask, grid)
    whole = _whole(mask, transform)
    assert len(comps) == len(whole)
    assert sum(c.pixels for c in comps) == int((mask != 255).sum())
    ours = sorted((c.class_id, round(c.geometry().area, 3)) for c in comps)
    ref = sorted((k, round(g.area, 3)) for k, g in whole)
    assert ours == ref
    for k in range(classes):
        a = unary_union([c.geometry() for c in comps if c.class_id == k])
        b = unary_union([g for kk, g in whole if kk == k])
        assert a.symmetric_difference(b).area == pytest.approx(0.0, abs=1e-6)


def test_region_joined_only_far_away_is_one_polygon() -> None:
    # a U shape whose arms meet only in the bottom block row
    mask = np.full((60, 60), 1, np.uint8)
    mask[0:50, 10:20] = 0
    mask[0:50, 40:50] = 0
    mask[50:58, 10:50] = 0
    grid = TileGrid(SceneGrid(mask.shape, Affine(1, 0, 0, 0, -1, 60), None), 16, 0)
    comps = _blockwise(mask, grid)
    zero = [c for c in comps if c.class_id == 0]
    assert len(zero) == 1 and zero[0].pixels == int((mask == 0).sum())
    assert zero[0].geometry().geom_type == "Polygon"
