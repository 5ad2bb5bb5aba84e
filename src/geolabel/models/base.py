"""The backend protocol and the values that cross it: Batch in, Prediction out.

Backends see tiles and arrays, never files. Pre-processing (band scaling and
normalisation) is shared by every backend and lives here, driven by the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from geolabel.errors import ModelOutputError
from geolabel.grid import Tile
from geolabel.models.spec import ModelSpec

__all__ = [
    "Batch",
    "ModelBackend",
    "Prediction",
    "normalize",
    "normalize_coefficients",
    "normalize_into",
    "softmax",
]

PredictionKind = Literal["probabilities", "boxes", "scores"]


@dataclass(frozen=True, slots=True)
class Batch:
    """Model-ready tiles.

    Attributes:
        tiles: the tiles, in order.
        data: ``(n, bands, rows, cols)`` normalised input (invalid pixels are 0).
        valid: ``(n, rows, cols)`` valid-data masks.
    """

    tiles: tuple[Tile, ...]
    data: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        """Check that the arrays agree."""
        n = len(self.tiles)
        if self.data.ndim != 4 or self.data.shape[0] != n:
            raise ValueError(
                f"batch data must be (n={n}, bands, rows, cols), got {self.data.shape}"
            )
        if self.valid.shape != (n, *self.data.shape[2:]):
            raise ValueError(
                f"batch valid mask {self.valid.shape} does not match {self.data.shape}"
            )


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a backend returns for one tile, validated on creation.

    ``probabilities``: ``array`` is ``(classes, rows, cols)`` float32 in [0, 1].
    ``scores``: ``array`` is ``(classes,)`` tile-level class scores.
    ``boxes``: ``array`` is ``(n, 4)`` pixel boxes ``(x0, y0, x1, y1)`` in the read
    window, with ``scores`` ``(n,)`` and ``labels`` ``(n,)``.

    Raises:
        ModelOutputError: wrong shape or dtype, non-finite values, bad class count.
    """

    tile: Tile
    kind: PredictionKind
    array: npt.NDArray[np.float32]
    num_classes: int
    model_id: str
    scores: npt.NDArray[np.float32] | None = None
    labels: npt.NDArray[np.int64] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate shape, dtype and values."""
        a = self.array
        where = f"model {self.model_id!r}, tile {self.tile.id}"
        if not np.issubdtype(a.dtype, np.floating):
            raise ModelOutputError(
                f"{where}: output dtype {a.dtype} is not floating point"
            )
        if not np.isfinite(a).all():
            raise ModelOutputError(f"{where}: output has NaN or infinite values")
        if self.kind == "probabilities":
            if a.ndim != 3 or a.shape[0] != self.num_classes:
                raise ModelOutputError(
                    f"{where}: expected ({self.num_classes}, rows, cols) probabilities, "
                    f"got shape {a.shape}"
                )
            if a.shape[1:] != self.tile.read_window.shape:
                raise ModelOutputError(
                    f"{where}: output size {a.shape[1:]} != read window {self.tile.read_window.shape}"
                )
        elif self.kind == "scores":
            if a.shape != (self.num_classes,):
                raise ModelOutputError(
                    f"{where}: expected {self.num_classes} scores, got {a.shape}"
                )
        elif self.kind == "boxes":
            n = a.shape[0] if a.ndim == 2 else -1
            if a.ndim != 2 or a.shape[1] != 4:
                raise ModelOutputError(f"{where}: boxes must be (n, 4), got {a.shape}")
            if (
                self.scores is None
                or self.labels is None
                or len(self.scores) != n
                or len(self.labels) != n
            ):
                raise ModelOutputError(f"{where}: boxes need {n} scores and {n} labels")
            if n and ((a[:, 2] < a[:, 0]).any() or (a[:, 3] < a[:, 1]).any()):
                raise ModelOutputError(f"{where}: boxes need x1 >= x0 and y1 >= y0")
            if n and not np.isfinite(self.scores).all():
                raise ModelOutputError(
                    f"{where}: box scores have NaN or infinite values"
                )
            if n and (
                (self.labels < 0).any() or (self.labels >= self.num_classes).any()
            ):
                raise ModelOutputError(
                    f"{where}: box labels outside 0..{self.num_classes - 1}"
                )


@runtime_checkable
class ModelBackend(Protocol):
    """A loaded model. Local and remote backends implement the same synchronous face."""

    @property
    def spec(self) -> ModelSpec:
        """The model's spec."""
        ...

    def predict(self, batch: Batch) -> list[Prediction]:
        """One prediction per tile of the batch, in order."""
        ...

    def close(self) -> None:
        """Release the model (sessions, GPU memory, connections)."""
        ...

    def __enter__(self) -> ModelBackend: ...
    def __exit__(self, *exc: object) -> None: ...


