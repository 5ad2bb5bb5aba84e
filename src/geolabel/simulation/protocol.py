"""Summaries of a simulation: learning curves per unit of labeller effort, the area
under them (ALC) with paired bootstrap confidence intervals, and the effort needed to
reach fixed fractions of the fully-labelled model's quality.

Definitions (all per seed, then over seeds):

* a run's curve is held-out mIoU against cumulative labeller-seconds spent on queries
  (the first labels cost the same for every arm and are reported separately);
* **ALC** is the mean mIoU over the common effort range ``[0, horizon]`` (trapezoids on
  the linearly interpolated curve; ``horizon`` is the smallest final effort of all runs),
  so arms with different units compare on the same seconds;
* a **paired difference** is ALC(arm) - ALC(baseline) for the same seed (same first
  labels and first model); its 95 % interval is the percentile bootstrap over seeds;
* **effort to reach** ``f`` is where the curve first crosses ``f`` x the mean mIoU of the
  fully-labelled models (linear interpolation); ``None`` if it never does within the
  simulated effort, which is then a lower bound.

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["alc", "bootstrap_ci", "effort_to_reach", "summarize"]

Curve = Sequence[tuple[float, float]]


def _interp(curve: Curve, x: np.ndarray) -> np.ndarray:
    xs = np.array([c[0] for c in curve], float)
    ys = np.array([c[1] for c in curve], float)
    out: np.ndarray = np.interp(x, xs, ys)
    return out


def alc(curve: Curve, horizon: float) -> float:
    """Mean of the interpolated curve over ``[0, horizon]``."""
    if horizon <= 0:
        return float(curve[0][1])
    xs = np.array([c[0] for c in curve if c[0] < horizon] + [horizon], float)
    ys = _interp(curve, xs)
    return float(np.trapezoid(ys, xs) / horizon)


def effort_to_reach(curve: Curve, target: float) -> float | None:
    """First effort at which the curve reaches ``target`` (interpolated), else ``None``."""
    for i, (x, y) in enumerate(curve):
        if y >= target:
            if i == 0:
                return float(x)
            x0, y0 = curve[i - 1]
            return float(x0 + (x - x0) * (target - y0) / (y - y0))
    return None


def bootstrap_ci(
    values: Sequence[float], *, n: int = 10000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    v = np.asarray(values, float)
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if v.size > 1 else 0.0


def _stats(v: list[float]) -> dict[str, float | None]:
    a = np.asarray(v, float)
    return {
        "mean": float(a.mean()) if a.size else None,
        "sd": _sd(a) if a.size else None,
    }


def summarize(
    runs: list[dict[str, Any]],
    full_miou: Sequence[float],
    *,
    fractions: Sequence[float] = (0.9, 0.95),
    baselines: Sequence[str] = (),
    default: str | None = None,
) -> dict[str, Any]:
    """Curves, ALC, effort to reach and paired comparisons of every arm.

    Args:
        runs: ``{"arm", "seed", "rounds": [{"seconds", "miou", ...}]}`` records.
        full_miou: held-out mIoU of the fully-labelled model of each seed.
        fractions: quality targets as fractions of the mean fully-labelled mIoU.
        baselines: arms every other arm is compared with (paired by seed).
        default: the arm whose per-round shortfall against each baseline is checked.
    """
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    curves = {
        (r["arm"], r["seed"]): [(x["seconds"], x["miou"]) for x in r["rounds"]]
        for r in runs
    }
    horizon = min(c[-1][0] for c in curves.values())
    full = float(np.mean(full_miou))
    targets = {f"{f:g}": f * full for f in fractions}
    out: dict[str, Any] = {
        "horizon_seconds": horizon,
        "full_miou": {**_stats(list(full_miou)), "seeds": len(full_miou)},
        "targets_miou": targets,
        "arms": {},
        "comparisons": [],
    }
    for arm in arms:
        mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        n_rounds = min(len(r["rounds"]) for r in mine)
        curve = []
        for k in range(n_rounds):
            sec = np.array([r["rounds"][k]["seconds"] for r in mine], float)
            mi = np.array([r["rounds"][k]["miou"] for r in mine], float)
            px = np.array([r["rounds"][k]["labelled_pixels"] for r in mine], float)
            curve.append(
                {
                    "round": k,
                    "seconds_mean": float(sec.mean()),
                    "labelled_pixels_mean": float(px.mean()),
                    "miou_mean": float(mi.mean()),
                    "miou_sd": _sd(mi),
                }
            )
        reach: dict[str, Any] = {}
        for key, t in targets.items():
            got = [effort_to_reach(curves[(arm, r["seed"])], t) for r in mine]
            ok = [g for g in got if g is not None]
            reach[key] = {
                "target_miou": t,
                "reached": f"{len(ok)}/{len(got)}",
                "per_seed": got,
                "seconds": _stats(ok),
                # unreached seeds counted at their final effort: a lower bound
                "seconds_lower_bound_mean": float(
                    np.mean(
                        [
                            g if g is not None else curves[(arm, r["seed"])][-1][0]
                            for g, r in zip(got, mine, strict=True)
                        ]
                    )
                ),
            }
        alcs = [alc(curves[(arm, r["seed"])], horizon) for r in mine]
        out["arms"][arm] = {
            "seeds": [r["seed"] for r in mine],
            "curve": curve,
            "alc": {**_stats(alcs), "per_seed": alcs},
            "effort_to_reach": reach,
        }
    for base in baselines:
        if base not in out["arms"]:
            continue
        for arm in arms:
            if arm == base:
                continue
            seeds = sorted(
                set(out["arms"][arm]["seeds"]) & set(out["arms"][base]["seeds"])
            )
            diffs = [
                alc(curves[(arm, s)], horizon) - alc(curves[(base, s)], horizon)
                for s in seeds
            ]
            lo, hi = bootstrap_ci(diffs)
            comp: dict[str, Any] = {
                "arm": arm,
                "baseline": base,
                "seeds": seeds,
                "alc_difference": {
                    **_stats(diffs),
                    "per_seed": diffs,
                    "ci95": [lo, hi],
                },
                "better": bool(lo > 0),
            }
            for key in targets:
                a = out["arms"][arm]["effort_to_reach"][key]
                b = out["arms"][base]["effort_to_reach"][key]
                a_all = a["reached"].split("/")[0] == a["reached"].split("/")[1]
                b_all = b["reached"].split("/")[0] == b["reached"].split("/")[1]
                ratio = None
                if a_all and b["seconds_lower_bound_mean"] > 0:
                    ratio = a["seconds"]["mean"] / b["seconds_lower_bound_mean"]
                comp[f"effort_ratio_{key}"] = {
                    "ratio": ratio,
                    # baseline seeds that never reached the target make the ratio an
                    # upper bound (their effort is at least what was simulated)
                    "upper_bound": not b_all,
                }
            if arm == default:
                rows = []
                for k, (ca, cb) in enumerate(
                    zip(
                        out["arms"][arm]["curve"],
                        out["arms"][base]["curve"],
                        strict=False,
                    )
                ):
                    gap = ca["miou_mean"] - cb["miou_mean"]
                    rows.append(
                        {
                            "round": k,
                            "difference": gap,
                            "baseline_sd": cb["miou_sd"],
                            "below_one_sd": bool(gap < -cb["miou_sd"]),
                        }
                    )
                comp["per_round"] = rows
                comp["never_one_sd_below"] = not any(r["below_one_sd"] for r in rows)
            out["comparisons"].append(comp)
    return out
