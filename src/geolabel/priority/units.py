"""Query units: what a labeller is asked to label, and per-unit pooled statistics.

A unit map assigns every pixel of a scene (or a window of it) to at most one
candidate query (``-1``: none):

* ``regions``: square windows of ``size`` pixels on the scene grid (the labeller draws
  the class polygons inside);
* ``superpixels``: SLIC segments of the image (scikit-image), one homogeneous patch
  that the labeller gives one class;
* ``points``: single pixels (PixelPick's sparse points), one click each.

:func:`pool_units` then reduces per-pixel maps (uncertainty, predicted class, model
features) to one score, dominant class, centre and embedding per unit with
``numpy.bincount``, so every strategy of :mod:`geolabel.priority.strategy` works on
every unit the same way.

.. versionadded:: 0.2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.ndimage import uniform_filter

from geolabel.errors import ConfigError, MissingDependencyError

__all__ = [
    "AUTO_UNIT_MAX_POINT_M",
    "UNITS",
    "Unit",
    "auto_unit",
    "UnitMap",
    "UnitStats",
    "context_mean",
    "point_units",
    "pool_units",
    "square_units",
    "superpixel_units",
    "unit_map",
]

Unit = Literal["regions", "superpixels", "points"]
UNITS: tuple[Unit, ...] = ("regions", "superpixels", "points")

#: ``auto`` asks for single clicks (points) on pixels at least this many metres wide,
#: and for superpixels on finer ones (see :func:`auto_unit`).
AUTO_UNIT_MAX_POINT_M = 5.0


def auto_unit(resolution_m: float | None) -> Unit:
    """The unit of ``--unit auto`` for pixels of ``resolution_m`` metres.

    On Landsat-like pixels (tens of metres) a pixel is a unit of land cover and single
    clicks at uncertain pixels pay off (docs/simulation.md: nc- and cloud-landsat7).
    On sub-metre pixels an object spans hundreds of pixels and its uncertain pixels sit
    on its outline, where the reference and the image disagree by a pixel or two;
    there clicks taught the model nothing and one class per homogeneous patch did
    (spacenet-atlanta at 0.5 m: auto picks beat random picks among superpixels, and
    lost to them among points). Unknown resolution (pixel space): points.

    Examples:
        >>> auto_unit(30.0), auto_unit(0.5), auto_unit(None)
        ('points', 'superpixels', 'points')
    """
    if resolution_m is not None and resolution_m < AUTO_UNIT_MAX_POINT_M:
        return "superpixels"
    return "points"


BoolMap = npt.NDArray[np.bool_]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class UnitMap:
    """Pixel -> candidate id (``-1``: not part of any candidate); ``count`` ids."""

    kind: Unit
    ids: npt.NDArray[np.int32]
    count: int

    def members(self, unit: int) -> tuple[npt.NDArray[np.intp], ...]:
        """Pixel indexes ``(rows, cols)`` of one unit."""
        return np.nonzero(self.ids == unit)


@dataclass(frozen=True, slots=True)
class UnitStats:
    """Per-unit reductions of per-pixel maps (arrays of length ``count``).

    Attributes:
        score: mean uncertainty over the unit's valid pixels (``NaN`` if none).
        dominant_class: most frequent predicted class (``-1`` if no valid pixel).
        centre: ``(count, 2)`` mean ``(row, col)`` of the unit's pixels.
        size: pixels of the unit.
        valid: valid pixels of the unit.
        embedding: ``(count, d)`` mean model feature vector, or ``None``.
    """

    score: F32
    dominant_class: npt.NDArray[np.int64]
    centre: npt.NDArray[np.float64]
    size: npt.NDArray[np.int64]
    valid: npt.NDArray[np.int64]
    embedding: npt.NDArray[np.float32] | None


def _relabel(
    ids: npt.NDArray[np.int64], keep: BoolMap
) -> tuple[npt.NDArray[np.int32], int]:
    """Drop the ids not in ``keep`` (-1) and number the rest 0..n-1."""
    new = np.full(keep.size + 1, -1, np.int64)
    new[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    out = np.where(ids >= 0, new[np.where(ids >= 0, ids, keep.size)], -1)
    return out.astype(np.int32), int(keep.sum())


def square_units(
    valid: BoolMap,
    size: int,
    *,
    allowed: BoolMap | None = None,
    min_valid: float = 0.25,
) -> UnitMap:
    """Square windows of ``size`` px from the grid origin, clipped to ``allowed``.

    A window is a candidate when at least ``min_valid`` of its (clipped) pixels are
    valid and the clipped window keeps at least half of a full window's area.
    """
    if size < 1:
        raise ConfigError(f"region size must be >= 1 px, got {size}")
    rows, cols = valid.shape
    per_row = -(-cols // size)
    ids = (np.arange(rows)[:, None] // size) * per_row + np.arange(cols)[
        None, :
    ] // size
    inside = np.ones_like(valid) if allowed is None else allowed
    ids = np.where(inside, ids, -1)
    n = per_row * -(-rows // size)
    area = np.bincount(ids[inside], minlength=n)
    good = np.bincount(ids[inside & valid], minlength=n)
    keep = (area * 2 >= size * size) & (good >= min_valid * np.maximum(area, 1))
    keep &= good > 0
    out, count = _relabel(ids, keep)
    return UnitMap("regions", out, count)


def superpixel_units(
    image: npt.NDArray[np.floating],
    valid: BoolMap,
    size: int,
    *,
    allowed: BoolMap | None = None,
    compactness: float = 0.1,
    seed: int = 0,
) -> UnitMap:
    """SLIC superpixels of about ``size`` x ``size`` px over the valid, allowed pixels.

    Args:
        image: ``(bands, rows, cols)`` normalised image (zero mean, unit variance
            bands work with the default ``compactness``).
        valid: pixels with data.
        size: the side of a superpixel's typical square, in pixels.
        allowed: pixels that may be queried (default: all).
        compactness: SLIC's colour/space trade-off (higher: squarer segments).
        seed: unused by SLIC itself (deterministic); kept for a stable signature.
    """
    del seed
    try:
        from skimage.segmentation import slic
    except ImportError as err:  # pragma: no cover - scikit-image is a core dependency
        raise MissingDependencyError("scikit-image", "core") from err
    mask = valid if allowed is None else valid & allowed
    n_px = int(mask.sum())
    if n_px == 0:
        return UnitMap("superpixels", np.full(valid.shape, -1, np.int32), 0)
    n_segments = max(1, round(n_px / float(size * size)))
    if n_segments == 1:  # SLIC labels a single segment 0, like the masked-out pixels
        return UnitMap("superpixels", np.where(mask, 0, -1).astype(np.int32), 1)
    seg = slic(
        np.moveaxis(np.asarray(image, np.float64), 0, -1),
        n_segments=n_segments,
        compactness=compactness,
        mask=mask,
        channel_axis=-1,
        start_label=1,
        enforce_connectivity=True,
        convert2lab=False,
    )
    ids = seg.astype(np.int64) - 1  # 0 (outside the mask) -> -1
    count = int(ids.max()) + 1
    keep = np.bincount(ids[ids >= 0], minlength=count) > 0
    out, count = _relabel(ids, keep)
    return UnitMap("superpixels", out, count)


def point_units(
    valid: BoolMap, *, allowed: BoolMap | None = None, stride: int = 1
) -> UnitMap:
    """Every valid, allowed pixel (on a ``stride`` grid) is a one-click candidate."""
    mask = valid if allowed is None else valid & allowed
    if stride > 1:
        grid = np.zeros_like(mask)
        grid[::stride, ::stride] = True
        mask = mask & grid
    ids = np.full(mask.shape, -1, np.int32)
    count = int(mask.sum())
    ids[mask] = np.arange(count, dtype=np.int32)
    return UnitMap("points", ids, count)


def unit_map(
    kind: str,
    image: npt.NDArray[np.floating],
    valid: BoolMap,
    *,
    allowed: BoolMap | None = None,
    region_size: int = 32,
    superpixel_size: int = 12,
    min_valid: float = 0.25,
    point_stride: int = 1,
) -> UnitMap:
    """The unit map of ``kind`` (``regions``, ``superpixels`` or ``points``).

    Raises:
        ConfigError: unknown unit.
    """
    if kind == "regions":
        return square_units(valid, region_size, allowed=allowed, min_valid=min_valid)
    if kind == "superpixels":
        return superpixel_units(image, valid, superpixel_size, allowed=allowed)
    if kind == "points":
        return point_units(valid, allowed=allowed, stride=point_stride)
    raise ConfigError(f"unknown unit {kind!r}; choose one of {', '.join(UNITS)}")


#: half-width of the neighbourhood ``+context`` averages a point's score over (5 x 5)
CONTEXT_RADIUS = 2


def context_mean(
    score: npt.NDArray[np.floating],
    valid: BoolMap,
    radius: int = CONTEXT_RADIUS,
) -> F32:
    """Mean of ``score`` over each pixel's valid ``(2r+1)^2`` neighbourhood.

    A point query then scores the confusion *around* it: a pixel inside a blob of
    uncertainty (a misread field, a missed building) outranks a one-pixel-wide class
    edge, whose mixed pixels the reference itself labels ambiguously.
    """
    if radius < 1:
        return np.asarray(score, np.float32)
    v = valid.astype(np.float64)
    x = np.where(valid, np.nan_to_num(score.astype(np.float64)), 0.0)
    size = 2 * radius + 1
    num = uniform_filter(x, size, mode="constant")
    den = uniform_filter(v, size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(valid & (den > 0), num / np.maximum(den, 1e-12), np.nan)
    return out.astype(np.float32)


def pool_units(
    units: UnitMap,
    valid: BoolMap,
    uncertainty: npt.NDArray[np.floating],
    predicted: npt.NDArray[np.integer],
    num_classes: int,
    features: npt.NDArray[np.floating] | None = None,
) -> UnitStats:
    """Per-unit mean uncertainty, dominant class, centre and mean feature vector.

    Args:
        units: the unit map.
        valid: pixels with data (only they count for scores, classes and features).
        uncertainty: ``(rows, cols)`` per-pixel score (higher: label sooner).
        predicted: ``(rows, cols)`` predicted class index.
        num_classes: number of classes.
        features: ``(d, rows, cols)`` model features, or ``None``.
    """
    n = units.count
    inside = units.ids >= 0
    ids_all = units.ids[inside].astype(np.int64)
    size = np.bincount(ids_all, minlength=n)
    rr, cc = np.nonzero(inside)
    centre = (
        np.stack(
            [
                np.bincount(ids_all, weights=rr, minlength=n),
                np.bincount(ids_all, weights=cc, minlength=n),
            ],
            axis=1,
        )
        / np.maximum(size, 1)[:, None]
    )
    m = inside & valid
    ids = units.ids[m].astype(np.int64)
    nv = np.bincount(ids, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (
            np.bincount(ids, weights=uncertainty[m].astype(np.float64), minlength=n)
            / nv
        ).astype(np.float32)
    pred = np.clip(predicted[m].astype(np.int64), 0, num_classes - 1)
    votes = np.bincount(ids * num_classes + pred, minlength=n * num_classes)
    dominant = votes.reshape(n, num_classes).argmax(1)
    dominant[nv == 0] = -1
    emb: F32 | None = None
    if features is not None:
        f = features[:, m]
        sums = np.stack(
            [
                np.bincount(ids, weights=f[k].astype(np.float64), minlength=n)
                for k in range(f.shape[0])
            ],
            axis=1,
        )
        emb = (sums / np.maximum(nv, 1)[:, None]).astype(np.float32)
    return UnitStats(score, dominant, centre, size, nv, emb)
