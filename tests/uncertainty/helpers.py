"""A model whose uncertainty is known by construction, and scenes for it.

``AmbiguityBackend`` is pointwise (so tiling cannot change it): band 1 of the scene,
``a`` in [0, 1], sets ``p(class0) = 0.95 - 0.45 * a``. Pixels with ``a = 0`` are
confident (p = 0.95 / 0.05), pixels with ``a = 1`` are a 50/50 coin toss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from geolabel.config import RunConfig
from geolabel.models.base import Batch, Prediction, to_predictions
from geolabel.models.spec import ModelSpec
from geolabel.pipeline import RunResult, run_predict
from geolabel.testing import make_scene, toy_spec


def ambiguity_spec(tile_size: int = 64) -> ModelSpec:
    """A 1-band, 2-class spec without normalisation."""
    raw = toy_spec(
        bands=1, classes=2, tile_size=tile_size, mean=0.0, std=1.0, name="ambiguity"
    )
    raw["receptive_field"], raw["recommended_overlap"] = 1, 8
    return ModelSpec.model_validate(raw)


class AmbiguityBackend:
    """Pointwise: ``p0 = 0.95 - 0.45 * a`` where ``a`` is the (clipped) input."""

    def __init__(self, spec: ModelSpec | None = None) -> None:
        self._spec = spec or ambiguity_spec()

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def predict(self, batch: Batch) -> list[Prediction]:
        a = np.clip(batch.data[:, 0], 0.0, 1.0)
        p0 = 0.95 - 0.45 * a
        probs = np.stack([p0, 1.0 - p0], axis=1).astype(np.float32)
        return to_predictions(probs, batch, self._spec)

    def close(self) -> None:
        pass

    def __enter__(self) -> AmbiguityBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def half_scene(
    path: Path,
    *,
    shape: tuple[int, int] = (96, 160),
    uncertain: str = "right",
    crs: str = "EPSG:32633",
    x0: float = 500000.0,
    nodata_box: tuple[slice, slice] | None = None,
) -> Path:
    """A scene whose ``uncertain`` half (``left``/``right``/``all``/``none``) has ``a = 1``."""
    a = np.zeros(shape, dtype=np.float32)
    half = shape[1] // 2
    if uncertain == "right":
        a[:, half:] = 1.0
    elif uncertain == "left":
        a[:, :half] = 1.0
    elif uncertain == "all":
        a[:] = 1.0
    if nodata_box is not None:
        a[nodata_box] = -9.0
    return make_scene(
        path,
        data=a[None],
        bands=1,
        nodata=-9.0,
        crs=crs,
        transform=Affine(10.0, 0, x0, 0, -10.0, 4000000.0),
    )


def run_ambiguity(scenes: list[Path], out: Path, **config: Any) -> RunResult:
    """Predict ``scenes`` with :class:`AmbiguityBackend`."""
    config.setdefault("vectors", False)
    cfg = RunConfig(
        scenes=tuple(str(s) for s in scenes),
        model="ambiguity.yaml",
        out=str(out),
        **config,
    )
    res = run_predict(cfg, model=AmbiguityBackend())
    assert res.ok, [s.error for s in res.scenes]
    return res


def half_run(folder: Path) -> Path:
    """A finished run over a 128 x 192 :func:`half_scene` (right half a coin toss)."""
    scene = half_scene(folder / "half.tif", shape=(128, 192))
    run_ambiguity([scene], folder / "run")
    return folder / "run"
