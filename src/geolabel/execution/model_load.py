"""Load a run's model as every executor uses it, with ``--precision auto`` resolved.

:func:`load_run_model` is what the in-process path and every dask worker call; for
``--precision auto`` it takes the mode :func:`resolve_precision` chose (once per run
folder, kept in ``OUT/precision.json``; see :mod:`geolabel.models.precision`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from geolabel.config import RunConfig
from geolabel.errors import GeolabelError
from geolabel.execution.plan import open_run_scene, plan_scene
from geolabel.execution.tile_loop import read_batch
from geolabel.models.base import Batch, ModelBackend
from geolabel.models.ensemble import wrap_backend
from geolabel.models.precision import (
    RECORD,
    candidate_precision,
    check_precision,
    check_sample,
)
from geolabel.models.registry import load_model
from geolabel.models.spec import ModelSpec

__all__ = ["SAMPLE_TRIES", "load_run_model", "resolve_precision", "sample_tile"]

logger = logging.getLogger(__name__)


def load_run_model(spec: ModelSpec, config: RunConfig) -> ModelBackend:
    """The model of a run as the pipeline uses it (distributed workers load it so too)."""
    precision = config.precision
    if precision == "auto":  # checked against fp32 once per run folder
        precision = resolve_precision(spec, config)["precision"]
    return wrap_backend(
        load_model(
            spec, device=config.device, precision=precision, threads=config.threads
        ),
        config,
    )


#: Tiles read at most to find a check sample with enough valid pixels.
SAMPLE_TRIES = 8


def sample_tile(spec: ModelSpec, config: RunConfig) -> Batch:
    """The check sample of the first scene that opens (the same on every resume).

    Tiles are tried from the scene's centre outwards (corners of satellite scenes are
    often fill): the first whose crop is at least half valid, else the most valid of
    :data:`SAMPLE_TRIES`.

    Raises:
        GeolabelError: no scene opens, or the tiles tried hold no valid pixel.
    """
    errors = []
    for path in config.scenes:
        try:
            scene = open_run_scene(path, spec, config)
            grid, _ = plan_scene(scene, spec, config)
            shape = grid.tile_shape
            assert isinstance(shape, tuple)
            cy, cx = (grid.shape[0] - 1) / 2, (grid.shape[1] - 1) / 2
            order = sorted(
                grid,
                key=lambda t: (
                    (t.index[0] - cy) ** 2 + (t.index[1] - cx) ** 2,
                    t.index,
                ),
            )
            best: Batch | None = None
            with scene.open() as ds:
                for tile in order[:SAMPLE_TRIES]:
                    sample = check_sample(
                        read_batch(scene, [tile], spec, ds, shape),
                        spec.input.tile_size,
                    )
                    if best is None or sample.valid.sum() > best.valid.sum():
                        best = sample
                    if sample.valid.mean() >= 0.5:
                        break
            if best is None or not best.valid.any():
                raise GeolabelError(
                    f"{path}: no valid pixels in the {SAMPLE_TRIES} central tiles"
                )
            return best
        except GeolabelError as err:
            errors.append(str(err))
    raise GeolabelError("; ".join(errors) or "no scenes")


def resolve_precision(spec: ModelSpec, config: RunConfig) -> dict[str, Any]:
    """The precision record of an ``auto`` run: reused from ``OUT/precision.json`` or made.

    Returns:
        A dict with at least ``precision`` (the mode to use) and ``requested``.
    """
    device = config.device
    if device == "auto" and spec.backend == "torch":
        import torch  # optional: only torch specs get here

        device = "cuda" if torch.cuda.is_available() else "cpu"
    path = Path(config.out) / RECORD
    if path.exists() and not config.overwrite:
        try:
            rec: dict[str, Any] = json.loads(path.read_text())
            if rec.get("model_id") == spec.model_id and rec.get("device") == device:
                return rec
        except (OSError, json.JSONDecodeError):
            pass
    candidate = candidate_precision(spec, device)
    if candidate is None:
        rec = {
            "requested": "auto",
            "precision": "fp32",
            "candidate": None,
            "device": device,
            "reason": "no faster mode for this backend and hardware",
        }
    else:
        try:
            batch = sample_tile(spec, config)
        except GeolabelError as err:
            rec = {
                "requested": "auto",
                "precision": "fp32",
                "candidate": candidate,
                "device": device,
                "reason": f"check not run: {err}",
            }
        else:
            rec = check_precision(
                spec, batch, device=device, candidate=candidate, threads=config.threads
            )
    rec["model_id"] = spec.model_id
    logger.info(
        "precision auto: %s (%s)",
        rec["precision"],
        rec.get("agreement", rec.get("reason")),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{RECORD}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    os.replace(tmp, path)
    return rec
