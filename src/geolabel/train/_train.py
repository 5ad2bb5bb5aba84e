"""``geolabel train``: fine-tune (or train) a spec's model on labels, write a new spec.

The labelled pixels' bounding box (plus half the receptive field of context) is read
from the scene, normalised as the spec says, and :func:`geolabel.train.fit` trains the
module on it. The result is a new safetensors state dict next to a new model spec
YAML (same classes, bands and normalisation, version bumped, training metrics
recorded) that ``geolabel predict`` loads. Both files are written to temporary names
and renamed into place, weights first.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from geolabel.errors import ConfigError, ModelSpecError, OutputExistsError
from geolabel.evaluation import confusion_matrix, segmentation_scores
from geolabel.grid import Window
from geolabel.io.disk import prepare_output
from geolabel.io.scene import Scene
from geolabel.labels import IGNORE_INDEX
from geolabel.models.base import normalize
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.models.torch_ import load_torch_module
from geolabel.train._fit import (
    FitConfig,
    FitProgress,
    FitResult,
    fit,
    predict_probabilities,
    seeded,
)

__all__ = [
    "TrainResult",
    "bump_version",
    "build_module",
    "read_training_window",
    "train_model",
    "write_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Outcome of :func:`train_model`: the new spec and weights, and the fit record."""

    spec_path: Path
    weights_path: Path
    model_id: str
    fit: FitResult
    metrics: dict[str, Any]


def bump_version(version: str) -> str:
    """Next version: the last number goes up (``"1.0"`` -> ``"1.1"``, ``"v2"`` -> ``"v3"``).

    A version without a trailing number gets ``".1"`` appended.
    """
    m = re.search(r"(\d+)$", version)
    if m is None:
        return f"{version}.1"
    return f"{version[: m.start()]}{int(m.group(1)) + 1}"


def build_module(spec: ModelSpec, *, from_scratch: bool, seed: int) -> Any:
    """The spec's torch module: its weights loaded, or freshly initialised (seeded).

    Raises:
        ModelSpecError: the spec is not a ``state_dict`` model with an architecture
            (only those can be trained and saved as safetensors).
    """
    if (
        spec.backend != "torch"
        or spec.format != "state_dict"
        or spec.architecture is None
    ):
        raise ModelSpecError(
            f"model {spec.model_id}: only torch state_dict models with an architecture "
            f"can be trained (backend {spec.backend!r}, format {spec.format!r})"
        )
    from geolabel.models.arch import build_architecture

    if not from_scratch:
        return load_torch_module(spec, "cpu")
    with seeded(seed):
        return build_architecture(
            spec.architecture.name, dict(spec.architecture.params)
        )


