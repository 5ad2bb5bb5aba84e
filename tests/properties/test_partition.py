"""Property tests: core windows partition the scene; blend weights sum to one."""

from __future__ import annotations

import numpy as np
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from geolabel.grid import EdgePolicy, SceneGrid, TileGrid, fit_tile_size, tile_weights


@st.composite
def grids(draw: st.DrawFn) -> TileGrid:
    rows = draw(st.integers(1, 300))
    cols = draw(st.integers(1, 300))
    tile = draw(st.integers(3, 96))
    overlap = draw(st.integers(0, tile // 4))
    edge = draw(st.sampled_from(list(EdgePolicy)))
    scene = SceneGrid((rows, cols), Affine(10, 0, 1000, 0, -10, 5000), "EPSG:32633")
    return TileGrid(scene, tile, overlap, edge)


@settings(max_examples=200, deadline=None)
@given(grids())
def test_core_windows_partition_the_scene(grid: TileGrid) -> None:
    count = np.zeros(grid.scene.shape, dtype=np.int32)
    for tile in grid:
        core = tile.core_window
        assert core.height > 0 and core.width > 0
        count[core.slices] += 1
        # the read window holds the whole context, and the context the core
        assert tile.context_window.intersection(tile.read_window) == tile.context_window
        assert tile.core_window.intersection(tile.context_window) == tile.core_window
        if grid.edge is not EdgePolicy.CLIP:
            ts = grid.tile_shape
            assert tile.read_window.height in (ts[0], grid.scene.height)  # type: ignore[index]
    assert (count == 1).all()
    assert sum(len(grid.shard(i, 3)) for i in range(3)) == len(grid)


@settings(max_examples=100, deadline=None)
@given(grids(), st.floats(0, 1))
def test_blend_weights_sum_to_one(grid: TileGrid, dz: float) -> None:
    dead = dz * grid.overlap
    total = np.zeros(grid.scene.shape)
    for tile in grid:
        total[tile.context_window.slices] += tile_weights(tile, grid.overlap, dead)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(grids(), st.integers(1, 7))
def test_shards_are_disjoint_deterministic_and_complete(grid: TileGrid, n: int) -> None:
    ids = [t.id for i in range(n) for t in grid.shard(i, n)]
    assert ids == [t.id for t in grid]
    again = TileGrid(grid.scene, grid.tile_shape, grid.overlap, grid.edge)
    assert again == grid and hash(again) == hash(grid)
    assert [t.id for t in again] == ids


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(1, 5000),
    tile=st.integers(8, 1100),
    frac=st.floats(0.0, 0.25),
    multiple=st.sampled_from([1, 8, 16, 32]),
)
def test_fitted_tiles_cover_with_as_many_tiles_and_no_more_pixels(
    length: int, tile: int, frac: float, multiple: int
) -> None:
    tile = max(multiple, tile // multiple * multiple)  # a size the model takes
    overlap = int(tile * frac)
    fitted = fit_tile_size(length, tile, overlap, multiple)
    assert 4 * overlap <= fitted <= tile
    assert fitted == tile or fitted % multiple == 0
    scene = SceneGrid((length, 7), Affine(10, 0, 1000, 0, -10, 5000), "EPSG:32633")
    before = TileGrid(scene, (tile, tile), overlap)
    after = TileGrid(scene, (fitted, tile), overlap)
    assert after.shape == before.shape
    # the cores still partition the axis and each read window holds its context
    assert sum(after.chunks[0]) == length
    for t in after:
        assert t.context_window.intersection(t.read_window) == t.context_window
