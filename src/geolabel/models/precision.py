"""``--precision auto``: use the fast execution mode only where it agrees with fp32.

The candidate fast mode depends on the hardware: fp16 autocast on CUDA, bf16 autocast
(with channels-last) on CPUs that compute bf16 natively (AVX512-BF16 or AMX). Before
the run, the candidate and fp32 both run on one tile of the run's first scene (the central
tile that is at least half valid, centre-cropped to the model's tile size);
the candidate is adopted only if their per-pixel argmax agrees on at least
:data:`MIN_AGREEMENT` of the valid pixels. The decision is a pure function of the
model, the data and the hardware, and it is kept in ``OUT/precision.json``, so a
resumed run (which starts on another batch) keeps the mode the first run chose and the
outputs stay byte-identical. Backends other than torch always run as they are (fp32).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.models.base import Batch
from geolabel.models.spec import ModelSpec
from geolabel.models.torch_ import TorchBackend

__all__ = [
    "MIN_AGREEMENT",
    "argmax_agreement",
    "candidate_precision",
    "check_precision",
    "check_sample",
    "precision_record",
]

#: Least argmax agreement with fp32 (fraction of valid pixels) for a fast mode.
MIN_AGREEMENT = 0.999

#: The check's record in the run folder (written by
#: :func:`geolabel.execution.model_load.resolve_precision`).
RECORD = "precision.json"


def candidate_precision(spec: ModelSpec, device: str) -> str | None:
    """The fast mode worth checking for ``spec`` on ``device`` (``None``: none)."""
    if spec.backend != "torch" or spec.task != "segmentation":
        return None
    import torch

    if device.startswith("cuda"):
        return "fp16"
    if (
        torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    ):
        return "bf16"
    return None


def argmax_agreement(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_]
) -> float:
    """Fraction of valid pixels where ``(n, C, h, w)`` outputs ``a`` and ``b`` agree."""
    same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
    n = int(valid.sum())
    return float(same[valid].sum() / n) if n else 1.0


def check_precision(
    spec: ModelSpec,
    batch: Batch,
    *,
    device: str,
    candidate: str,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run ``candidate`` and fp32 on ``batch``; the check's record (see module doc)."""
    ref = TorchBackend(
        spec, device=device, precision="fp32", channels_last=False, threads=threads
    )
    fast = TorchBackend(
        spec,
        device=device,
        precision=candidate,  # type: ignore[arg-type]
        channels_last=True,
        threads=threads,
    )
    try:
        agreement = argmax_agreement(
            fast.forward(batch.data), ref.forward(batch.data), batch.valid
        )
    finally:
        ref.close()
        fast.close()
    chosen = candidate if agreement >= MIN_AGREEMENT else "fp32"
    return {
        "requested": "auto",
        "precision": chosen,
        "candidate": candidate,
        "agreement": round(agreement, 6),
        "min_agreement": MIN_AGREEMENT,
        "device": device,
        "tiles": len(batch.tiles),
        "pixels": int(batch.valid.sum()),
    }


def check_sample(batch: Batch, size: int) -> Batch:
    """What the check runs on: the batch's first tile, centre-cropped to ``size``².

    ``size`` is the model's own tile size (a size it runs at). One model tile of real
    pixels is plenty to measure argmax agreement (≥ 65 k pixels for 256² tiles) and keeps
    the fp32 reference pass, the slow part of the check, to one tile whatever the run's
    ``--tile-size`` and ``--batch-size``.
    """
    rows, cols = batch.data.shape[2:]
    h, w = min(rows, size), min(cols, size)
    r0, c0 = (rows - h) // 2, (cols - w) // 2
    return Batch(
        batch.tiles[:1],
        np.ascontiguousarray(batch.data[:1, :, r0 : r0 + h, c0 : c0 + w]),
        np.ascontiguousarray(batch.valid[:1, r0 : r0 + h, c0 : c0 + w]),
    )


def precision_record(out: str | Path, requested: str) -> dict[str, Any]:
    """What run.json says about precision: the auto check's record in the run folder
    ``out``, or the ``requested`` fixed mode."""
    path = Path(out) / RECORD
    if requested == "auto" and path.exists():
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            pass
    return {"requested": requested, "precision": requested}
