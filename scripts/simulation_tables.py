"""Markdown tables of a ``geolabel simulate`` JSON record (for docs/simulation.md).

Usage::

    python scripts/simulation_tables.py docs/simulation/cloud-landsat7.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(v: float | None, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _secs(reach: dict[str, Any]) -> str:
    s = reach["seconds"]
    if s["mean"] is None:
        return f"not reached (0/{reach['reached'].split('/')[1]}; > {reach['seconds_lower_bound_mean']:.0f} s)"
    sd = f" ± {s['sd']:.0f}" if s["sd"] else ""
    return f"{s['mean']:.0f}{sd} s ({reach['reached']})"


def tables(rec: dict[str, Any]) -> str:
    """The summary tables of one record."""
    s = rec["summary"]
    full = s["full_miou"]
    out = [
        f"Fully-labelled reference: mIoU {full['mean']:.3f} ± {full['sd']:.3f} "
        f"({full['seeds']} seeds); targets "
        + ", ".join(f"{float(k):.0%} = {v:.3f}" for k, v in s["targets_miou"].items())
        + f"; common effort horizon {s['horizon_seconds']:.0f} s.",
        "",
        "| arm | ALC (mean ± sd) | "
        + " | ".join(f"effort to {float(k):.0%}" for k in s["targets_miou"])
        + " |",
        "|---|---|" + "---|" * len(s["targets_miou"]),
    ]
    for arm, a in s["arms"].items():
        reach = " | ".join(_secs(a["effort_to_reach"][k]) for k in s["targets_miou"])
        out.append(
            f"| {arm} | {a['alc']['mean']:.3f} ± {a['alc']['sd']:.3f} | {reach} |"
        )
    out += [
        "",
        "| arm | baseline | ALC difference (mean, 95 % CI) | better | effort ratio 90 % | effort ratio 95 % | never 1 sd below |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in s["comparisons"]:
        d = c["alc_difference"]
        r = []
        for k in ("0.9", "0.95"):
            e = c.get(f"effort_ratio_{k}")
            if e is None or e["ratio"] is None:
                r.append("-")
            else:
                r.append(("≤ " if e["upper_bound"] else "") + f"{e['ratio']:.2f}")
        never = c.get("never_one_sd_below")
        out.append(
            f"| {c['arm']} | {c['baseline']} | {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] "
            f"| {'yes' if c['better'] else 'no'} | {r[0]} | {r[1]} | {'-' if never is None else ('yes' if never else 'no')} |"
        )
    arms = list(s["arms"])
    out += ["", "| round | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    n = min(len(a["curve"]) for a in s["arms"].values())
    for k in range(n):
        cells = [
            f"{s['arms'][a]['curve'][k]['miou_mean']:.3f} ± {s['arms'][a]['curve'][k]['miou_sd']:.3f} "
            f"({s['arms'][a]['curve'][k]['seconds_mean']:.0f} s)"
            for a in arms
        ]
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"### {Path(p).name}\n")
        print(tables(json.loads(Path(p).read_text())))
        print()
