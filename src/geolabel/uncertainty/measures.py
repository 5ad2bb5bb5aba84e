"""Per-pixel uncertainty measures of class probabilities, all scaled to ``[0, 1]``.

Every function takes probabilities with the class axis first, ``(C, rows, cols)`` (or
``(C, ...)``), and returns ``(rows, cols)`` float32 where 0 means certain and 1 means
as uncertain as the measure allows:

* ``entropy``: Shannon entropy divided by ``log C`` (1 for a uniform prediction);
* ``margin``: ``1 - (p_best - p_second)`` (1 when the two best classes tie);
* ``least-confidence``: ``(1 - p_best) * C / (C - 1)`` (1 for a uniform prediction);
* ``mutual_information`` (BALD): entropy of the mean of ``T`` samples minus the mean of
  their entropies, divided by ``log C``: how much the samples (dropout passes,
  augmentations, ensemble members) disagree.

.. versionadded:: 0.1
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from geolabel.errors import ConfigError

__all__ = [
    "MEASURES",
    "MODEL_MEASURES",
    "compute_measure",
    "entropy",
    "least_confidence",
    "margin",
    "mutual_information",
]

F32 = npt.NDArray[np.float32]

#: Measures computed from stitched probabilities, with their definitions.
MEASURES: dict[str, str] = {
    "entropy": "-sum(p*log p)/log(C)",
    "margin": "1-(p_best-p_second)",
    "least-confidence": "(1-p_best)*C/(C-1)",
}

#: Measures a backend wrapper delivers as an extra stitched channel.
MODEL_MEASURES: dict[str, str] = {
    "bald": "mutual information of MC-dropout passes, /log(C)",
    "tta_disagreement": "mutual information of test-time augmentations, /log(C)",
    "ensemble_disagreement": "mutual information of ensemble members, /log(C)",
}


def _plogp_sum(p: npt.NDArray[np.floating], axis: int) -> F32:
    """``-sum(p log p)`` along ``axis`` in float32 (``0 log 0 = 0``).

    ``p`` is clipped to ``[1e-30, 1]``, so a zero probability adds ``-6.9e-29`` instead
    of ``0 log 0``: far below float32's resolution of the sum. float32 keeps ~1e-7
    relative error on values in ``[0, log C]``, at a sixth of float64's cost.
    Along the first axis the sum is taken one plane at a time in two plane-sized
    buffers (the same additions in the same order as ``sum(axis=0)``, without
    class-sized temporaries).
    """
    if axis != 0:
        q = np.clip(p, np.float32(1e-30), np.float32(1.0), dtype=np.float32)
        logq = np.log(q)
        logq *= q
        out: F32 = -logq.sum(axis=axis, dtype=np.float32)
        return out
    total = np.zeros(p.shape[1:], dtype=np.float32)
    q = np.empty(p.shape[1:], dtype=np.float32)
    logq = np.empty(p.shape[1:], dtype=np.float32)
    for plane in p:
        np.clip(plane, np.float32(1e-30), np.float32(1.0), out=q, dtype=np.float32)
        np.log(q, out=logq)
        logq *= q
        total += logq
    np.negative(total, out=total)
    return total


def entropy(probs: npt.NDArray[np.floating]) -> F32:
    """Normalised entropy ``-sum(p log p) / log C`` of ``(C, ...)`` probabilities."""
    c = probs.shape[0]
    if c < 2:
        return np.zeros(probs.shape[1:], dtype=np.float32)
    h = _plogp_sum(probs, axis=0)
    h *= np.float32(1.0 / np.log(c))
    out: F32 = np.clip(h, 0.0, 1.0, out=h)
    return out


def margin(probs: npt.NDArray[np.floating]) -> F32:
    """``1 - (p_best - p_second)`` of ``(C, ...)`` probabilities."""
    c = probs.shape[0]
    if c < 2:
        return np.zeros(probs.shape[1:], dtype=np.float32)
    top2 = np.partition(probs.astype(np.float32), c - 2, axis=0)[c - 2 :]
    out: F32 = np.clip(1.0 - (top2[1] - top2[0]), 0.0, 1.0).astype(np.float32)
    return out


def least_confidence(probs: npt.NDArray[np.floating]) -> F32:
    """``(1 - p_best) * C / (C - 1)`` of ``(C, ...)`` probabilities."""
    c = probs.shape[0]
    if c < 2:
        return np.zeros(probs.shape[1:], dtype=np.float32)
    lc = (1.0 - probs.max(axis=0).astype(np.float64)) * c / (c - 1)
    out: F32 = np.clip(lc, 0.0, 1.0).astype(np.float32)
    return out


def mutual_information(samples: npt.NDArray[np.floating]) -> F32:
    """BALD: ``H(mean_t p_t) - mean_t H(p_t)`` over ``(T, C, ...)`` samples, ``/ log C``."""
    if samples.ndim < 2:
        raise ValueError(f"samples must be (T, C, ...), got shape {samples.shape}")
    c = samples.shape[1]
    if c < 2:
        return np.zeros(samples.shape[2:], dtype=np.float32)
    total = _plogp_sum(samples.mean(axis=0), axis=0)
    expected = _plogp_sum(samples, axis=1).mean(axis=0)
    out: F32 = np.clip((total - expected) / np.log(c), 0.0, 1.0).astype(np.float32)
    return out


_FUNCS = {"entropy": entropy, "margin": margin, "least-confidence": least_confidence}


def compute_measure(name: str, probs: npt.NDArray[np.floating]) -> F32:
    """The measure ``name`` (a key of :data:`MEASURES`) of ``(C, ...)`` probabilities.

    Raises:
        ConfigError: unknown measure name.
    """
    try:
        func = _FUNCS[name]
    except KeyError:
        raise ConfigError(
            f"unknown uncertainty measure {name!r}; choose one of {', '.join(MEASURES)} or none"
        ) from None
    return func(probs)
