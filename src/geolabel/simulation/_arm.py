"""The rounds of one arm: look, pick until the round's seconds are spent, reveal, train."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.labels import (
    IGNORE_INDEX,
)
from geolabel.models.spec import ModelSpec
from geolabel.priority.strategy import (
    SelectionContext,
    select_units,
)
from geolabel.priority.units import context_mean, pool_units
from geolabel.simulation._prepare import Prepared, multiple_of, score_probs
from geolabel.simulation._probe import look
from geolabel.simulation.config import Arm, SimulationConfig
from geolabel.train import build_module

__all__ = ["run_arm"]


def run_arm(
    p: Prepared,
    spec: ModelSpec,
    config: SimulationConfig,
    arm: Arm,
    model: Any,
    labels0: npt.NDArray[np.uint8],
    seed: int,
    arm_index: int,
    train: Callable[[Any, npt.NDArray[np.uint8], int, int], Any],
    tick: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The rounds of one arm from the shared first model (mutated in place)."""
    units, ans, strat = p.units[arm.unit], p.answers[arm.unit], arm.strategy
    mult, c = multiple_of(spec), spec.num_classes
    rng = np.random.default_rng([seed, arm_index])
    labels = labels0.copy()
    revealed = np.zeros(units.count, bool)
    committee: list[npt.NDArray[np.float32]] = []
    spent, queries, polys, verts = 0.0, 0, 0, 0

    def see() -> Any:
        return look(
            model,
            p.image,
            measure=strat.measure,
            multiple=mult,
            mc_passes=config.mc_passes,
            committee=committee,
            seed=seed,
        )

    lk = see()
    rounds = [
        {
            "round": 0,
            "seconds": 0.0,
            "labelled_pixels": int((labels != IGNORE_INDEX).sum()),
            "queries": 0,
            **score_probs(lk.probs, p.ref, spec),
        }
    ]
    mean_cost = float(ans.seconds.mean()) if units.count else 1.0
    for rnd in range(1, config.rounds + 1):
        t0 = time.perf_counter()
        unc = lk.uncertainty
        if strat.context and arm.unit == "points":
            unc = context_mean(unc, p.valid)
        stats = pool_units(units, p.valid, unc, lk.probs.argmax(0), c, lk.features)
        lab = labels != IGNORE_INDEX
        open_ = ~revealed
        if arm.unit == "points":  # a labelled pixel is not asked again
            open_ &= ~np.bincount(
                units.ids[lab & (units.ids >= 0)], minlength=units.count
            ).astype(bool)
        emb = lk.features[:, lab].T
        if emb.shape[0] > 2048:
            emb = emb[rng.choice(emb.shape[0], 2048, replace=False)]
        ctx = SelectionContext(
            labelled_counts=np.bincount(labels[lab], minlength=c),
            labelled_embedding=emb,
            labelled_units=config.seed_points + queries,
            min_distance=config.point_spacing if arm.unit == "points" else 0.0,
            pool_factor=config.pool_factor,
            cold_labels=config.cold_labels,
        )
        hint = 2 * math.ceil(config.round_seconds / max(mean_cost, 1e-6)) + 1
        sel = select_units(stats, hint, strat, rng, available=open_, context=ctx)
        picks: list[int] = []
        cost = 0.0
        for i in sel.index:
            if cost >= config.round_seconds:
                break
            picks.append(i)
            cost += float(ans.seconds[i])
        ans.reveal(units, picks, p.oracle, labels)
        revealed[picks] = True
        spent += cost
        queries += len(picks)
        polys += int(ans.polygons[picks].sum())
        verts += int(ans.vertices[picks].sum())
        if strat.measure == "ensemble":
            committee = [lk.probs, *committee][:2]
        if config.retrain:
            fresh = build_module(spec, from_scratch=True, seed=seed)
            model.load_state_dict(fresh.state_dict())
            train(
                model,
                labels,
                config.initial_steps + rnd * config.round_steps,
                seed * 1000 + rnd,
            )
        else:
            train(model, labels, config.round_steps, seed * 1000 + rnd)
        lk = see()
        rounds.append(
            {
                "round": rnd,
                "seconds": round(spent, 2),
                "labelled_pixels": int((labels != IGNORE_INDEX).sum()),
                "queries": queries,
                "polygons": polys,
                "vertices": verts,
                "picks": [[round(v) for v in stats.centre[i]] for i in picks],
                "wall_seconds": round(time.perf_counter() - t0, 2),
                **score_probs(lk.probs, p.ref, spec),
            }
        )
        tick(f"seed {seed} {arm.name} round {rnd}: mIoU {rounds[-1]['miou']:.3f}")
    return rounds
