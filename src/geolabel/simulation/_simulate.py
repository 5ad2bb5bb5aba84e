"""An active-learning experiment against an oracle reference map.

Per seed: the first labels (vector files, e.g. the shipped points and polygons) are
rasterised onto the scene and a model is trained from fresh weights. Then, for each
strategy, ``rounds`` times: the current model predicts the scene, the strategy picks
``regions_per_round`` square regions, the oracle's labels inside them are revealed
(added to the labels), the model is fine-tuned on all labels, and it is scored on a
held-out strip of columns that is never revealed and never trained on. Quality (mIoU,
accuracy) is recorded against the number of labelled pixels.

The scene is held in memory (this is an experiment on a sample scene, not a
production path; ``geolabel predict`` is the out-of-core path).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio

from geolabel.errors import ConfigError, CRSMismatchError
from geolabel.evaluation import confusion_matrix, segmentation_scores
from geolabel.grid import Window
from geolabel.io.scene import Scene
from geolabel.labels import (
    IGNORE_INDEX,
    class_lookup,
    merge_labels,
    rasterize_labels,
    read_labels,
)
from geolabel.models.base import normalize
from geolabel.models.spec import ModelSpec
from geolabel.simulation._strategies import parse_strategy, pick_regions
from geolabel.train import FitConfig, build_module, fit, predict_probabilities

__all__ = ["LabelSource", "SimulationConfig", "run_simulation"]

logger = logging.getLogger(__name__)

#: ``progress(done_fits, total_fits, description)``
SimProgress = Callable[[int, int, str], None]

#: ``checkpoint(record)``: the record so far (``complete`` false) after each finished run.
SimCheckpoint = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class LabelSource:
    """A vector layer of first labels: path, layer, class field, point buffer (px)."""

    path: str
    layer: str | None = None
    class_field: str = "label"
    point_buffer: int = 1


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Settings of :func:`run_simulation` (CPU-sized defaults).

    Attributes:
        strategies: strategy names (see :mod:`geolabel.simulation._strategies`).
        seeds: one experiment per seed (model init, chip sampling, random picks).
        rounds: reveal-and-train rounds after the first model.
        regions_per_round: regions revealed per round.
        region_size: region side in pixels.
        holdout_fraction: right-most fraction of the columns held out for scoring.
        initial_steps: training steps of the first model (fresh weights).
        round_steps: fine-tuning steps after each reveal.
        fit: chip size, batch size, learning rate, sampler (its seed is replaced).
        oracle_offset: added to oracle codes to get model indexes (-1 for 1-based).
        min_valid_fraction: regions with fewer valid pixels are not candidates.
        miou_targets: mIoU levels for the labelled-pixels-to-reach summary.
    """

    strategies: tuple[str, ...] = ("entropy", "random")
    seeds: tuple[int, ...] = (0, 1, 2)
    rounds: int = 4
    regions_per_round: int = 6
    region_size: int = 32
    holdout_fraction: float = 0.25
    initial_steps: int = 150
    round_steps: int = 60
    fit: FitConfig = field(default_factory=FitConfig)
    oracle_offset: int = -1
    min_valid_fraction: float = 0.25
    miou_targets: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5)

    def __post_init__(self) -> None:
        """Validate the numbers and the strategy names."""
        for s in self.strategies:
            parse_strategy(s)
        if not self.strategies or not self.seeds:
            raise ConfigError("give at least one strategy and one seed")
        if self.rounds < 0 or self.regions_per_round < 1 or self.region_size < 4:
            raise ConfigError(
                "rounds >= 0, regions per round >= 1, region size >= 4 px"
            )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(
                f"holdout fraction must be in (0, 1), got {self.holdout_fraction!r}"
            )


def _read_oracle(
    path: Path, scene: Scene, num_classes: int, offset: int
) -> npt.NDArray[np.uint8]:
    """Oracle labels on the scene grid as model indexes (nodata -> ignore)."""
    if not path.is_file():
        raise ConfigError(f"{path}: oracle raster not found")
    with rasterio.open(path) as src:
        if (
            src.shape != scene.grid.shape
            or tuple(src.transform)[:6] != tuple(scene.grid.transform)[:6]
        ):
            raise CRSMismatchError(
                f"{path}: oracle grid {src.shape} {tuple(src.transform)[:6]} is not the scene's "
                f"{scene.grid.shape} {tuple(scene.grid.transform)[:6]}; resample it first"
            )
        raw = src.read(1).astype(np.int64)
        bad = np.zeros(raw.shape, bool) if src.nodata is None else raw == src.nodata
    idx = raw + offset
    bad |= (idx < 0) | (idx >= num_classes)
    if bad.all():
        raise ConfigError(
            f"{path}: no oracle value maps to a class with offset {offset}"
        )
    return np.where(bad, IGNORE_INDEX, idx).astype(np.uint8)


