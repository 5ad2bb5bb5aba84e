"""Check a model spec (local or remote) before a run: reachable, metadata, dry run.

:func:`check_model` returns one :class:`Check` per step, each with a precise detail
line; a step that cannot run because an earlier one failed is not attempted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from geolabel.errors import GeolabelError
from geolabel.grid import SceneGrid, TileGrid
from geolabel.models.base import Batch
from geolabel.models.http_ import HttpBackend
from geolabel.models.registry import load_model
from geolabel.models.spec import ModelSpec

__all__ = ["Check", "check_model", "measure_receptive_field", "synthetic_batch"]

#: A probability that moves by more than this was reached by the perturbation.
RF_TOLERANCE = 1e-5

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One step of a model check."""

    name: str
    ok: bool
    detail: str
    #: passed, but something looks wrong (printed as a warning)
    warning: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d: dict[str, Any] = {"check": self.name, "ok": self.ok, "detail": self.detail}
        if self.warning:
            d["warning"] = True
        return d


def synthetic_batch(spec: ModelSpec, n: int = 1, *, seed: int = 0) -> Batch:
    """``n`` model-ready tiles of the spec's size (seeded normal noise, all valid)."""
    t = spec.input.tile_size
    grid = TileGrid(SceneGrid((t, t * n), Affine(1, 0, 0, 0, -1, 0), None), t, 0)
    tiles = tuple(grid)[:n]
    data = (
        np.random.default_rng(seed)
        .normal(size=(n, len(spec.input.bands), t, t))
        .astype(np.float32)
    )
    return Batch(tiles, data, np.ones((n, t, t), dtype=bool))


def measure_receptive_field(model: Any, spec: ModelSpec, *, seed: int = 0) -> int:
    """The receptive field (pixels, odd) a segmentation model shows on one tile.

    A synthetic tile is run twice, the second time with its central pixel changed by
    4 (normalised units) in every band; the farthest output pixel (Chebyshev
    distance ``r``) whose probabilities moved by more than :data:`RF_TOLERANCE` gives
    ``2 r + 1``. A value of the tile size or more means "at least the whole tile".

    Raises:
        GeolabelError: the model fails on the synthetic tile.
    """
    batch = synthetic_batch(spec, 1, seed=seed)
    c = spec.input.tile_size // 2
    base = np.asarray(model.predict(batch)[0].array, dtype=np.float64)
    data = batch.data.copy()
    data[0, :, c, c] += 4.0
    moved = np.asarray(
        model.predict(Batch(batch.tiles, data, batch.valid))[0].array,
        dtype=np.float64,
    )
    rows, cols = np.nonzero(np.abs(moved - base).max(axis=0) > RF_TOLERANCE)
    if rows.size == 0:
        return 1
    r = int(max(np.abs(rows - c).max(), np.abs(cols - c).max()))
    return 2 * r + 1


def _receptive_field_check(model: Any, spec: ModelSpec) -> Check:
    try:
        rf = measure_receptive_field(model, spec)
    except GeolabelError as err:
        return Check("receptive-field", False, f"{type(err).__name__}: {err}")
    t = spec.input.tile_size
    whole = rf >= t - 1
    seen = f"at least {t} px (the whole tile)" if whole else f"{rf} px"
    suggest = f"{t} or more" if whole else str(rf)
    declared = spec.receptive_field
    if declared is None or declared < rf:
        said = "does not declare it" if declared is None else f"says {declared}"
        return Check(
            "receptive-field",
            True,
            f"measured {seen}, the spec {said}: tiles with less context than "
            f"that disagree with whole-image inference; set receptive_field: "
            f"{suggest} (and an overlap of about half of it)",
            warning=True,
        )
    return Check("receptive-field", True, f"measured {seen} px, spec says {declared}")


def _dims_match(got: object, want: list[int]) -> bool:
    if not isinstance(got, list) or len(got) != len(want):
        return False
    return all(w == -1 or g == -1 or g == w for g, w in zip(got, want, strict=True))


