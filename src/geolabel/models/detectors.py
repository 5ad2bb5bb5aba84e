"""Object detectors in plain torch, and the numpy decoder that turns their maps into boxes.

:class:`CenterNet` is a small anchor-free detector in the style of CenterNet
("Objects as Points", Zhou et al. 2019): a fully convolutional network whose output,
at ``stride`` pixels per cell, holds per-class centre heat-map logits, the log box size
and the sub-cell centre offset. :func:`decode_centernet` (numpy only, so ONNX and
remote backends can reuse it) finds the heat-map peaks and returns boxes in input
pixels.

Output layout, ``(n, classes + 4, rows / stride, cols / stride)``:

* channels ``0 .. classes-1``: heat-map logits (sigmoid = centre probability);
* ``classes``, ``classes+1``: ``log(width / stride)``, ``log(height / stride)``;
* ``classes+2``, ``classes+3``: centre offset ``(dx, dy)`` within the cell, in cells.

A box centre ``c`` (input pixels, corner convention) lies in cell ``floor(c / stride)``
with offset ``c / stride - floor(c / stride)``.

This module imports torch lazily: :func:`decode_centernet` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from geolabel.errors import ModelOutputError
from geolabel.models.base import Prediction, activate

if TYPE_CHECKING:
    from geolabel.models.base import Batch, Prediction
    from geolabel.models.spec import ModelSpec

__all__ = ["DetectionArrays", "build_centernet", "decode_centernet", "task_predictions"]

#: ``(boxes (n, 4) x0, y0, x1, y1; scores (n,); labels (n,))`` for one image.
DetectionArrays = tuple[
    npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]
]


def decode_centernet(
    raw: npt.NDArray[np.float32],
    *,
    num_classes: int,
    stride: int,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    extent: tuple[int, int] | None = None,
) -> DetectionArrays:
    """Boxes from one image's CenterNet output.

    Args:
        raw: ``(classes + 4, rows, cols)`` raw network output (heat-map logits first).
        num_classes: number of classes.
        stride: input pixels per output cell.
        score_threshold: lowest peak probability kept.
        max_detections: most boxes returned (highest scores first).
        extent: ``(rows, cols)`` of the valid input; boxes are clipped to it and
            peaks outside it are dropped (padded tiles).

    Returns:
        ``(boxes, scores, labels)``; boxes are ``(x0, y0, x1, y1)`` input pixels,
        sorted by descending score (ties by position, so the order is stable).

    Raises:
        ModelOutputError: the output has the wrong channel count.
    """
    if raw.ndim != 3 or raw.shape[0] != num_classes + 4:
        raise ModelOutputError(
            f"CenterNet output must be ({num_classes + 4}, rows, cols), got {raw.shape}"
        )
    heat = 1.0 / (1.0 + np.exp(-raw[:num_classes].astype(np.float64)))
    peaks = heat == ndimage.maximum_filter(
        heat, size=(1, 3, 3), mode="constant", cval=-1.0
    )
    peaks &= heat >= score_threshold
    cls, iy, ix = np.nonzero(peaks)
    scores = heat[cls, iy, ix]
    size = (
        np.exp(
            np.clip(
                raw[num_classes : num_classes + 2, iy, ix].astype(np.float64), -8, 8
            )
        )
        * stride
    )
    off = raw[num_classes + 2 : num_classes + 4, iy, ix].astype(np.float64)
    cx = (ix + off[0]) * stride
    cy = (iy + off[1]) * stride
    if extent is not None:
        keep = (cx >= 0) & (cy >= 0) & (cx < extent[1]) & (cy < extent[0])
        cls, cx, cy, size, scores = (
            cls[keep],
            cx[keep],
            cy[keep],
            size[:, keep],
            scores[keep],
        )
    boxes = np.stack(
        [cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2], axis=1
    )
    if extent is not None:
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, extent[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, extent[0])
    order = np.lexsort((cx, cy, -scores))[:max_detections]
    return (
        boxes[order].astype(np.float32).reshape(-1, 4),
        scores[order].astype(np.float32),
        cls[order].astype(np.int64),
    )


def build_centernet(
    in_channels: int = 3, num_classes: int = 1, width: int = 32, stride: int = 4
) -> Any:
    """A fresh :class:`CenterNet` module (imports torch).

    Args:
        in_channels: input bands.
        num_classes: object classes.
        width: channels at stride 4 (doubling at 8 and 16).
        stride: output stride, 4 (the only one built).

    Returns:
        the ``torch.nn.Module``.

    Raises:
        ValueError: an unsupported stride or a non-positive width.
    """
    if stride != 4:
        raise ValueError(f"CenterNet is built with stride 4, got {stride!r}")
    if width < 4:
        raise ValueError(f"CenterNet width must be >= 4, got {width!r}")
    from geolabel.models._centernet import CenterNet

    return CenterNet(in_channels=in_channels, num_classes=num_classes, width=width)


def task_predictions(
    raw: npt.NDArray[np.float32], batch: Batch, spec: ModelSpec
) -> list[Prediction]:
    """Wrap a detection or classification network's raw batch output as predictions.

    ``detection``: ``raw`` is CenterNet output ``(n, classes + 4, rows/s, cols/s)``;
    each tile gets a ``boxes`` prediction (read-window pixels, clipped to the window).
    ``classification``: ``raw`` is ``(n, classes)`` logits; the spec's activation
    gives each tile a ``scores`` prediction.

    Raises:
        ModelOutputError: the output does not fit the task or the batch.
    """
    n = len(batch.tiles)
    if raw.shape[0] != n:
        raise ModelOutputError(
            f"model {spec.model_id}: {raw.shape[0]} outputs for {n} tiles"
        )
    out: list[Prediction] = []
    if spec.task == "classification":
        if raw.ndim != 2:
            raise ModelOutputError(
                f"model {spec.model_id}: classification output must be (n, classes), got {raw.shape}"
            )
        scores = activate(raw, spec)
        for i, tile in enumerate(batch.tiles):
            out.append(
                Prediction(
                    tile=tile,
                    kind="scores",
                    array=np.ascontiguousarray(scores[i]),
                    num_classes=spec.num_classes,
                    model_id=spec.model_id,
                )
            )
        return out
    if raw.ndim != 4 or raw.shape[-1] == 0:
        raise ModelOutputError(
            f"model {spec.model_id}: detection output must be 4-d, got {raw.shape}"
        )
    stride = batch.data.shape[-1] // raw.shape[-1]
    for i, tile in enumerate(batch.tiles):
        boxes, scores, labels = decode_centernet(
            raw[i],
            num_classes=spec.num_classes,
            stride=max(stride, 1),
            score_threshold=spec.output.score_threshold,
            max_detections=spec.output.max_detections,
            extent=tile.read_window.shape,
        )
        out.append(
            Prediction(
                tile=tile,
                kind="boxes",
                array=boxes,
                num_classes=spec.num_classes,
                model_id=spec.model_id,
                scores=scores,
                labels=labels,
            )
        )
    return out