def read_training_window(
    scene: Scene, target: npt.NDArray[np.uint8], spec: ModelSpec, *, margin: int
) -> tuple[Window, npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Normalised image and labels over the labelled bounding box plus ``margin`` px.

    Labels on nodata pixels are dropped (set to the ignore index).

    Raises:
        ConfigError: no labelled pixel.
    """
    rows, cols = np.nonzero(target != IGNORE_INDEX)
    if rows.size == 0:
        raise ConfigError(f"{scene.path}: no labelled pixels fall on the scene")
    h, w = target.shape
    r0, r1 = max(0, int(rows.min()) - margin), min(h, int(rows.max()) + 1 + margin)
    c0, c1 = max(0, int(cols.min()) - margin), min(w, int(cols.max()) + 1 + margin)
    win = Window(r0, c0, r1 - r0, c1 - c0)
    read = scene.read(win)
    image = normalize(read.data, read.valid, spec)
    sub = np.where(read.valid, target[r0:r1, c0:c1], IGNORE_INDEX).astype(np.uint8)
    return win, image, sub


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _outputs(out: Path, overwrite: bool) -> tuple[Path, Path]:
    """Spec and weights paths of ``out``; refuses existing files unless ``overwrite``."""
    spec_path = out if out.suffix in (".yaml", ".yml") else out.with_suffix(".yaml")
    weights = spec_path.with_suffix(".safetensors")
    for p in (spec_path, weights):
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p}: exists; pass --overwrite to replace it")
    return spec_path, weights


def write_model(
    module: Any,
    base: ModelSpec,
    out: Path,
    *,
    version: str,
    name: str | None,
    metrics: dict[str, Any],
    description: str,
    overwrite: bool,
) -> tuple[Path, Path]:
    """Write ``OUT.safetensors`` and the spec ``OUT`` (``.yaml``); returns both paths.

    Raises:
        OutputExistsError: a file exists and ``overwrite`` is false.
    """
    import torch
    from safetensors.torch import save_file

    spec_path, weights = _outputs(out, overwrite)
    prepare_output(spec_path)
    state = {
        k: v.detach().to(torch.float32).contiguous().cpu()
        for k, v in module.state_dict().items()
    }
    assert base.architecture is not None
    _atomic_write(
        weights,
        lambda p: save_file(
            state, str(p), metadata={"architecture": base.architecture.name}
        ),
    )
    raw = base.model_dump(mode="json", exclude_none=True)
    raw.update(
        name=name or base.name,
        version=version,
        weights=weights.name,
        description=description,
        metrics=metrics,
    )
    ModelSpec.model_validate({**raw, "source": str(spec_path.resolve())})  # fails early
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    _atomic_write(spec_path, lambda p: p.write_text(text, encoding="utf-8"))
    load_spec(spec_path)  # the written spec must load back
    return spec_path, weights


def _train_scores(
    module: Any,
    image: npt.NDArray[np.float32],
    target: npt.NDArray[np.uint8],
    spec: ModelSpec,
) -> dict[str, float]:
    """Pixel accuracy and mIoU on the labelled training pixels."""
    depth = (
        int(dict(spec.architecture.params).get("depth", 3)) if spec.architecture else 3
    )
    pred = predict_probabilities(module, image, multiple=2**depth).argmax(0)
    cm = confusion_matrix(pred, target, spec.num_classes)
    s = segmentation_scores(cm, spec.class_names)
    return {
        "train_overall_accuracy": round(s["overall_accuracy"], 4),
        "train_miou": round(s["miou"], 4),
    }


def train_model(
    scene: Scene,
    target: npt.NDArray[np.uint8],
    spec: ModelSpec,
    out: Path,
    config: FitConfig,
    *,
    from_scratch: bool = False,
    name: str | None = None,
    version: str | None = None,
    overwrite: bool = False,
    progress: FitProgress | None = None,
) -> TrainResult:
    """Fine-tune ``spec``'s model (or train it from scratch) on ``target`` labels.

    Args:
        scene: the scene the labels were rasterised onto (bands chosen already).
        target: ``(rows, cols)`` uint8 labels on the scene grid (255 = unlabelled).
        spec: the base model spec (architecture, normalisation, classes).
        out: path of the new spec YAML (weights go next to it, ``.safetensors``).
        config: training settings.
        from_scratch: start from fresh weights instead of the spec's.
        name: model name of the new spec (default: the base name).
        version: its version (default: the base version bumped).
        overwrite: replace existing output files.
        progress: per-step callback ``(step, steps, loss)``.

    Returns:
        Paths of the new spec and weights, the fit record and the metrics written.

    Raises:
        ConfigError: labels off the scene grid, or none.
        ModelSpecError: the spec cannot be trained.
        OutputExistsError: outputs exist and ``overwrite`` is false.

    .. versionadded:: 0.1
    """
    if target.shape != scene.grid.shape:
        raise ConfigError(
            f"labels shape {target.shape} is not the scene's {scene.grid.shape}"
        )
    _outputs(out, overwrite)  # fail before training, not after
    module = build_module(spec, from_scratch=from_scratch, seed=config.seed)
    margin = (spec.receptive_field or 0) // 2
    window, image, sub = read_training_window(scene, target, spec, margin=margin)
    result = fit(module, image, sub, config, progress=progress)
    metrics: dict[str, Any] = {
        "base_model": spec.model_id,
        "from_scratch": from_scratch,
        "labelled_pixels": result.labelled_pixels,
        "final_loss": round(result.final_loss, 4),
        "train_seconds": result.seconds,
        **_train_scores(module, image, sub, spec),
        "training": {k: v for k, v in asdict(config).items() if k != "threads"},
        "window": [window.row_off, window.col_off, window.height, window.width],
    }
    new_version = version or bump_version(spec.version)
    desc = (
        f"{spec.name}@{spec.version} {'trained from scratch' if from_scratch else 'fine-tuned'}"
        f" on {result.labelled_pixels} labelled pixels of {scene.path.name}"
    )
    spec_path, weights = write_model(
        module,
        spec,
        out,
        version=new_version,
        name=name,
        metrics=metrics,
        description=desc,
        overwrite=overwrite,
    )
    model_id = f"{name or spec.name}@{new_version}"
    logger.info("wrote %s (%s)", spec_path, model_id)
    return TrainResult(spec_path, weights, model_id, result, metrics)
