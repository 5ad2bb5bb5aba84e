"""A run's next-to-label queue in any query unit (points, superpixels, square regions)
with any strategy of :mod:`geolabel.priority.strategy` (the default ``auto``).

Per finished scene of the run, the per-pixel maps are read once, at full resolution up
to ``max_pixels`` pixels and on a regular decimation beyond (the queue is a sample of
places, so a coarser look is enough and memory stays bounded):

* the strategy's uncertainty (the uncertainty COG's band of that measure, else computed
  from the probabilities COG; ``auto`` uses ``margin``);
* the predicted class (mask COG) and its nodata as validity;
* the class probabilities as the feature vector of the core-set step (``auto``,
  ``coreset``, ``+diverse``); without a probabilities COG the step spreads picks in
  space instead;
* for superpixels, the scene's own bands (standardised per band) for SLIC.

Already-labelled footprints (``exclude``) are burnt in: no unit that touches them is
offered again, and their labels count for the class balance and the core-set centres.
Units of every scene compete in one ranking.

.. versionadded:: 0.2
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.features
from affine import Affine
from shapely.geometry import Point, shape

from geolabel.errors import ConfigError
from geolabel.io.run_record import resolve_path
from geolabel.priority.footprints import read_labelled_classes, to_crs, transformer
from geolabel.priority.regions import SceneRun, _band_of, model_band_missing
from geolabel.priority.strategy import SelectionContext, parse_strategy, select_units
from geolabel.priority.units import (
    UnitMap,
    UnitStats,
    context_mean,
    pool_units,
    unit_map,
)
from geolabel.uncertainty.measures import MEASURES, MODEL_MEASURES, compute_measure

__all__ = ["SceneUnits", "scene_units", "unit_queue"]

F32 = npt.NDArray[np.float32]


@dataclass(slots=True)
class SceneUnits:
    """The candidate units of one scene and what the queue needs to write them."""

    run: SceneRun
    units: UnitMap
    stats: UnitStats
    transform: Affine  # of the (possibly decimated) analysis grid
    crs: str | None
    step: int  # decimation factor (1: full resolution)
    blocked: npt.NDArray[np.bool_]  # per unit: touches an already-labelled footprint
    labelled_counts: npt.NDArray[np.int64]
    labelled_embedding: F32 | None

    def geometry(self, unit: int) -> Any:
        """The unit's footprint (point at a pixel centre, or polygon) in ``crs``."""
        rows, cols = self.units.members(unit)
        if self.units.kind == "points":
            x, y = self.transform @ (cols[0] + 0.5, rows[0] + 0.5)
            return Point(x, y)
        r0, c0 = int(rows.min()), int(cols.min())
        sub = self.units.ids[r0 : rows.max() + 1, c0 : cols.max() + 1] == unit
        t = self.transform @ Affine.translation(c0, r0)
        polys = [
            shape(g)
            for g, v in rasterio.features.shapes(
                sub.astype(np.uint8), mask=sub, transform=t
            )
            if v == 1
        ]
        return max(polys, key=lambda p: p.area)


def _uncertainty(
    stack: contextlib.ExitStack, run: SceneRun, measure: str, read: Any
) -> F32:
    outs = run.outputs
    wanted = (measure,) if measure in MEASURES else ("bald", *MODEL_MEASURES)
    if "uncertainty" in outs:
        ds = stack.enter_context(rasterio.open(outs["uncertainty"]))
        band = _band_of(ds, wanted)
        if band is not None:
            out: F32 = read(ds, band).astype(np.float32)
            return out
    if measure in MEASURES and "probabilities" in outs:
        pds = stack.enter_context(rasterio.open(outs["probabilities"]))
        return compute_measure(measure, np.nan_to_num(read(pds, None)))
    if measure not in MEASURES:
        raise ConfigError(model_band_missing(run, measure))
    raise ConfigError(
        f"{run.where}: the run has neither a {measure} band nor probabilities; re-run "
        f"predict with --uncertainty {measure} or --probabilities"
    )


def _scene_bands(path: str, shape_: tuple[int, int]) -> F32:
    """The scene's bands on the analysis grid, each standardised (NaN/nodata -> 0)."""
    with rasterio.open(path) as src:
        data = src.read(out_shape=(src.count, *shape_), masked=True).astype(np.float32)
    arr = data.filled(np.nan)
    mean = np.nanmean(arr, axis=(1, 2), keepdims=True)
    sd = np.nanstd(arr, axis=(1, 2), keepdims=True)
    out: F32 = np.nan_to_num((arr - mean) / np.where(sd > 0, sd, 1.0)).astype(
        np.float32
    )
    return out


