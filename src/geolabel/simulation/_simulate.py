"""An active-learning experiment against an oracle reference map, in labeller effort.

Per seed: first labels (``seed_points`` clicks at random valid places of the training
columns, plus any vector layers given) train a first model from fresh weights; a
reference model is trained on **every** oracle label of the training columns (the
"fully-labelled" quality). Then every arm (a strategy and a query unit, e.g.
``auto/points`` or ``random/regions``) starts from the same first model and, for
``rounds`` rounds: the model looks at the scene, the strategy picks units until the
round's labeller-seconds are spent (:mod:`geolabel.simulation.effort`), the oracle
answers as a person would, the model is fine-tuned (or retrained from scratch) on all
labels, and it is scored on a held-out strip of columns that is never revealed.
:mod:`geolabel.simulation.protocol` turns the runs into curves per second of effort,
ALC with paired bootstrap intervals and the effort to reach 90 / 95 % of the
fully-labelled quality.

The scene is held in memory (an experiment on a sample scene, not a production path).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.models.spec import ModelSpec
from geolabel.priority.units import auto_unit
from geolabel.simulation._arm import run_arm
from geolabel.simulation._prepare import multiple_of, prepare, score_probs, seed_labels
from geolabel.simulation._probe import look
from geolabel.simulation._reuse import Reuse, load_reuse
from geolabel.simulation.config import LabelSource, SimulationConfig
from geolabel.simulation.protocol import summarize
from geolabel.train import build_module, fit

__all__ = ["LabelSource", "SimulationConfig", "run_simulation"]

logger = logging.getLogger(__name__)

#: ``progress(done_fits, total_fits, description)``
SimProgress = Callable[[int, int, str], None]

#: ``checkpoint(record)``: the record so far (``complete`` false) after each finished run.
SimCheckpoint = Callable[[dict[str, Any]], None]


def run_simulation(
    scene_path: str | Path,
    oracle_path: str | Path,
    sources: Sequence[LabelSource],
    spec: ModelSpec,
    config: SimulationConfig,
    *,
    progress: SimProgress | None = None,
    checkpoint: SimCheckpoint | None = None,
    reuse: Path | None = None,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
) -> dict[str, Any]:
    """Run the experiment; returns the JSON-able record (config, runs, summary).

    ``checkpoint`` receives the partial record after each (seed, arm) run, so a long
    experiment that is stopped early still leaves its finished runs behind.
    ``reuse``: an earlier record of the same experiment whose finished runs and
    references are taken instead of simulated again (:mod:`._reuse`; pass the
    partial record of a stopped run to resume it). ``allow_vrt`` and
    ``allow_pixel_space`` let the scene be a VRT or have no CRS (as ``predict``'s
    ``--allow-vrt`` and ``--allow-pixel-space``).

    Raises:
        ConfigError: bad settings, unreadable labels, no first labels left, oracle
            codes outside the model's classes.
        CRSMismatchError: the oracle is not on the scene grid.
        SceneReadError: a scene that cannot be opened or matched to the model's bands.

    .. versionadded:: 0.1
    """
    p = prepare(
        scene_path,
        oracle_path,
        sources,
        spec,
        config,
        allow_vrt=allow_vrt,
        allow_pixel_space=allow_pixel_space,
    )
    arms = p.arms
    mult = multiple_of(spec)
    total = len(config.seeds) * (2 + len(arms) * config.rounds)
    done = 0
    runs: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    t_all = time.perf_counter()

    def tick(desc: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, desc)

    def train(model: Any, labels: npt.NDArray[np.uint8], steps: int, seed: int) -> Any:
        fit(model, p.image, labels, replace(config.fit, steps=steps, seed=seed))
        return model

    header = {
        "scene": str(scene_path),
        "oracle": str(oracle_path),
        "first_labels": [asdict(s) for s in sources],
        "model": spec.model_id,
        "config": json.loads(
            json.dumps(
                {
                    **{k: v for k, v in asdict(config).items() if k != "fit"},
                    "fit": {k: v for k, v in asdict(config.fit).items() if k != "seed"},
                }
            )
        ),
        "holdout_columns": [p.split, p.image.shape[2] - 1],
        # unit "auto" of the arms: what prioritize --unit auto asks for on this scene
        "auto_unit": {
            "unit": auto_unit(p.resolution_m),
            "resolution_m": p.resolution_m,
        },
    }
    lent = load_reuse(reuse, header, config.arms) if reuse is not None else Reuse("")

    def record(*, complete: bool) -> dict[str, Any]:
        return {
            **header,
            "reused_from": lent.path or None,
            "candidates": {u: m.count for u, m in p.units.items()},
            "seconds": round(time.perf_counter() - t_all, 1),
            "complete": complete,
            "full_labels": full,
            "runs": list(runs),
            "summary": summarize(
                runs,
                [f["miou"] for f in full],
                fractions=config.fractions,
                baselines=config.baselines,
                default=arms[0].name,
            )
            if runs and full
            else {},
        }

    full_steps = config.full_steps or (
        config.initial_steps + config.rounds * config.round_steps
    )
    for seed in config.seeds:
        if seed in lent.full:
            full.append(lent.full[seed])
        else:
            ref_model = train(
                build_module(spec, from_scratch=True, seed=seed),
                p.oracle,
                full_steps,
                seed,
            )
            full_look = look(ref_model, p.image, measure=None, multiple=mult)
            full.append({"seed": seed, **score_probs(full_look.probs, p.ref, spec)})
        tick(f"seed {seed}: fully-labelled model mIoU {full[-1]['miou']:.3f}")
        labels0 = seed_labels(p, config.seed_points, seed)
        model = train(
            build_module(spec, from_scratch=True, seed=seed),
            labels0,
            config.initial_steps,
            seed,
        )
        start_state = copy.deepcopy(model.state_dict())
        first = (  # only a lent run needs the check (one forward pass)
            score_probs(
                look(model, p.image, measure=None, multiple=mult).probs, p.ref, spec
            )["miou"]
            if any(s == seed for s, _ in lent.runs)
            else None
        )
        tick(f"seed {seed}: first model")
        for ai, arm in enumerate(arms):
            if first is not None:
                lent.check_first_model(seed, arm.name, first)
            old = lent.runs.get((seed, arm.name))
            if old is not None:
                rounds = old["rounds"]
                for _ in rounds[1:]:
                    tick(f"seed {seed} {arm.name}: reused")
            else:
                model.load_state_dict(start_state)
                rounds = run_arm(
                    p, spec, config, arm, model, labels0, seed, ai, train, tick
                )
            runs.append(
                {
                    "arm": arm.name,
                    "strategy": arm.strategy.name,
                    "unit": arm.unit,
                    "seed": seed,
                    "rounds": rounds,
                    **({"reused": True} if old is not None else {}),
                }
            )
            if checkpoint is not None:
                checkpoint(record(complete=False))
            logger.info(
                "seed %d %s: mIoU %.3f -> %.3f",
                seed,
                arm.name,
                rounds[0]["miou"],
                rounds[-1]["miou"],
            )
    return record(complete=True)
