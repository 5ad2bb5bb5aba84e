"""Candidate regions of a finished run and their uncertainty scores.

A region is a tile core (from the ``NAME_tiles.gpkg`` layer the run wrote) or a square
of ``region_size`` pixels on the scene grid. Its score is the mean per-pixel uncertainty
of the chosen strategy over its valid pixels, read window by window from the run's
COGs (memory does not grow with the scene):

* ``entropy``, ``margin``, ``least-confidence``: the uncertainty COG band of that measure,
  else computed from the probabilities COG (``least-confidence`` also from the
  confidence COG);
* ``bald``: the model-based band (``bald`` from MC dropout, else TTA or ensemble
  disagreement);
* ``random``: a seeded uniform draw per region (a baseline for comparison).

.. versionadded:: 0.1
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio
import rasterio
from rasterio.windows import Window as RioWindow
from shapely.geometry import box

from geolabel.errors import ConfigError, RunStateError
from geolabel.grid import Window
from geolabel.io.run_record import RUN_RECORD, read_record, resolve_path
from geolabel.uncertainty.measures import MEASURES, MODEL_MEASURES, compute_measure

__all__ = [
    "STRATEGIES",
    "Region",
    "SceneRun",
    "load_run",
    "model_band_missing",
    "score_regions",
]

logger = logging.getLogger(__name__)

STRATEGIES = ("entropy", "margin", "least-confidence", "bald", "random")
F32 = npt.NDArray[np.float32]


@dataclass(slots=True)
class SceneRun:
    """The outputs of one finished scene of a run."""

    scene: str
    name: str
    outputs: dict[str, Path]
    class_names: tuple[str, ...]
    #: the scene file as a path usable from the working directory (messages name it)
    path: Path | None = None

    @property
    def where(self) -> str:
        """The scene as error messages name it: its usable path, else as recorded."""
        return str(self.path) if self.path is not None else self.scene


@dataclass(slots=True)
class Region:
    """One candidate region (geometry in its scene's CRS).

    Attributes:
        scene: scene path as recorded in run.json.
        region_id: tile id, or ``{scene}/s{size}/r{row}c{col}`` for square regions.
        window: pixel window on the scene grid.
        geometry: footprint polygon in ``crs``.
        crs: the scene CRS (WKT or ``EPSG:n``).
        score: mean uncertainty of the strategy (or the random draw).
        mean: mean per-pixel uncertainty (``NaN`` for ``random``).
        q90: 90th percentile of the per-pixel uncertainty.
        valid_fraction: share of valid pixels.
        dominant_class: most frequent predicted class (``-1`` if none).
    """

    scene: str
    region_id: str
    window: Window
    geometry: Any
    crs: str | None
    score: float
    mean: float
    q90: float
    valid_fraction: float
    dominant_class: int
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve(run_dir: Path, p: str) -> Path:
    return resolve_path(run_dir, p)


def load_run(run_dir: Path) -> list[SceneRun]:
    """The finished scenes of a run folder (from its ``run.json``).

    Raises:
        RunStateError: no run.json, or no finished scene.
    """
    rj = run_dir / RUN_RECORD
    doc = read_record(run_dir)
    classes = tuple(doc.get("model", {}).get("classes", []))
    done = [s["scene"] for s in doc.get("scenes", []) if s.get("status") == "done"]
    scenes = []
    for scene in done:
        outs = {
            o["role"]: _resolve(run_dir, o["path"])
            for o in doc.get("outputs", [])
            if o.get("scene") == scene
        }
        if "mask" not in outs:
            continue
        scenes.append(
            SceneRun(
                scene,
                outs["mask"].parent.name,
                outs,
                classes,
                None
                if "://" in scene
                else Path(os.path.normpath(_resolve(run_dir, scene))),
            )
        )
    if not scenes:
        raise RunStateError(f"{rj}: no finished scene with a mask to prioritise")
    return scenes


def _band_of(ds: Any, measures: tuple[str, ...]) -> int | None:
    tags = [ds.tags(i).get("MEASURE") for i in range(1, ds.count + 1)]
    for m in measures:
        if m in tags:
            return tags.index(m) + 1
    return None


def model_band_missing(run: SceneRun, measure: str) -> str:
    """Why ``measure`` (bald, ensemble) cannot be scored on ``run``, and the fix.

    These measures need a band a model wrapper stitched (MC-dropout, test-time
    augmentation or ensemble disagreement); stitched probabilities cannot give it.
    """
    had = (
        " (its probabilities cannot give one)" if "probabilities" in run.outputs else ""
    )
    return (
        f"{run.where}: the {measure} measure needs a model-based uncertainty band "
        f"({', '.join(MODEL_MEASURES)}) and the run has none{had}; re-run predict "
        "with --model-uncertainty mc-dropout (or tta, or an ensemble model)"
    )


def _pixel_reader(
    stack: contextlib.ExitStack, run: SceneRun, strategy: str
) -> tuple[Callable[[RioWindow], F32] | None, str]:
    """A ``window -> (rows, cols)`` uncertainty reader and the name of its source."""
    if strategy == "random":
        return None, "random"
    outs = run.outputs
    n = len(run.class_names)
    wanted = (strategy,) if strategy in MEASURES else tuple(MODEL_MEASURES)
    if "uncertainty" in outs:
        ds = stack.enter_context(rasterio.open(outs["uncertainty"]))
        band = _band_of(ds, ("bald", *wanted) if strategy == "bald" else wanted)
        if band is not None:
            return (lambda w: ds.read(band, window=w).astype(np.float32)), ds.tags(
                band
            )["MEASURE"]
    if strategy == "bald":
        raise ConfigError(model_band_missing(run, "bald"))
    if "probabilities" in outs:
        pds = stack.enter_context(rasterio.open(outs["probabilities"]))
        return (
            lambda w: compute_measure(strategy, np.nan_to_num(pds.read(window=w)))
        ), f"{strategy} (from probabilities)"
    if strategy == "least-confidence" and "confidence" in outs:
        cds = stack.enter_context(rasterio.open(outs["confidence"]))
        scale = n / (n - 1) if n > 1 else 0.0
        return (
            lambda w: ((1.0 - cds.read(1, window=w)) * scale).astype(np.float32)
        ), f"{strategy} (from confidence)"
    raise ConfigError(
        f"{run.where}: the run has neither a {strategy} band nor probabilities; re-run "
        f"predict with --uncertainty {strategy} or --probabilities"
    )


def _windows(
    run: SceneRun, shape: tuple[int, int], region_size: int | None
) -> Iterator[tuple[str, Window]]:
    if region_size is None:
        if "tiles" not in run.outputs:
            raise ConfigError(
                f"{run.scene}: the run wrote no tiles layer; use --region-size, or re-run "
                "predict with an --uncertainty measure"
            )
        df = pyogrio.read_dataframe(
            run.outputs["tiles"],
            layer="tiles",
            read_geometry=False,
            columns=["tile_id", "row_off", "col_off", "height", "width"],
        )
        for r in df.itertuples(index=False):
            yield (
                str(r.tile_id),
                Window(int(r.row_off), int(r.col_off), int(r.height), int(r.width)),
            )
        return
    h, w = shape
    for i, r0 in enumerate(range(0, h, region_size)):
        for j, c0 in enumerate(range(0, w, region_size)):
            yield (
                f"{run.name}/s{region_size}/r{i:05d}c{j:05d}",
                Window(r0, c0, min(region_size, h - r0), min(region_size, w - c0)),
            )


def score_regions(
    run: SceneRun,
    strategy: str,
    *,
    region_size: int | None = None,
    min_valid: float = 0.5,
    seed: int = 0,
    scene_index: int = 0,
) -> list[Region]:
    """Score every candidate region of one scene (regions below ``min_valid`` dropped).

    Args:
        run: the scene's outputs.
        strategy: one of :data:`STRATEGIES`.
        region_size: square region side in pixels (``None``: the run's tile cores).
        min_valid: minimum share of valid pixels of a candidate.
        seed: seed of the ``random`` strategy.
        scene_index: position of the scene in the run (seeds ``random`` per scene).

    Raises:
        ConfigError: unknown strategy, or the run lacks the outputs it needs.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    rng = np.random.default_rng([seed, scene_index])
    regions = []
    with contextlib.ExitStack() as stack:
        mask = stack.enter_context(rasterio.open(run.outputs["mask"]))
        read, source = _pixel_reader(stack, run, strategy)
        crs = mask.crs.to_wkt() if mask.crs else None
        # the mask's own nodata: its bit depth follows the class count (io/raster.py)
        nodata = None if mask.nodata is None else int(mask.nodata)
        t = mask.transform
        for rid, win in _windows(run, mask.shape, region_size):
            rw = RioWindow(win.col_off, win.row_off, win.width, win.height)
            m = mask.read(1, window=rw)
            valid = m != nodata if nodata is not None else np.ones(m.shape, bool)
            frac = float(valid.mean()) if valid.size else 0.0
            if frac < min_valid or not valid.any():
                continue
            counts = np.bincount(m[valid], minlength=max(len(run.class_names), 1))
            if read is None:
                mean = q90 = float("nan")
                score = float(rng.random())
            else:
                v = read(rw)[valid]
                v = v[np.isfinite(v)]
                if not v.size:
                    continue
                mean, q90 = float(v.mean()), float(np.quantile(v, 0.9))
                score = mean
            x0, y0 = t @ (win.col_off, win.row_off)
            x1, y1 = t @ (win.col_off + win.width, win.row_off + win.height)
            geom = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            regions.append(
                Region(
                    run.scene,
                    rid,
                    win,
                    geom,
                    crs,
                    score,
                    mean,
                    q90,
                    frac,
                    int(np.argmax(counts)),
                    {"source": source},
                )
            )
    logger.info("%s: %d candidate regions (%s)", run.scene, len(regions), source)
    return regions
