"""Affine transforms applied to coordinate arrays (chips: pixel <-> map)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from affine import Affine

__all__ = ["apply_affine"]


def apply_affine(
    t: Affine, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``t @ (x, y)`` for coordinate arrays."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f
