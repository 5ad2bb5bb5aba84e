"""geolabel: label large geospatial rasters with the help of models."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from geolabel.grid import EdgePolicy, SceneGrid, Tile, TileGrid, Window  # noqa: E402

__all__ = ["EdgePolicy", "SceneGrid", "Tile", "TileGrid", "Window", "__version__"]
