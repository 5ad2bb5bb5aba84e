"""``geolabel loop``: predict, prioritise, wait for labels, fine-tune, again.

Round 0 predicts every scene with the base model and writes the queue of what to
label next (``prioritize``, labelled features excluded). Then the loop waits until
the labels layer holds ``every`` more labelled features than when the round started
(polling the file; a file being saved and unreadable for a moment is read again at
the next poll), fine-tunes the previous round's model on all labels
(``train_model``, scene after scene), re-predicts every scene (the model changed, so
every scene's suggestions and uncertainty did) and re-prioritises. It stops after
``rounds`` fine-tunes, or, without ``wait`` (or when ``timeout`` passes), as soon as
it would have to wait: the same command continues later.

Folder: ``OUT/loop.json`` (:mod:`geolabel.loop._state`), ``OUT/models/`` (one spec +
weights per round, none overwritten once recorded), ``OUT/rounds/rNNN/`` (a run
folder per round, with its ``next_to_label.gpkg``); ``loop.json`` keeps each version's
training metrics and the mean per-pixel uncertainty of its predictions. Each step is recorded after its
outputs are durable; a killed loop (even ``kill -9``) resumes with the step that was
running (``predict`` resumes itself tile by tile).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyogrio

from geolabel.config import RunConfig
from geolabel.errors import ConfigError, GeolabelError, RunStateError
from geolabel.execution.plan import open_model_scene
from geolabel.io.run_record import find_outputs, read_record
from geolabel.labels import class_lookup, rasterize_labels, read_labels
from geolabel.loop._state import LoopState, RoundState
from geolabel.models.spec import load_spec
from geolabel.pipeline import run_predict
from geolabel.priority.rank import prioritize
from geolabel.train import FitConfig, bump_version, train_model

__all__ = [
    "LoopConfig",
    "LoopResult",
    "count_labels",
    "run_loop",
    "uncertainty_summary",
]

logger = logging.getLogger(__name__)

Event = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """Settings of a loop.

    Attributes:
        scenes: the scenes.
        model: base model spec.
        labels: labels vector file (a GeoPackage the labeller edits).
        out: loop folder.
        labels_layer: its layer (``None``: the only one).
        every: new labelled features that start the next round.
        rounds: fine-tuning rounds to run (after round 0's prediction).
        budget: queue length of ``prioritize``.
        strategy: ``prioritize`` strategy.
        unit: ``prioritize`` unit (``auto``, ``points``, ``superpixels``, ``regions``).
        class_field: the labels' class attribute.
        point_buffer: grow point labels to ``2N+1`` pixel squares for training.
        steps: optimiser steps per fine-tune.
        chip_size: training chip side (pixels).
        batch_size: training chips per step.
        tile_size: prediction tile size (default: the model's).
        bands, allow_vrt, allow_pixel_space: as ``predict`` takes them, for every
            scene (training and prediction alike).
        threads: model threads.
        seed: seed of training and prioritising.
        wait: poll for labels (else stop when the loop would wait).
        poll: seconds between polls.
        timeout: stop waiting after this many seconds (``None``: never).
    """

    scenes: tuple[str, ...]
    model: str
    labels: str
    out: str
    labels_layer: str | None = None
    every: int = 50
    rounds: int = 1
    budget: int = 40
    strategy: str = "auto"
    unit: str = "auto"
    class_field: str = "label"
    point_buffer: int = 0
    steps: int = 200
    chip_size: int = 64
    batch_size: int = 8
    tile_size: int | None = None
    threads: int | None = None
    seed: int = 0
    bands: tuple[int, ...] | None = None
    allow_vrt: bool = False
    allow_pixel_space: bool = False
    wait: bool = True
    poll: float = 10.0
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class LoopResult:
    """Where the loop stopped: ``done`` (all rounds) or ``waiting`` (for labels)."""

    state: LoopState
    status: Literal["done", "waiting"]
    labels: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"status": self.status, "labels": self.labels, **self.state.to_dict()}


def count_labels(path: str | Path, layer: str | None, class_field: str) -> int | None:
    """Labelled features in the layer (0 without the file; ``None`` if unreadable now)."""
    p = Path(path)
    if not p.exists():
        return 0
    try:
        gdf = read_labels(p, layer=layer)
    except (GeolabelError, pyogrio.errors.DataSourceError, OSError) as err:
        logger.warning("labels not readable now (%s); trying again", err)
        return None
    if class_field not in gdf.columns:
        return 0
    values = gdf[class_field]
    return int((values.notna() & (values.astype(str).str.strip() != "")).sum())


def _settings(config: LoopConfig) -> dict[str, Any]:
    doc = asdict(config)
    doc["scenes"] = [str(Path(s).resolve()) for s in config.scenes]
    doc["model"] = str(Path(config.model).resolve())
    doc["labels"] = str(Path(config.labels).resolve())
    return doc


def _train(config: LoopConfig, state: LoopState, rnd: RoundState) -> None:
    """Fine-tune the previous round's model on every scene with labels, in order."""
    prev = state.rounds[rnd.index - 1]
    spec = load_spec(prev.model)
    version = bump_version(spec.version)
    lookup = class_lookup(spec.class_names, spec.labels())
    feats = read_labels(config.labels, layer=config.labels_layer)
    out = Path(rnd.model)
    fit = FitConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        chip_size=config.chip_size,
        seed=config.seed + rnd.index,
        threads=config.threads,
    )
    per_scene = []
    for path in config.scenes:
        scene = open_model_scene(
            path,
            spec,
            bands=config.bands,
            allow_vrt=config.allow_vrt,
            allow_pixel_space=config.allow_pixel_space,
        )
        target = rasterize_labels(
            feats,
            scene.grid,
            num_classes=spec.num_classes,
            class_field=config.class_field,
            lookup=lookup,
            point_buffer=config.point_buffer,
            source=config.labels,
        )
        if not (target != 255).any():
            continue
        result = train_model(
            scene, target, spec, out, fit, version=version, overwrite=True
        )
        spec = load_spec(result.spec_path)
        per_scene.append({"scene": path, **result.metrics})
        rnd.model_id = result.model_id
    if not per_scene:
        raise ConfigError(
            f"{config.labels}: no labelled pixel on any scene; nothing to train on"
        )
    rnd.train_metrics = {"scenes": per_scene}


def _predict(config: LoopConfig, out: Path, rnd: RoundState) -> None:
    run = out / "rounds" / f"r{rnd.index:03d}"
    result = run_predict(
        RunConfig(
            scenes=tuple(config.scenes),
            model=rnd.model,
            out=str(run),
            tile_size=config.tile_size,
            threads=config.threads,
            seed=config.seed,
            bands=config.bands,
            allow_vrt=config.allow_vrt,
            allow_pixel_space=config.allow_pixel_space,
        )
    )
    rnd.scenes = [
        {"scene": s.scene, "status": s.status, "error": s.error} for s in result.scenes
    ]
    if not result.ok:
        bad = next(s for s in result.scenes if s.status != "done")
        raise RunStateError(
            f"{bad.scene}: prediction of round {rnd.index} did not finish "
            f"({bad.status}: {bad.error}); run the loop again to resume"
        )
    rnd.run = str(run)
    rnd.predict_metrics = uncertainty_summary(run)


def uncertainty_summary(run: Path) -> dict[str, Any]:
    """Pixel-weighted mean per-pixel uncertainty of a run's scenes (from the tile table)."""
    record = read_record(run)
    total = weight = 0.0
    measure = None
    for _, _, path in find_outputs(run, record, role="tiles"):
        tiles = read_labels(path, layer="tiles")
        if tiles.empty or "mean" not in tiles.columns:
            continue
        w = (tiles["height"] * tiles["width"] * tiles["valid_fraction"]).to_numpy(float)
        m = tiles["mean"].to_numpy(float)
        ok = np.isfinite(m) & (w > 0)
        total += float((m[ok] * w[ok]).sum())
        weight += float(w[ok].sum())
        measure = str(tiles["measure"].iloc[0])
    if weight == 0:
        return {}
    return {"mean_uncertainty": round(total / weight, 6), "measure": measure}


def _prioritize(config: LoopConfig, rnd: RoundState) -> None:
    exclude = (config.labels,) if Path(config.labels).exists() else ()
    res = prioritize(
        rnd.run,
        config.budget,
        strategy=config.strategy,
        unit=config.unit,
        exclude=exclude,
        seed=config.seed + rnd.index,
    )
    rnd.queue = str(res.gpkg)
    rnd.queued = len(res.rows)


def _round_steps(
    config: LoopConfig, state: LoopState, rnd: RoundState, emit: Event
) -> None:
    out = state.path.parent
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("trained", lambda: _train(config, state, rnd)),
        ("predicted", lambda: _predict(config, out, rnd)),
        ("prioritized", lambda: _prioritize(config, rnd)),
    )
    for step, do in steps:
        if getattr(rnd, step):
            continue
        t0 = time.monotonic()
        do()
        setattr(rnd, step, True)
        state.save()
        emit(
            {
                "round": rnd.index,
                "step": step,
                "model_id": rnd.model_id,
                "seconds": round(time.monotonic() - t0, 3),
            }
        )


