"""Where a tile's context spills into its neighbours' cores, packed into fixed slots.

A tile's weighted prediction over its context window splits into the part over its own
core and up to eight *halo pieces*, one per neighbour direction: the part that falls in
that neighbour's core. Each piece has a fixed-size slot (corners ``ov × ov``, edges
``ov × core``), so one tile's halo is one fixed-size record that exactly one tile writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from geolabel.grid import Tile, TileGrid, Window

__all__ = ["DIRECTIONS", "halo_pieces", "halo_size", "slot_layout"]

#: Neighbour directions ``(d_row, d_col)`` in slot order.
DIRECTIONS: tuple[tuple[int, int], ...] = (
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
)


def _slot_shape(grid: TileGrid, d: tuple[int, int]) -> tuple[int, int]:
    ov = grid.overlap
    core_r = grid.tile_shape[0] - 2 * ov  # type: ignore[index]
    core_c = grid.tile_shape[1] - 2 * ov  # type: ignore[index]
    rows = ov if d[0] else core_r
    cols = ov if d[1] else core_c
    return (rows, cols)


def slot_layout(grid: TileGrid) -> dict[tuple[int, int], tuple[int, tuple[int, int]]]:
    """Direction -> ``(flat offset, (rows, cols))`` of its slot in a halo record."""
    out = {}
    off = 0
    for d in DIRECTIONS:
        shape = _slot_shape(grid, d)
        out[d] = (off, shape)
        off += shape[0] * shape[1]
    return out


def halo_size(grid: TileGrid) -> int:
    """Length (pixels per channel) of one tile's halo record."""
    return sum(r * c for _, (r, c) in slot_layout(grid).values())


def halo_pieces(grid: TileGrid, tile: Tile) -> Iterator[tuple[tuple[int, int], Window]]:
    """``(direction, window in scene pixels)`` of each non-empty halo piece of ``tile``."""
    rows, cols = grid.shape
    r, c = tile.index
    for d in DIRECTIONS:
        nr, nc = r + d[0], c + d[1]
        if not (0 <= nr < rows and 0 <= nc < cols):
            continue
        piece = tile.context_window.intersection(grid[nr, nc].core_window)
        if piece.height and piece.width:
            yield d, piece