def _metadata_problems(spec: ModelSpec, meta: dict[str, Any]) -> list[str]:
    ep = spec.endpoint
    assert ep is not None
    b, t, c = len(spec.input.bands), spec.input.tile_size, spec.num_classes
    problems: list[str] = []
    inputs = {i.get("name"): i for i in meta.get("inputs") or [] if isinstance(i, dict)}
    if ep.input not in inputs:
        problems.append(
            f"server has no input {ep.input!r} (inputs: {sorted(map(str, inputs))}); set endpoint.input"
        )
    else:
        inp = inputs[ep.input]
        if inp.get("datatype") != ep.datatype:
            problems.append(
                f"input {ep.input!r} is {inp.get('datatype')}, spec sends {ep.datatype} (endpoint.datatype)"
            )
        want = [-1, t, t, b] if ep.layout == "NHWC" else [-1, b, t, t]
        if not _dims_match(inp.get("shape"), want):
            problems.append(
                f"input {ep.input!r} has shape {inp.get('shape')}, spec needs {want} "
                f"({b} bands, tile {t}, layout {ep.layout})"
            )
    outputs = {
        o.get("name"): o for o in meta.get("outputs") or [] if isinstance(o, dict)
    }
    name = ep.output or next(iter(outputs), None)
    if ep.output is not None and ep.output not in outputs:
        problems.append(
            f"server has no output {ep.output!r} (outputs: {sorted(map(str, outputs))}); set endpoint.output"
        )
    elif name is not None and spec.task in ("segmentation", "classification"):
        if spec.task == "segmentation":
            want = [-1, t, t, c] if ep.layout == "NHWC" else [-1, c, t, t]
        else:
            want = [-1, c]
        shape = outputs[name].get("shape")
        if shape is not None and not _dims_match(shape, want):
            problems.append(
                f"output {name!r} has shape {shape}, spec needs {want} ({c} classes)"
            )
    act = (
        (meta.get("parameters") or {}).get("activation")
        if isinstance(meta.get("parameters"), dict)
        else None
    )
    if act is not None and act != spec.output.activation:
        problems.append(
            f"server says activation {act!r}, spec says {spec.output.activation!r} (output.activation)"
        )
    return problems


def check_model(spec: ModelSpec, *, device: str = "cpu") -> list[Check]:
    """Check that a model can run: load/reach it, compare metadata, dry-run a tile.

    Args:
        spec: a loaded spec (local or ``backend: http``).
        device: device for local models.

    Returns:
        The steps, in order; the model is ready when every ``ok`` is true.

    .. versionadded:: 0.1
    """
    checks: list[Check] = []
    ep = spec.endpoint if spec.backend == "http" else None
    try:
        model = load_model(spec, device=device)
    except GeolabelError as err:
        return [Check("load", False, f"{type(err).__name__}: {err}")]
    try:
        if ep is not None and ep.protocol == "kserve-v2":
            assert isinstance(model, HttpBackend)
            try:
                resp = model.client.request("GET", "/v2/health/ready")
                checks.append(
                    Check("reachable", True, f"{ep.url} is ready (HTTP {resp.status})")
                )
            except GeolabelError as err:
                checks.append(Check("reachable", False, str(err)))
                return checks
            try:
                meta = model.protocol.metadata()  # type: ignore[union-attr]
            except GeolabelError as err:
                checks.append(Check("metadata", False, str(err)))
                return checks
            problems = _metadata_problems(spec, meta)
            detail = (
                "; ".join(problems)
                if problems
                else (f"model {meta.get('name')!r}: inputs and outputs match the spec")
            )
            checks.append(Check("metadata", not problems, detail))
            logger.debug("metadata: %s", json.dumps(meta)[:2000])
        elif ep is not None:
            checks.append(
                Check(
                    "metadata",
                    True,
                    "SCANEO has no metadata endpoint; checked by the dry run",
                )
            )
        else:
            checks.append(
                Check("load", True, f"{spec.backend} model {spec.model_id} loaded")
            )
        n = ep.max_tiles_per_request if ep is not None else 1
        batch = synthetic_batch(spec, n)
        try:
            preds = model.predict(batch)
        except GeolabelError as err:
            checks.append(Check("dry-run", False, f"{type(err).__name__}: {err}"))
            return checks
        if len(preds) != n:
            checks.append(
                Check("dry-run", False, f"{len(preds)} predictions for {n} tiles")
            )
        else:
            shape = tuple(preds[0].array.shape)
            checks.append(
                Check(
                    "dry-run", True, f"{n} synthetic tile(s) -> {preds[0].kind} {shape}"
                )
            )
            if spec.task == "segmentation" and ep is None:
                checks.append(_receptive_field_check(model, spec))
    finally:
        model.close()
    return checks
