"""Per-tile aggregates of a per-pixel uncertainty map.

Only valid pixels count: nodata never adds uncertainty, and a tile without valid
pixels gets ``NaN`` aggregates (and ``valid_fraction`` 0).

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["AggregateOptions", "aggregate_tile", "class_columns"]


@dataclass(frozen=True, slots=True)
class AggregateOptions:
    """How tiles are summarised.

    Attributes:
        quantile: the high quantile reported as ``q{100*quantile}`` (``0.9`` -> ``q90``).
        threshold: pixels with uncertainty above it count towards ``frac_above``.
    """

    quantile: float = 0.9
    threshold: float = 0.5

    def __post_init__(self) -> None:
        """Check the ranges."""
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")

    @property
    def quantile_key(self) -> str:
        """Column name of the high quantile, e.g. ``q90``."""
        return f"q{round(100 * self.quantile):d}"


def class_columns(class_names: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(mean-uncertainty column, fraction column)`` per class, unique and SQL-safe."""
    out = []
    for i, name in enumerate(class_names):
        slug = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "class"
        out.append((f"unc_{i}_{slug}", f"frac_{i}_{slug}"))
    return out


def _stats(values: npt.NDArray[np.float32], options: AggregateOptions) -> dict[str, float]:
    if values.size == 0:
        return {"mean": float("nan"), options.quantile_key: float("nan"), "frac_above": float("nan")}
    v = values.astype(np.float64)
    return {
        "mean": float(v.mean()),
        options.quantile_key: float(np.quantile(v, options.quantile)),
        "frac_above": float((v > options.threshold).mean()),
    }


def aggregate_tile(
    bands: dict[str, npt.NDArray[np.float32]],
    valid: npt.NDArray[np.bool_],
    classes: npt.NDArray[np.integer],
    class_names: tuple[str, ...],
    options: AggregateOptions | None = None,
) -> dict[str, float]:
    """Summarise the uncertainty bands of one tile core.

    Args:
        bands: measure name -> ``(rows, cols)`` uncertainty; the first is the primary
            measure (``mean``, ``qNN``, ``frac_above`` and the per-class columns),
            later ones get ``NAME_mean``, ``NAME_qNN``, ``NAME_frac_above``.
        valid: ``(rows, cols)`` valid-data mask.
        classes: ``(rows, cols)`` predicted class (argmax) per pixel.
        class_names: class names by index.
        options: quantile and threshold.

    Returns:
        A flat record: ``valid_fraction``, the statistics above and, per class, the mean
        uncertainty of its pixels (``NaN`` where it has none) and its pixel fraction
        among the valid pixels.
    """
    opt = options or AggregateOptions()
    n_valid = int(valid.sum())
    rec: dict[str, float] = {"valid_fraction": n_valid / valid.size if valid.size else 0.0}
    for i, (name, band) in enumerate(bands.items()):
        stats = _stats(band[valid], opt)
        if i == 0:
            rec.update(stats)
        else:
            rec.update({f"{name}_{k}": v for k, v in stats.items()})
    if not bands:
        return rec
    primary = next(iter(bands.values()))[valid].astype(np.float64)
    cls = classes[valid]
    counts = np.bincount(cls, minlength=len(class_names)) if cls.size else np.zeros(len(class_names))
    sums = (np.bincount(cls, weights=primary, minlength=len(class_names))
            if cls.size else np.zeros(len(class_names)))
    for i, (unc_col, frac_col) in enumerate(class_columns(class_names)):
        rec[unc_col] = float(sums[i] / counts[i]) if counts[i] else float("nan")
        rec[frac_col] = float(counts[i] / n_valid) if n_valid else 0.0
    return rec
