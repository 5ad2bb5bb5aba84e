"""Blending weights over a tile: edge-aware cosine ramps that form a partition of unity.

Along one axis, a tile's weight at a pixel depends on the distance ``d`` from the pixel
centre to the nearest edge of the tile's *context window* that is not a scene border.
With overlap ``ov`` and a dead zone ``z`` (pixels whose model output is spoiled by the
tile edge, at most the receptive-field radius), ``w = sin²(π/2 · clip((d - z) / (2ov - 2z)))``.
Two neighbours' distances add up to ``2·ov`` across their shared band, so their weights
add up to exactly 1; ``z = ov`` gives plain core cropping.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from geolabel.grid._window import Window
from geolabel.grid.tiles import Tile

__all__ = ["axis_weights", "tile_weights"]


def axis_weights(
    n: int,
    overlap: int,
    dead_zone: float,
    *,
    fade_start: bool,
    fade_stop: bool,
    clipped_start: int = 0,
    clipped_stop: int = 0,
) -> npt.NDArray[np.float32]:
    """1-D weights for ``n`` pixels of a context window.

    Args:
        n: pixels along the axis.
        overlap: context pixels per side.
        dead_zone: pixels next to a faded edge that get weight 0 (``0 <= z <= overlap``).
        fade_start: whether the first edge is a tile edge (the core does not start at
            the scene border).
        fade_stop: likewise for the last edge.
        clipped_start: pixels the nominal context (core ± overlap) lost at the start
            to the scene edge; distances are measured from the nominal edge.
        clipped_stop: likewise at the stop.
    """
    w = np.ones(n, dtype=np.float64)
    if overlap == 0:
        return w.astype(np.float32)
    z = float(min(max(dead_zone, 0.0), overlap))
    centres = np.arange(n, dtype=np.float64) + 0.5
    ramp = 2.0 * (overlap - z)
    starts = centres + clipped_start
    stops = n - centres + clipped_stop
    for fade, d in ((fade_start, starts), (fade_stop, stops)):
        if not fade:
            continue
        if ramp <= 0:
            side = (d > overlap).astype(np.float64)
            side[np.isclose(d, overlap)] = 0.5
        else:
            t = np.clip((d - z) / ramp, 0.0, 1.0)
            side = np.sin(0.5 * np.pi * t) ** 2
        w *= side
    return w.astype(np.float32)


def tile_weights(tile: Tile, overlap: int, dead_zone: float) -> npt.NDArray[np.float32]:
    """2-D weights over ``tile.context_window`` (``(rows, cols)``, float32)."""
    top, bottom, left, right = tile.at_border
    ctx: Window = tile.context_window
    core: Window = tile.core_window
    wr = axis_weights(
        ctx.height,
        overlap,
        dead_zone,
        fade_start=not top,
        fade_stop=not bottom,
        clipped_start=ctx.row_off - (core.row_off - overlap),
        clipped_stop=(core.row_stop + overlap) - ctx.row_stop,
    )
    wc = axis_weights(
        ctx.width,
        overlap,
        dead_zone,
        fade_start=not left,
        fade_stop=not right,
        clipped_start=ctx.col_off - (core.col_off - overlap),
        clipped_stop=(core.col_stop + overlap) - ctx.col_stop,
    )
    return np.outer(wr, wc)
