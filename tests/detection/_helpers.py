"""Shared helpers for the detection tests: run the toy square detector tile by tile."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from geolabel.grid import TileGrid
from geolabel.models.base import Batch
from geolabel.models.spec import ModelSpec
from geolabel.stitch.objects import TileDetections, detections_from_prediction
from geolabel.testing.detectors import SquareDetector, square_detector_spec


def detect_tiles(
    grid: TileGrid,
    image: npt.NDArray[np.float32],
    *,
    instances: bool = False,
    classes: int = 2,
) -> list[TileDetections]:
    """Run :class:`SquareDetector` on every tile of ``grid`` over ``image`` (3, H, W)."""
    th, tw = grid.tile_shape
    spec = ModelSpec.model_validate(
        square_detector_spec(
            classes=classes, tile_size=th, overlap=grid.overlap, instances=instances
        )
    )
    det = SquareDetector(spec)
    out = []
    for tile in grid:
        r = tile.read_window
        data = np.zeros((1, 3, th, tw), np.float32)
        valid = np.zeros((1, th, tw), bool)
        data[0, :, : r.height, : r.width] = image[
            :, r.row_off : r.row_stop, r.col_off : r.col_stop
        ]
        valid[0, : r.height, : r.width] = True
        out.append(
            detections_from_prediction(det.predict(Batch((tile,), data, valid))[0])
        )
    return out