def _first_labels(
    sources: Sequence[LabelSource], scene: Scene, spec: ModelSpec
) -> npt.NDArray[np.uint8]:
    lookup = class_lookup(spec.class_names, spec.labels())
    return merge_labels(
        *(
            rasterize_labels(
                read_labels(s.path, layer=s.layer),
                scene.grid,
                num_classes=spec.num_classes,
                class_field=s.class_field,
                lookup=lookup,
                point_buffer=s.point_buffer,
                source=f"{s.path}:{s.layer}",
            )
            for s in sources
        )
    )


def _regions(
    valid: npt.NDArray[np.bool_], split: int, size: int, min_frac: float
) -> list[Window]:
    h = valid.shape[0]
    out = []
    for r in range(0, h, size):
        for c in range(0, split, size):
            w = Window(r, c, min(size, h - r), min(size, split - c))
            if (
                valid[w.slices].mean() >= min_frac
                and w.height * w.width >= size * size / 2
            ):
                out.append(w)
    return out


def _score(
    probs: npt.NDArray[np.float32], ref: npt.NDArray[np.uint8], spec: ModelSpec
) -> dict[str, Any]:
    cm = confusion_matrix(probs.argmax(0), ref, spec.num_classes)
    s = segmentation_scores(cm, spec.class_names)
    return {
        "miou": s["miou"],
        "overall_accuracy": s["overall_accuracy"],
        "iou": {c["name"]: c["iou"] for c in s["classes"]},
    }


def reach(curve: Sequence[tuple[int, float]], target: float) -> float | None:
    """Labelled pixels at which a ``(pixels, miou)`` curve first reaches ``target``.

    Linear interpolation between the round before and the round that reaches it;
    ``None`` if it never does.
    """
    for i, (px, m) in enumerate(curve):
        if m >= target:
            if i == 0:
                return float(px)
            p0, m0 = curve[i - 1]
            return float(p0 + (px - p0) * (target - m0) / (m - m0))
    return None