def scene_units(
    run: SceneRun,
    *,
    run_dir: Path,
    unit: str,
    measure: str | None,
    labelled: list[tuple[Any, int | None]],
    region_size: int,
    context: bool = False,
    superpixel_size: int,
    min_valid: float,
    max_pixels: int,
) -> SceneUnits:
    """Candidate units of one scene with pooled scores, classes and features.

    Args:
        run: the scene's outputs.
        run_dir: the run folder (recorded scene paths are relative to it).
        unit: ``points``, ``superpixels`` or ``regions``.
        measure: the strategy's uncertainty measure (``None``: none needed).
        context: points score the mean uncertainty of their neighbourhood
            (the strategy's ``+context``).
        labelled: already-labelled footprints in the scene CRS, with their class index
            (``None``: unknown class).
        region_size, superpixel_size: unit sizes in full-resolution pixels.
        min_valid: regions need this share of valid pixels.
        max_pixels: read at most about this many pixels per map (decimate beyond).
    """
    with contextlib.ExitStack() as stack:
        mask = stack.enter_context(rasterio.open(run.outputs["mask"]))
        h, w = mask.shape
        step = max(1, math.ceil(math.sqrt(h * w / max(max_pixels, 1))))
        shape_ = (max(1, h // step), max(1, w // step))
        transform = mask.transform @ Affine.scale(w / shape_[1], h / shape_[0])

        def read(ds: Any, band: int | None) -> npt.NDArray[Any]:
            if band is None:
                return np.asarray(ds.read(out_shape=(ds.count, *shape_)))
            return np.asarray(ds.read(band, out_shape=shape_))

        pred = read(mask, 1).astype(np.int64)
        valid = pred != (-1 if mask.nodata is None else int(mask.nodata))
        n_classes = max(len(run.class_names), 1)
        unc = np.zeros(shape_, np.float32)
        if measure is not None:
            unc = _uncertainty(stack, run, measure, read)
            valid &= np.isfinite(unc)
            if context and unit == "points":
                unc = np.nan_to_num(context_mean(unc, valid))
        feats = None
        if "probabilities" in run.outputs:
            pds = stack.enter_context(rasterio.open(run.outputs["probabilities"]))
            feats = np.nan_to_num(read(pds, None)).astype(np.float32)
        crs = mask.crs.to_wkt() if mask.crs else None
    image = feats if feats is not None else np.zeros((1, *shape_), np.float32)
    if unit == "superpixels":
        image = _scene_bands(str(resolve_path(run_dir, run.scene)), shape_)
    units = unit_map(
        unit,
        image,
        valid,
        region_size=max(1, round(region_size / step)),
        superpixel_size=max(2, round(superpixel_size / step)),
        min_valid=min_valid,
    )
    stats = pool_units(
        units, valid, unc, np.clip(pred, 0, n_classes - 1), n_classes, feats
    )
    burnt = np.zeros(shape_, bool)
    counts = np.zeros(n_classes, np.int64)
    for geom, cls in labelled:
        px = rasterio.features.geometry_mask(
            [geom], out_shape=shape_, transform=transform, invert=True, all_touched=True
        )
        burnt |= px
        if cls is not None and 0 <= cls < n_classes:
            counts[cls] += max(1, int(px.sum())) * step * step
    inside = burnt & (units.ids >= 0)
    blocked = np.bincount(units.ids[inside], minlength=units.count).astype(bool)
    emb = feats[:, burnt].T.copy() if feats is not None and burnt.any() else None
    stats = _with_centre_in_crs(stats, transform)
    return SceneUnits(run, units, stats, transform, crs, step, blocked, counts, emb)


def _with_centre_in_crs(stats: UnitStats, t: Affine) -> UnitStats:
    """Unit centres as map ``(x, y)`` (pixel centres), so spacing is in CRS units."""
    r, c = stats.centre[:, 0] + 0.5, stats.centre[:, 1] + 0.5
    x = t.c + c * t.a + r * t.b
    y = t.f + c * t.d + r * t.e
    return UnitStats(
        stats.score,
        stats.dominant_class,
        np.stack([x, y], 1),
        stats.size,
        stats.valid,
        stats.embedding,
    )


def unit_queue(
    scenes: list[SceneRun],
    budget: int,
    *,
    run_dir: Path,
    unit: str,
    strategy: str,
    exclude: tuple[str | Path, ...],
    min_distance: float,
    region_size: int,
    superpixel_size: int,
    min_valid: float,
    max_pixels: int,
    pool_factor: int,
    cold_labels: int,
    seed: int,
) -> tuple[list[dict[str, Any]], str | None, dict[str, Any]]:
    """Rank the units of every scene together; returns the rows, the output CRS and
    counts for the record (candidates, excluded, ``largest_scene`` ``[rows, cols]``)."""
    strat = parse_strategy(strategy)
    per: list[SceneUnits] = []
    n_labelled = 0
    largest = (0, 0)  # (rows, cols) of the largest scene, full resolution
    for run in scenes:
        with rasterio.open(run.outputs["mask"]) as m:
            crs = m.crs.to_wkt() if m.crs else None
            if m.height * m.width > largest[0] * largest[1]:
                largest = (m.height, m.width)
        labelled = [
            item
            for path in exclude
            for item in read_labelled_classes(Path(path), crs, run.class_names)
        ]
        n_labelled = max(n_labelled, len(labelled))
        per.append(
            scene_units(
                run,
                run_dir=run_dir,
                unit=unit,
                measure=strat.measure,
                context=strat.context,
                labelled=labelled,
                region_size=region_size,
                superpixel_size=superpixel_size,
                min_valid=min_valid,
                max_pixels=max_pixels,
            )
        )
    out_crs = next((s.crs for s in per if s.crs), None)
    centres = []
    for s in per:
        c, tr = s.stats.centre, transformer(s.crs, out_crs)
        if tr is not None:
            c = np.stack(tr.transform(c[:, 0], c[:, 1]), 1)
        centres.append(c)
    emb_parts = [s.stats.embedding for s in per]
    has_emb = all(e is not None for e in emb_parts)
    stats = UnitStats(
        np.concatenate([s.stats.score for s in per]),
        np.concatenate([s.stats.dominant_class for s in per]),
        np.concatenate(centres),
        np.concatenate([s.stats.size for s in per]),
        np.concatenate([s.stats.valid for s in per]),
        np.concatenate(emb_parts) if has_emb else None,  # type: ignore[arg-type]
    )
    blocked = np.concatenate([s.blocked for s in per])
    refs = [s.labelled_embedding for s in per if s.labelled_embedding is not None]
    ctx = SelectionContext(
        labelled_counts=np.sum([s.labelled_counts for s in per], axis=0),
        labelled_embedding=np.concatenate(refs) if refs and has_emb else None,
        labelled_units=n_labelled,
        min_distance=min_distance,
        pool_factor=pool_factor,
        cold_labels=cold_labels,
    )
    sel = select_units(
        stats,
        budget,
        strat,
        np.random.default_rng(seed),
        available=~blocked,
        context=ctx,
    )
    offsets = np.cumsum([0] + [s.units.count for s in per])
    rows = []
    for rank, (i, why) in enumerate(zip(sel.index, sel.reason, strict=True), start=1):
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        s, u = per[k], int(i - offsets[k])
        rr, cc = s.units.members(u)
        cls = int(s.stats.dominant_class[u])
        names = s.run.class_names
        score = float(s.stats.score[u])
        geom = to_crs(s.geometry(u), s.crs, out_crs)
        rows.append(
            {
                "rank": rank,
                "score": round(score, 6) if math.isfinite(score) else None,
                "strategy": strategy,
                "unit": unit,
                "reason": why,
                "scene": s.run.scene,
                "region_id": f"{s.run.name}/{unit[0]}{u}",
                "dominant_class": names[cls] if 0 <= cls < len(names) else None,
                "valid_fraction": round(
                    float(s.stats.valid[u] / max(s.stats.size[u], 1)), 4
                ),
                "row_off": int(rr.min()) * s.step,
                "col_off": int(cc.min()) * s.step,
                "height": int(rr.max() - rr.min() + 1) * s.step,
                "width": int(cc.max() - cc.min() + 1) * s.step,
                "geometry": geom,
            }
        )
    counts = {
        "candidates": int(stats.score.size),
        "excluded": int(blocked.sum()),
        "largest_scene": list(largest),
    }
    return rows, out_crs, counts
