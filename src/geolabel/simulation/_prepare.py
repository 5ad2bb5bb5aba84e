"""The simulation scene in memory: image, oracle split, first labels, units, answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio

from geolabel.errors import ConfigError, CRSMismatchError
from geolabel.evaluation import confusion_matrix, segmentation_scores
from geolabel.execution.plan import open_model_scene
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
from geolabel.priority.units import UnitMap, auto_unit, unit_map
from geolabel.simulation.config import Arm, LabelSource, SimulationConfig, parse_arm
from geolabel.simulation.effort import LabellerAnswers, answers

__all__ = ["Prepared", "multiple_of", "prepare", "score_probs", "seed_labels"]


def read_oracle(
    path: Path,
    scene: Scene,
    num_classes: int,
    offset: int,
    valid: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.uint8]:
    """Oracle labels on the scene grid as model indexes (nodata -> ignore).

    Args:
        path: the oracle raster (class codes in band 1, its nodata ignored).
        scene: the scene whose grid the oracle must share.
        num_classes: the model's class count.
        offset: added to the codes to get model indexes (``--oracle-offset``).
        valid: the scene's valid pixels; codes elsewhere are not checked.

    Raises:
        ConfigError: no such file; a code on a valid pixel maps outside
            ``0..num_classes-1``; no code at all.
        CRSMismatchError: the oracle is not on the scene grid.
    """
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
    known = ~bad if valid is None else ~bad & valid
    outside = known & ((idx < 0) | (idx >= num_classes))
    if outside.any():
        codes = np.unique(raw[outside])
        shown = ", ".join(str(c) for c in codes[:10]) + (
            ", ..." if codes.size > 10 else ""
        )
        lo, hi = int(raw[known].min()), int(raw[known].max())
        raise ConfigError(
            f"{path}: oracle holds class values outside 0..{num_classes - 1} with "
            f"--oracle-offset {offset} (codes {shown}; codes {lo}..{hi} map to "
            f"{lo + offset}..{hi + offset}); check --oracle-offset or the oracle's nodata"
        )
    bad |= (idx < 0) | (idx >= num_classes)
    if bad.all():
        raise ConfigError(
            f"{path}: no oracle value maps to a class with offset {offset}"
        )
    return np.where(bad, IGNORE_INDEX, idx).astype(np.uint8)


def first_labels(
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """The scene, the oracle split into training and held-out parts, units, answers."""

    image: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    oracle: npt.NDArray[np.uint8]  # training columns only (held-out strip ignored)
    ref: npt.NDArray[np.uint8]  # held-out strip only
    split: int
    first: npt.NDArray[np.uint8]  # vector first labels (training columns)
    units: dict[str, UnitMap]
    answers: dict[str, LabellerAnswers]
    arms: list[Arm]  # unit ``auto`` resolved for this scene
    resolution_m: float | None  # ground pixel size


def prepare(
    scene_path: str | Path,
    oracle_path: str | Path,
    sources: Sequence[LabelSource],
    spec: ModelSpec,
    config: SimulationConfig,
    *,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
) -> Prepared:
    """Open the scene (``config.bands``), read the oracle, split, cut the units.

    Raises:
        SceneReadError: the scene cannot be opened or its bands matched to the model.
        ConfigError, CRSMismatchError: see :func:`read_oracle`; no first labels.
    """
    scene = open_model_scene(
        scene_path,
        spec,
        bands=config.bands,
        allow_vrt=allow_vrt,
        allow_pixel_space=allow_pixel_space,
    )
    resolution = scene.grid.ground_resolution_m()
    # unit "auto": what prioritize --unit auto asks for on this scene
    arms = [parse_arm(a, auto_unit(resolution)) for a in config.arms]
    read = scene.read(scene.grid.window)
    image, valid = normalize(read.data, read.valid, spec), read.valid
    oracle = read_oracle(
        Path(oracle_path), scene, spec.num_classes, config.oracle_offset, valid
    )
    oracle[~valid] = IGNORE_INDEX
    w = scene.grid.width
    split = w - math.ceil(config.holdout_fraction * w)
    ref = oracle.copy()
    ref[:, :split] = IGNORE_INDEX
    oracle[:, split:] = IGNORE_INDEX
    first = np.full(oracle.shape, IGNORE_INDEX, np.uint8)
    if sources:
        first = first_labels(sources, scene, spec)
        first[~valid] = IGNORE_INDEX
        first[:, split:] = (
            IGNORE_INDEX  # first labels in the held-out strip are dropped
        )
    if config.seed_points == 0 and not (first != IGNORE_INDEX).any():
        raise ConfigError(
            "no first labels fall on valid pixels of the training columns"
        )
    allowed = np.zeros(valid.shape, bool)
    allowed[:, :split] = True
    units: dict[str, UnitMap] = {}
    for unit in dict.fromkeys(a.unit for a in arms):
        units[unit] = unit_map(
            unit,
            image,
            valid,
            allowed=allowed,
            region_size=config.region_size,
            superpixel_size=config.superpixel_size,
            min_valid=config.min_valid_fraction,
        )
    ans = {u: answers(m, oracle, config.cost) for u, m in units.items()}
    return Prepared(
        image, valid, oracle, ref, split, first, units, ans, arms, resolution
    )


def seed_labels(p: Prepared, n: int, seed: int) -> npt.NDArray[np.uint8]:
    """The vector first labels plus ``n`` clicks at random labelled training pixels."""
    labels = p.first.copy()
    pool = np.flatnonzero(p.oracle != IGNORE_INDEX)
    if n:
        picks = np.random.default_rng([seed, 7]).choice(
            pool, min(n, pool.size), replace=False
        )
        labels.flat[picks] = p.oracle.flat[picks]
    return labels


def score_probs(
    probs: npt.NDArray[np.float32], ref: npt.NDArray[np.uint8], spec: ModelSpec
) -> dict[str, Any]:
    cm = confusion_matrix(probs.argmax(0), ref, spec.num_classes)
    s = segmentation_scores(cm, spec.class_names)
    return {
        "miou": s["miou"],
        "overall_accuracy": s["overall_accuracy"],
        "iou": {c["name"]: c["iou"] for c in s["classes"]},
    }


def multiple_of(spec: ModelSpec) -> int:
    depth = 3
    if spec.architecture is not None:
        depth = int(dict(spec.architecture.params).get("depth", 3))
    return int(2**depth)