def run_simulation(
    scene_path: str | Path,
    oracle_path: str | Path,
    sources: Sequence[LabelSource],
    spec: ModelSpec,
    config: SimulationConfig,
    *,
    progress: SimProgress | None = None,
    checkpoint: SimCheckpoint | None = None,
) -> dict[str, Any]:
    """Run the experiment; returns the JSON-able record (config, runs, summary).

    ``checkpoint`` receives the partial record after each (seed, strategy) run, so a
    long experiment that is stopped early still leaves its finished runs behind.

    Raises:
        ConfigError: bad settings, unreadable labels, no first labels left.
        CRSMismatchError: the oracle is not on the scene grid.

    .. versionadded:: 0.1
    """
    from geolabel.pipeline import open_model_scene

    scene = open_model_scene(scene_path, spec)
    read = scene.read(scene.grid.window)
    image, valid = normalize(read.data, read.valid, spec), read.valid
    oracle = _read_oracle(
        Path(oracle_path), scene, spec.num_classes, config.oracle_offset
    )
    oracle[~valid] = IGNORE_INDEX
    w = scene.grid.width
    split = w - math.ceil(config.holdout_fraction * w)
    ref = oracle.copy()
    ref[:, :split] = IGNORE_INDEX
    oracle[:, split:] = IGNORE_INDEX
    first = _first_labels(sources, scene, spec)
    first[~valid] = IGNORE_INDEX
    first[:, split:] = IGNORE_INDEX  # first labels in the held-out strip are dropped
    if not (first != IGNORE_INDEX).any():
        raise ConfigError(
            "no first labels fall on valid pixels of the training columns"
        )
    regions = _regions(valid, split, config.region_size, config.min_valid_fraction)
    depth = 3
    if spec.architecture is not None:
        depth = int(dict(spec.architecture.params).get("depth", 3))
    mult = 2**depth
    strategies = [parse_strategy(s) for s in config.strategies]
    total = len(config.seeds) * (1 + len(strategies) * config.rounds)
    done = 0
    runs: list[dict[str, Any]] = []
    t_all = time.perf_counter()

    def record(*, complete: bool) -> dict[str, Any]:
        return {
            "scene": str(scene_path),
            "oracle": str(oracle_path),
            "first_labels": [asdict(s) for s in sources],
            "model": spec.model_id,
            "config": {
                **{k: v for k, v in asdict(config).items() if k != "fit"},
                "fit": {k: v for k, v in asdict(config.fit).items() if k != "seed"},
            },
            "holdout_columns": [split, w - 1],
            "candidate_regions": len(regions),
            "seconds": round(time.perf_counter() - t_all, 1),
            "complete": complete,
            "runs": list(runs),
            "summary": summarize(runs, config.miou_targets),
        }

    for seed in config.seeds:
        model = build_module(spec, from_scratch=True, seed=seed)
        fit(
            model,
            image,
            first,
            replace(config.fit, steps=config.initial_steps, seed=seed),
        )
        done += 1
        if progress:
            progress(done, total, f"seed {seed}: first model")
        start_state = copy.deepcopy(model.state_dict())
        start_probs = predict_probabilities(model, image, multiple=mult)
        start = {
            "round": 0,
            "labelled_pixels": int((first != IGNORE_INDEX).sum()),
            "regions": [],
            **_score(start_probs, ref, spec),
        }
        for si, strat in enumerate(strategies):
            model.load_state_dict(start_state)
            rng = np.random.default_rng([seed, si])
            labels, probs = first.copy(), start_probs
            revealed = np.zeros(len(regions), dtype=bool)
            rounds = [start]
            for rnd in range(1, config.rounds + 1):
                t0 = time.perf_counter()
                picks = pick_regions(
                    strat,
                    probs,
                    valid,
                    regions,
                    revealed,
                    config.regions_per_round,
                    rng,
                )
                for i in picks:
                    win = regions[i].slices
                    o = oracle[win]
                    labels[win] = np.where(o != IGNORE_INDEX, o, labels[win])
                revealed[picks] = True
                fit(
                    model,
                    image,
                    labels,
                    replace(
                        config.fit, steps=config.round_steps, seed=seed * 1000 + rnd
                    ),
                )
                probs = predict_probabilities(model, image, multiple=mult)
                rounds.append(
                    {
                        "round": rnd,
                        "labelled_pixels": int((labels != IGNORE_INDEX).sum()),
                        "regions": [
                            [
                                regions[i].row_off,
                                regions[i].col_off,
                                regions[i].height,
                                regions[i].width,
                            ]
                            for i in picks
                        ],
                        "seconds": round(time.perf_counter() - t0, 2),
                        **_score(probs, ref, spec),
                    }
                )
                done += 1
                if progress:
                    progress(
                        done,
                        total,
                        f"seed {seed} {strat.name} round {rnd}: "
                        f"mIoU {rounds[-1]['miou']:.3f}",
                    )
            runs.append({"strategy": strat.name, "seed": seed, "rounds": rounds})
            if checkpoint is not None:
                checkpoint(record(complete=False))
            logger.info(
                "seed %d %s: mIoU %.3f -> %.3f",
                seed,
                strat.name,
                rounds[0]["miou"],
                rounds[-1]["miou"],
            )
    return record(complete=True)


def summarize(runs: list[dict[str, Any]], targets: Sequence[float]) -> dict[str, Any]:
    """Per strategy: mean and sd over seeds of labelled pixels and mIoU per round, and of
    the labelled pixels needed to reach each mIoU target (seeds that never reach it are
    counted in ``reached``, not in the mean)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["strategy"] for r in runs):
        mine = [r for r in runs if r["strategy"] == name]
        n_rounds = min(len(r["rounds"]) for r in mine)
        curve = []
        for k in range(n_rounds):
            px = np.array([r["rounds"][k]["labelled_pixels"] for r in mine], float)
            mi = np.array([r["rounds"][k]["miou"] for r in mine], float)
            curve.append(
                {
                    "round": k,
                    "labelled_pixels_mean": float(px.mean()),
                    "labelled_pixels_sd": float(px.std(ddof=1)) if len(px) > 1 else 0.0,
                    "miou_mean": float(mi.mean()),
                    "miou_sd": float(mi.std(ddof=1)) if len(mi) > 1 else 0.0,
                }
            )
        to_reach = {}
        for t in targets:
            got = [
                reach([(x["labelled_pixels"], x["miou"]) for x in r["rounds"]], t)
                for r in mine
            ]
            vals = np.array([g for g in got if g is not None], float)
            to_reach[f"{t:g}"] = {
                "reached": f"{len(vals)}/{len(got)}",
                "pixels_mean": float(vals.mean()) if len(vals) else None,
                "pixels_sd": float(vals.std(ddof=1)) if len(vals) > 1 else None,
            }
        out[name] = {
            "seeds": len(mine),
            "curve": curve,
            "pixels_to_reach_miou": to_reach,
        }
    return out
