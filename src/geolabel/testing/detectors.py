"""A toy detection backend: it "detects" the bright squares drawn in a scene.

Band 1 marks objects (> 0.5 inside), band 2 holds the class index and band 3 the
score, so a test draws exactly the objects it expects. Each 4-connected component of
marked pixels in a tile's read window is one detection whose box is its pixel-edge
bounding box; a component cut by the window edge gives a cut box, as a real detector
would. With ``instances: true`` the component masks go with the boxes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from scipy import ndimage

from geolabel.errors import BackendError, CircuitOpenError
from geolabel.models.base import Batch, Prediction
from geolabel.models.spec import ModelSpec

__all__ = [
    "SquareDetector",
    "draw_square",
    "square_detector_spec",
    "write_square_detector_spec",
]


def square_detector_spec(
    *,
    classes: int = 2,
    tile_size: int = 64,
    overlap: int = 8,
    instances: bool = False,
    task: str = "detection",
    name: str = "toy-squares",
    fail_on: list[str] | None = None,
    open_circuit_on: list[str] | None = None,
    sleep: float = 0.0,
    fixed_size: bool = False,
) -> dict[str, Any]:
    """A spec dict for :class:`SquareDetector` (3 bands, no normalisation).

    ``fail_on`` lists tile-id suffixes (``"r00000c00001"``) whose batches raise;
    batches holding a tile of ``open_circuit_on`` raise :class:`CircuitOpenError` (as
    a remote model's circuit breaker does: the run stops). ``sleep`` (seconds per
    batch) slows the model down, so kill tests land mid-run. ``fixed_size`` declares
    that the model takes only ``tile_size`` tiles.
    """
    return {
        "name": name,
        "version": "1",
        "task": task,
        "backend": "testing-squares",
        "architecture": {
            "name": "squares",
            "params": {
                "instances": instances,
                "fail_on": fail_on or [],
                "open_circuit_on": open_circuit_on or [],
                "sleep": sleep,
            },
        },
        "input": {
            "bands": ["mark", "class", "score"],
            "tile_size": tile_size,
            "fixed_size": fixed_size,
        },
        "output": {"activation": "none"},
        "classes": [{"index": i, "name": f"thing{i}"} for i in range(classes)],
        "recommended_overlap": overlap,
    }


def write_square_detector_spec(path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`square_detector_spec` as YAML."""
    p = Path(path)
    p.write_text(yaml.safe_dump(square_detector_spec(**kwargs), sort_keys=False))
    return p


def draw_square(
    image: npt.NDArray[np.float32],
    row: int,
    col: int,
    size: int,
    *,
    label: int = 0,
    score: float = 0.9,
) -> tuple[int, int, int, int]:
    """Draw a ``size`` square with top-left pixel ``(row, col)``; returns its pixel box.

    ``image`` is ``(3, rows, cols)``; the box is ``(x0, y0, x1, y1)`` pixel edges.
    """
    sl = (slice(row, row + size), slice(col, col + size))
    image[0][sl] = 1.0
    image[1][sl] = float(label)
    image[2][sl] = float(score)
    return (col, row, col + size, row + size)


class SquareDetector:
    """Boxes (and optional masks) of the marked components in each tile.

    For ``task: classification`` specs it returns tile scores instead: the fraction
    of marked pixels of each class in the read window, normalised to sum to 1 (a
    tile with no marks scores class 0).
    """

    def __init__(self, spec: ModelSpec, **_: Any) -> None:
        """Read the options from the spec."""
        params = dict(spec.architecture.params) if spec.architecture else {}
        self.instances = bool(params.get("instances", False))
        self.fail_on = set(params.get("fail_on", []))
        self.open_circuit_on = set(params.get("open_circuit_on", []))
        self.sleep = float(params.get("sleep", 0.0))
        self._spec = spec

    @property
    def spec(self) -> ModelSpec:
        """The spec."""
        return self._spec

    def _tile(
        self, tile: Any, data: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_]
    ) -> Prediction:
        h, w = tile.read_window.shape
        mark = (data[0, :h, :w] > 0.5) & valid[:h, :w]
        if self._spec.task == "classification":
            counts = np.array(
                [
                    (mark & (np.rint(data[1, :h, :w]) == c)).sum()
                    for c in range(self._spec.num_classes)
                ],
                dtype=np.float32,
            )
            if counts.sum() == 0:
                counts[0] = 1.0
            return Prediction(
                tile=tile,
                kind="scores",
                array=counts / counts.sum(),
                num_classes=self._spec.num_classes,
                model_id=self._spec.model_id,
            )
        comp, n = ndimage.label(mark)
        boxes, scores, labels, masks = [], [], [], []
        for k, (rs, cs) in enumerate(ndimage.find_objects(comp), start=1):
            m = comp == k
            boxes.append((cs.start, rs.start, cs.stop, rs.stop))
            scores.append(float(np.median(data[2, :h, :w][m])))
            labels.append(int(np.rint(np.median(data[1, :h, :w][m]))))
            masks.append(m)
        extra: dict[str, object] = (
            {"masks": np.array(masks, dtype=bool).reshape(n, h, w)}
            if self.instances
            else {}
        )
        return Prediction(
            tile=tile,
            kind="boxes",
            array=np.array(boxes, np.float32).reshape(-1, 4),
            num_classes=self._spec.num_classes,
            model_id=self._spec.model_id,
            scores=np.array(scores, np.float32),
            labels=np.array(labels, np.int64),
            extra=extra,
        )

    def predict(self, batch: Batch) -> list[Prediction]:
        """One prediction per tile; raises for tiles listed in ``fail_on``."""
        if self.sleep:
            time.sleep(self.sleep)
        for t in batch.tiles:
            if t.id.split("/")[-1] in self.fail_on:
                raise BackendError(f"toy detector told to fail on tile {t.id}")
            if t.id.split("/")[-1] in self.open_circuit_on:
                raise CircuitOpenError(f"toy detector opened its circuit on {t.id}")
        return [
            self._tile(t, batch.data[i], batch.valid[i])
            for i, t in enumerate(batch.tiles)
        ]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SquareDetector:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to release."""
