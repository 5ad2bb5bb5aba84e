"""``prioritize``: one global ranking of the next regions to label across a run's scenes.

Writes ``RUN_DIR/next_to_label.gpkg`` (layer ``next_to_label``, in the CRS of the run's
first scene) and ``RUN_DIR/next_to_label.csv``, both atomically, and records them in
``run.json`` (roles ``next_to_label`` and ``next_to_label_csv``, rewritten atomically).

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio

from geolabel.errors import ConfigError
from geolabel.grid import SceneGrid
from geolabel.io.run_record import read_record
from geolabel.priority._write import PriorityResult, write_queue
from geolabel.priority.footprints import read_labelled, to_crs
from geolabel.priority.objects import OBJECT_UNITS, object_queue
from geolabel.priority.queue import unit_queue
from geolabel.priority.regions import STRATEGIES, Region, load_run, score_regions
from geolabel.priority.select import Candidate, Spread, excluded_mask, select_regions
from geolabel.priority.strategy import DEFAULT_STRATEGY, parse_strategy
from geolabel.priority.units import UNITS, auto_unit

__all__ = ["PriorityResult", "prioritize", "read_labelled"]

logger = logging.getLogger(__name__)


def _reason(r: Region, strategy: str, class_names: tuple[str, ...], why: str) -> str:
    cls = (
        class_names[r.dominant_class]
        if 0 <= r.dominant_class < len(class_names)
        else "?"
    )
    what = (
        f"random draw {r.score:.3f}"
        if strategy == "random"
        else f"mean {r.extra['source']} {r.mean:.3f}, q90 {r.q90:.3f}"
    )
    return f"{what} over {r.valid_fraction:.0%} valid pixels, mostly {cls}; {why}"


def prioritize(
    run_dir: str | Path,
    budget: int,
    *,
    strategy: str = DEFAULT_STRATEGY,
    unit: str | None = None,
    region_size: int | None = None,
    superpixel_size: int = 12,
    min_distance: float = 0.0,
    spread: Spread = "none",
    pool_factor: int = 10,
    balance_classes: bool = False,
    exclude: tuple[str | Path, ...] = (),
    min_valid: float = 0.5,
    max_pixels: int = 4_000_000,
    cold_labels: int = 100,
    seed: int = 0,
) -> PriorityResult:
    """Rank the units of every finished scene of a run and write the queue.

    A detection or tile-classification run has no pixel maps: its queue is its own
    predictions, most uncertain first (unit ``boxes`` or ``tiles``,
    :mod:`geolabel.priority.objects`). For segmentation runs, ``unit`` ``auto`` (the
    default) is ``points`` on pixels of 5 m and more and ``superpixels`` on finer
    ones (:func:`~geolabel.priority.units.auto_unit`, from the first scene's grid);
    ``points`` (one click each) and ``superpixels`` (one class per SLIC
    patch), and any strategy of :mod:`geolabel.priority.strategy` (the default
    ``auto``), go through :func:`geolabel.priority.queue.unit_queue`. ``regions`` with
    a plain measure (``entropy``, ``margin``, ``least-confidence``, ``bald``,
    ``random``) rank tile cores or ``region_size`` squares window by window
    (:func:`~geolabel.priority.regions.score_regions`), with ``spread`` and
    ``balance_classes``; ``regions`` with ``auto``/``coreset``/``+modifiers`` use the
    unit path with ``region_size`` (default 32 px) squares.

    Args:
        run_dir: a run folder written by ``geolabel predict``.
        budget: number of units to pick (fewer if the constraints leave no more).
        strategy: a strategy name (see :mod:`geolabel.priority.strategy`).
        unit: ``auto`` (default), ``points``, ``superpixels`` or ``regions``;
            ``boxes`` (detection runs) or ``tiles`` (classification runs).
        region_size: square regions of this many pixels (``None``: tile cores).
        superpixel_size: typical superpixel side (pixels).
        max_pixels: the unit path reads at most about this many pixels per scene map.
        cold_labels: see :class:`~geolabel.priority.strategy.SelectionContext`.
        min_distance: minimum footprint distance between picks, in units of the CRS
            of the first scene (all footprints are compared in that CRS).
        spread: ``none`` or ``k-center`` (see :mod:`geolabel.priority.select`).
        pool_factor: k-center pool size as a multiple of ``budget``.
        balance_classes: alternate between dominant predicted classes.
        exclude: vector files of already-labelled footprints (any CRS).
        min_valid: candidates need at least this share of valid pixels.
        seed: seed of the ``random`` strategy.

    Returns:
        The paths written and the rows of the queue.

    Raises:
        ConfigError: bad options or exclusion files, or missing run outputs.
        RunStateError: the folder holds no finished run.
    """
    if budget < 1:
        raise ConfigError(f"--budget must be at least 1, got {budget}")
    if region_size is not None and region_size < 1:
        raise ConfigError(f"--region-size must be at least 1 pixel, got {region_size}")
    if min_distance < 0:
        raise ConfigError(f"--min-distance must be >= 0, got {min_distance}")
    if not 0.0 <= min_valid <= 1.0:
        raise ConfigError(f"--min-valid must be in [0, 1], got {min_valid}")
    parse_strategy(strategy)  # a bad name fails before anything is read
    run_dir = Path(run_dir)
    task = str(read_record(run_dir).get("model", {}).get("task", "segmentation"))
    if task in OBJECT_UNITS:
        return _object_queue(
            run_dir, budget, task, unit, strategy, exclude, min_distance, seed
        )
    if unit not in (None, "auto", *UNITS):
        raise ConfigError(
            f"--unit must be auto or one of {', '.join(UNITS)} for a segmentation "
            f"run, got {unit!r}"
        )
    scenes = load_run(run_dir)
    unit_from = None
    if unit in (None, "auto"):
        resolution = _resolution_m(scenes[0].outputs["mask"])
        unit = auto_unit(resolution)
        unit_from = {"auto": unit, "resolution_m": resolution}
    legacy = unit == "regions" and strategy in STRATEGIES
    if not legacy:
        size = region_size or 32  # the unit path's squares (legacy: tile cores)
        rows, out_crs, counts = unit_queue(
            scenes,
            budget,
            run_dir=run_dir,
            unit=unit,
            strategy=strategy,
            exclude=exclude,
            min_distance=min_distance,
            region_size=size,
            superpixel_size=superpixel_size,
            min_valid=min_valid,
            max_pixels=max_pixels,
            pool_factor=pool_factor,
            cold_labels=cold_labels,
            seed=seed,
        )
        return write_queue(
            run_dir,
            rows,
            out_crs,
            {
                "strategy": strategy,
                "unit": unit,
                "unit_from": unit_from,
                "budget": budget,
                "picked": len(rows),
                **counts,
                "region_size": size if unit == "regions" else region_size,
                "superpixel_size": superpixel_size,
                "min_distance": min_distance,
                "pool_factor": pool_factor,
                "exclude": [str(Path(e).resolve()) for e in exclude],
                "min_valid": min_valid,
                "max_pixels": max_pixels,
                "cold_labels": cold_labels,
                "seed": seed,
            },
        )
    regions: list[Region] = []
    excluded: list[bool] = []
    for k, run in enumerate(scenes):
        found = score_regions(
            run,
            strategy,
            region_size=region_size,
            min_valid=min_valid,
            seed=seed,
            scene_index=k,
        )
        crs = found[0].crs if found else None
        labelled = [g for path in exclude for g in read_labelled(Path(path), crs)]
        excluded.extend(excluded_mask([r.geometry for r in found], labelled).tolist())
        regions.extend(found)
    out_crs = next((r.crs for r in regions), None)
    geoms = [to_crs(r.geometry, r.crs, out_crs) for r in regions]
    cands = [
        Candidate(r.score, g, r.dominant_class)
        for r, g in zip(regions, geoms, strict=True)
    ]
    picks = select_regions(
        cands,
        budget,
        min_distance=min_distance,
        spread=spread,
        pool_factor=pool_factor,
        balance_classes=balance_classes,
        excluded=np.asarray(excluded, dtype=bool),
    )
    classes = scenes[0].class_names
    rows = []
    for p in picks:
        r, g = regions[p.index], geoms[p.index]
        cls = (
            classes[r.dominant_class] if 0 <= r.dominant_class < len(classes) else None
        )
        rows.append(
            {
                "rank": p.rank,
                "score": round(r.score, 6),
                "strategy": strategy,
                "unit": "regions",
                "reason": _reason(r, strategy, classes, p.reason),
                "scene": r.scene,
                "region_id": r.region_id,
                "dominant_class": cls,
                "valid_fraction": round(r.valid_fraction, 4),
                "row_off": r.window.row_off,
                "col_off": r.window.col_off,
                "height": r.window.height,
                "width": r.window.width,
                "geometry": g,
            }
        )
    options = {
        "strategy": strategy,
        "unit": "regions",
        "budget": budget,
        "picked": len(rows),
        "candidates": len(regions),
        "excluded": int(sum(excluded)),
        "region_size": region_size,
        "min_distance": min_distance,
        "spread": spread,
        "pool_factor": pool_factor,
        "balance_classes": balance_classes,
        "exclude": [str(Path(e).resolve()) for e in exclude],
        "min_valid": min_valid,
        "seed": seed,
    }
    return write_queue(run_dir, rows, out_crs, options)


def _resolution_m(mask: Path) -> float | None:
    """Ground pixel size of a run's mask COG in metres (``None``: unknown)."""
    with rasterio.open(mask) as ds:
        crs = ds.crs.to_wkt() if ds.crs else None
        return SceneGrid(ds.shape, ds.transform, crs).ground_resolution_m()


def _object_queue(
    run_dir: Path,
    budget: int,
    task: str,
    unit: str | None,
    strategy: str,
    exclude: tuple[str | Path, ...],
    min_distance: float,
    seed: int,
) -> PriorityResult:
    """The queue of a detection or classification run (its predictions)."""
    want = OBJECT_UNITS[task]
    if unit not in (None, want):
        raise ConfigError(
            f"--unit {unit}: a {task} run is reviewed prediction by prediction "
            f"(--unit {want})"
        )
    rows, out_crs, unit, counts = object_queue(
        run_dir,
        budget,
        strategy=strategy,
        exclude=exclude,
        min_distance=min_distance,
        seed=seed,
    )
    options = {
        "strategy": strategy,
        "unit": unit,
        "budget": budget,
        "picked": len(rows),
        **counts,
        "min_distance": min_distance,
        "exclude": [str(Path(e).resolve()) for e in exclude],
        "seed": seed,
    }
    return write_queue(run_dir, rows, out_crs, options)
