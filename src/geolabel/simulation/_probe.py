"""One look of the current model at the whole (small) simulation scene: probabilities,
the feature map its classifier reads, and the per-pixel uncertainty a strategy needs.

The features are the input of the last ``Conv2d`` (the 1x1 head of ``geolabel.unet``),
captured with a forward pre-hook; they are the embedding of the core-set step.
``bald`` runs ``mc_passes`` forward passes with only the dropout layers in train mode;
``ensemble`` measures the disagreement of a committee of the current model and the
models after the previous rounds (snapshots), both as mutual information.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.errors import ConfigError
from geolabel.train import seeded
from geolabel.uncertainty.measures import compute_measure, mutual_information

__all__ = ["Look", "look"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Look:
    """Probabilities ``(C, H, W)``, features ``(d, H, W)`` and uncertainty ``(H, W)``."""

    probs: F32
    features: F32
    uncertainty: F32


def _head(module: Any) -> Any:
    import torch

    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ConfigError("the model has no Conv2d layer to read features from")
    return convs[-1]


def _forward(module: Any, x: Any, h: int, w: int) -> tuple[F32, F32]:
    import torch

    grabbed: list[Any] = []
    hook = _head(module).register_forward_pre_hook(
        lambda _m, args: grabbed.append(args[0].detach())
    )
    try:
        with torch.inference_mode():
            logits = module(x)[0, :, :h, :w]
            probs = torch.softmax(logits.float(), dim=0).numpy()
    finally:
        hook.remove()
    feats = grabbed[-1][0, :, :h, :w].float().numpy()
    return np.ascontiguousarray(probs, np.float32), np.ascontiguousarray(
        feats, np.float32
    )


def look(
    module: Any,
    image: F32,
    *,
    measure: str | None,
    multiple: int,
    mc_passes: int = 8,
    committee: list[F32] | None = None,
    seed: int = 0,
) -> Look:
    """Probabilities, features and the ``measure`` map of ``module`` on ``image``.

    ``committee``: probabilities of earlier snapshots (``ensemble``).
    """
    import torch

    h, w = image.shape[1:]
    ph, pw = -h % multiple, -w % multiple
    x = torch.from_numpy(
        np.ascontiguousarray(np.pad(image, ((0, 0), (0, ph), (0, pw))))
    )[None]
    module.eval()
    probs, feats = _forward(module, x, h, w)
    if measure is None:
        unc = np.zeros((h, w), np.float32)
    elif measure == "bald":
        drop = [
            m
            for m in module.modules()
            if isinstance(m, torch.nn.modules.dropout._DropoutNd)
        ]
        if not drop:
            raise ConfigError("strategy bald needs a model with dropout layers")
        with seeded(seed):
            for m in drop:
                m.train()
            try:
                samples = [_forward(module, x, h, w)[0] for _ in range(mc_passes)]
            finally:
                module.eval()
        unc = mutual_information(np.stack(samples))
    elif measure == "ensemble":
        members = [probs, *(committee or [])]
        unc = (
            mutual_information(np.stack(members))
            if len(members) > 1
            else compute_measure("entropy", probs)
        )
    else:
        unc = compute_measure(measure, probs)
    return Look(probs, feats, unc)
