"""Catch input scaling that does not fit the model before a run spends hours on it.

Reflectance in [0, 1] fed to a spec that expects DN x 10^4 (``input.scale: 0.0001``)
normalises to a nearly constant image, and the model answers one class everywhere;
DN fed to a spec that expects reflectance normalises to values in the thousands.
:func:`scaling_problem` looks at one normalised tile and says which it is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from geolabel.models.base import normalize
from geolabel.models.spec import ModelSpec

__all__ = ["scaling_problem"]

#: Below this standard deviation in every band the normalised input is constant.
MIN_STD = 1e-3
#: Normalised values are z-scores: a band mean beyond this is far off the training data.
MAX_ABS_MEAN = 50.0
#: Fewer valid pixels than this say nothing.
MIN_PIXELS = 64


def scaling_problem(
    data: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_], spec: ModelSpec
) -> str | None:
    """What is wrong with the scaling of one tile, or ``None``.

    Args:
        data: raw pixels ``(bands, rows, cols)`` as read from the scene.
        valid: ``(rows, cols)`` valid-data mask.
        spec: the model spec whose ``input`` normalisation is checked.
    """
    if int(valid.sum()) < MIN_PIXELS:
        return None
    x = normalize(data, valid, spec)[:, valid].astype(np.float64)
    raw = data[:, valid]
    std, mean = x.std(axis=1), x.mean(axis=1)
    span = f"raw values {float(raw.min()):.4g}..{float(raw.max()):.4g}"
    if bool((std < MIN_STD).all()):
        return (
            f"the normalised input is nearly constant (std {float(std.max()):.2g} in "
            f"every band; {span}, input.scale {spec.input.scale:g}): the model will "
            "see no contrast; check input.scale/offset/mean/std against the data"
        )
    worst = int(np.abs(mean).argmax())
    if abs(mean[worst]) > MAX_ABS_MEAN:
        return (
            f"the normalised input of band {worst + 1} averages {mean[worst]:.3g} "
            f"standard deviations from the model's mean ({span}, input.scale "
            f"{spec.input.scale:g}): check input.scale/offset/mean/std against the data"
        )
    return None
