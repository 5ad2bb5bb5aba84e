"""Training: fit a segmentation model on labelled pixels, write weights and a spec.

Plain torch (torchgeo cannot be installed beside the pinned torch); the chip sampler
mirrors torchgeo's random geo sampler over labelled areas.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.train._fit import FitConfig, FitResult, fit, predict_probabilities, seeded
from geolabel.train._train import (
    TrainResult,
    build_module,
    bump_version,
    read_training_window,
    train_model,
    write_model,
)

__all__ = [
    "FitConfig",
    "FitResult",
    "TrainResult",
    "build_module",
    "bump_version",
    "fit",
    "predict_probabilities",
    "read_training_window",
    "seeded",
    "train_model",
    "write_model",
]