def normalize(
    data: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    spec: ModelSpec,
    *,
    in_place: bool = False,
) -> npt.NDArray[np.float32]:
    """Apply ``(x * scale + offset - mean) / std`` per band; invalid pixels become 0.

    ``data`` is ``(n, bands, rows, cols)`` or ``(bands, rows, cols)``; returns float32
    (``data`` itself with ``in_place``, when it is float32 already).
    """
    if in_place and data.dtype == np.float32:
        out = data
    else:
        out = np.empty(data.shape, dtype=np.float32)
    return normalize_into(data, valid, spec, out)


def normalize_coefficients(
    spec: ModelSpec, bands: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-band ``(a, b)`` with ``(x * scale + offset - mean) / std == x * a + b``."""
    inp = spec.input
    mean = np.zeros(bands) if inp.mean is None else np.asarray(inp.mean, np.float64)
    std = np.ones(bands) if inp.std is None else np.asarray(inp.std, np.float64)
    a = np.broadcast_to(inp.scale / std, (bands,))
    b = np.broadcast_to((inp.offset - mean) / std, (bands,))
    return a.astype(np.float32), b.astype(np.float32)


def normalize_into(
    raw: npt.NDArray[Any],
    valid: npt.NDArray[np.bool_],
    spec: ModelSpec,
    out: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """:func:`normalize` of ``raw`` (any numeric dtype) written into float32 ``out``.

    Two passes over the pixels, whatever the file's data type: ``out = raw * a`` (the
    cast is done on the fly) and ``out += b`` (see :func:`normalize_coefficients`);
    ``raw`` may be ``out`` itself. Shapes are ``(n, bands, rows, cols)`` or
    ``(bands, rows, cols)`` with ``valid`` ``(n, rows, cols)`` or ``(rows, cols)``.
    """
    a, b = normalize_coefficients(spec, raw.shape[-3])
    shape = (-1, 1, 1)
    if (a == 1.0).all():
        if raw is not out:
            np.copyto(out, raw, casting="unsafe")
    else:
        np.multiply(raw, a.reshape(shape), out=out)
    if (b != 0.0).any():
        np.add(out, b.reshape(shape), out=out)
    if not valid.all():
        mask = ~valid[..., None, :, :] if out.ndim == 4 else ~valid[None]
        np.copyto(out, np.float32(0.0), where=np.broadcast_to(mask, out.shape))
    return out


def softmax(x: npt.NDArray[np.float32], axis: int = 1) -> npt.NDArray[np.float32]:
    """Numerically stable softmax along ``axis``."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: npt.NDArray[np.float32] = (e / e.sum(axis=axis, keepdims=True)).astype(
        np.float32
    )
    return out


def activate(raw: npt.NDArray[np.float32], spec: ModelSpec) -> npt.NDArray[np.float32]:
    """Turn raw ``(n, classes, ...)`` outputs into probabilities per the spec."""
    act = spec.output.activation
    if act == "softmax":
        return softmax(raw, axis=1)
    if act == "sigmoid":
        return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
    return raw.astype(np.float32, copy=False)


def to_predictions(
    probs: npt.NDArray[np.float32], batch: Batch, spec: ModelSpec
) -> list[Prediction]:
    """Wrap ``(n, classes, rows, cols)`` probabilities (cropped to each read window)."""
    out = []
    for i, tile in enumerate(batch.tiles):
        h, w = tile.read_window.shape
        out.append(
            Prediction(
                tile=tile,
                kind="probabilities",
                array=np.ascontiguousarray(probs[i, :, :h, :w]),
                num_classes=spec.num_classes,
                model_id=spec.model_id,
            )
        )
    return out
