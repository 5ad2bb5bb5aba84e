"""Per-tile aggregates of a per-pixel uncertainty map.

Only valid pixels count: nodata never adds uncertainty, and a tile without valid
pixels gets ``NaN`` aggregates (and ``valid_fraction`` 0).

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AggregateOptions", "aggregate_boxes", "aggregate_tile", "class_columns"]


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


def _stats(
    values: npt.NDArray[np.floating[Any]], options: AggregateOptions
) -> dict[str, float]:
    if values.size == 0:
        return {
            "mean": float("nan"),
            options.quantile_key: float("nan"),
            "frac_above": float("nan"),
        }
    v = values.astype(np.float64, copy=False)
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
    everywhere = bool(valid.all())
    n_valid = valid.size if everywhere else int(valid.sum())
    rec: dict[str, float] = {
        "valid_fraction": n_valid / valid.size if valid.size else 0.0
    }

    def pick(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        # the valid pixels in row-major order (no boolean gather when all are valid)
        return a.ravel() if everywhere else a[valid]

    primary: npt.NDArray[np.float64] | None = None
    for i, (name, band) in enumerate(bands.items()):
        values = pick(band).astype(np.float64)
        stats = _stats(values, opt)
        if i == 0:
            rec.update(stats)
            primary = values
        else:
            rec.update({f"{name}_{k}": v for k, v in stats.items()})
    if primary is None:
        return rec
    cls = pick(classes)
    counts = (
        np.bincount(cls, minlength=len(class_names))
        if cls.size
        else np.zeros(len(class_names))
    )
    sums = (
        np.bincount(cls, weights=primary, minlength=len(class_names))
        if cls.size
        else np.zeros(len(class_names))
    )
    for i, (unc_col, frac_col) in enumerate(class_columns(class_names)):
        rec[unc_col] = float(sums[i] / counts[i]) if counts[i] else float("nan")
        rec[frac_col] = float(counts[i] / n_valid) if n_valid else 0.0
    return rec


def aggregate_boxes(
    scores: npt.NDArray[np.floating], *, band: tuple[float, float] = (0.3, 0.7)
) -> dict[str, float]:
    """Per-tile score of a detection model from its box scores.

    A box whose score sits inside ``band`` is ambiguous: the model can neither keep nor
    drop it with confidence. The per-box uncertainty is ``1 - |2 s - 1|`` (1 at 0.5).

    Args:
        scores: ``(n,)`` box scores in [0, 1] of one tile.
        band: ``(low, high)`` ambiguous score band.

    Returns:
        ``boxes``, ``ambiguous`` (count in the band), ``frac_ambiguous`` and
        ``mean_box_uncertainty`` (``NaN`` without boxes).

    Raises:
        ValueError: a band outside [0, 1] or with ``low > high``.
    """
    low, high = band
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got {band!r}")
    s = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    n = int(s.size)
    amb = int(((s >= low) & (s <= high)).sum())
    return {
        "boxes": n,
        "ambiguous": amb,
        "frac_ambiguous": amb / n if n else 0.0,
        "mean_box_uncertainty": float((1.0 - np.abs(2.0 * s - 1.0)).mean())
        if n
        else float("nan"),
    }
