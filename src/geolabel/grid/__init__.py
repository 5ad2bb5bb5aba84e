"""Pure geometry: scene grids, tile grids, windows and blending weights (no file I/O)."""

from __future__ import annotations

from geolabel.grid._window import Window
from geolabel.grid.geobox import SceneGrid
from geolabel.grid.tiles import EdgePolicy, Tile, TileGrid, fit_tile_size
from geolabel.grid.weights import axis_weights, tile_weights

__all__ = [
    "EdgePolicy",
    "SceneGrid",
    "Tile",
    "TileGrid",
    "Window",
    "axis_weights",
    "fit_tile_size",
    "tile_weights",
]