def run_loop(
    config: LoopConfig,
    *,
    emit: Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LoopResult:
    """Run (or resume) the loop in ``config.out``; see the module doc.

    Args:
        config: the settings.
        emit: called with a dict after every recorded step and while waiting.
        sleep: how to wait between polls (tests pass a fake).

    Raises:
        ConfigError: bad settings, labels naming no class, no labelled pixel.
        RunStateError: ``out`` holds a loop with other scenes/model/labels, or a
            scene's prediction failed (the loop resumes when run again).

    .. versionadded:: 0.1
    """
    if config.every < 1 or config.rounds < 0 or config.budget < 1:
        raise ConfigError(
            f"--every and --budget must be >= 1 and --rounds >= 0, got "
            f"{config.every!r}, {config.budget!r}, {config.rounds!r}"
        )
    emit = emit or (lambda _doc: None)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    state = LoopState.load_or_new(out, _settings(config))
    config = _resolved(config, state)
    base = load_spec(config.model)
    if not state.rounds:
        start = count_labels(config.labels, config.labels_layer, config.class_field)
        state.rounds.append(
            RoundState(0, config.model, base.model_id, start or 0, trained=True)
        )
        state.save()
    while True:
        rnd = state.rounds[-1]
        _round_steps(config, state, rnd, emit)
        if rnd.index >= config.rounds:
            have = count_labels(config.labels, config.labels_layer, config.class_field)
            return LoopResult(state, "done", have or 0)
        have = _wait_for_labels(config, rnd, emit, sleep)
        if have is None or have < rnd.labels_at_start + config.every:
            return LoopResult(state, "waiting", have or 0)
        nxt = rnd.index + 1
        spec_path = out / "models" / f"{base.name}-r{nxt:03d}.yaml"
        state.rounds.append(RoundState(nxt, str(spec_path.resolve()), "", have))
        state.save()


def _resolved(config: LoopConfig, state: LoopState) -> LoopConfig:
    """The config with the recorded absolute paths (scenes, model, labels)."""
    s = state.settings
    return LoopConfig(
        **{
            **asdict(config),
            "scenes": tuple(s["scenes"]),
            "model": s["model"],
            "labels": s["labels"],
        }
    )


def _wait_for_labels(
    config: LoopConfig, rnd: RoundState, emit: Event, sleep: Callable[[float], None]
) -> int | None:
    """Labelled features once enough are there, or the last count when giving up."""
    target = rnd.labels_at_start + config.every
    waited = 0.0
    have = None
    while True:
        have = count_labels(config.labels, config.labels_layer, config.class_field)
        if have is not None and have >= target:
            return have
        if not config.wait or (config.timeout is not None and waited >= config.timeout):
            return have
        emit({"round": rnd.index, "waiting": True, "labels": have, "need": target})
        sleep(config.poll)
        waited += config.poll
