"""Reuse finished runs of an earlier record of the same experiment.

A long experiment often changes one arm (a new default) and keeps its baselines: the
baselines' runs need not be simulated again. An earlier record can lend

* a seed's fully-labelled reference, when scene, oracle, model and every setting
  except the arm list, baselines and targets are the same;
* a finished run of an arm, when in addition the arm sits at the same position of
  both arm lists (an arm's random source is keyed by seed and position) and its
  strategy is not an alias such as ``auto`` (whose meaning may change between
  versions).

A lent run is used only after the first model of its seed has been trained again
and scores exactly the round-0 quality the record holds, so a changed training code
or library cannot slip old curves into a new comparison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolabel.errors import ConfigError
from geolabel.priority.strategy import is_alias
from geolabel.simulation.config import parse_arm

__all__ = ["Reuse", "load_reuse"]

#: settings that may differ between a record and the experiment that reuses it
_FREE = {"arms", "baselines", "fractions", "seeds"}


@dataclass(slots=True)
class Reuse:
    """What an earlier record lends: references by seed and runs by (seed, arm)."""

    path: str
    full: dict[int, dict[str, Any]] = field(default_factory=dict)
    runs: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)

    def check_first_model(self, seed: int, arm: str, miou: float) -> None:
        """Refuse a lent run whose seed's first model no longer scores the same."""
        old = self.runs.get((seed, arm))
        if old is None:
            return
        was = float(old["rounds"][0]["miou"])
        if was != miou:
            raise ConfigError(
                f"--reuse {self.path}: seed {seed}'s first model scores mIoU "
                f"{miou!r} now but {was!r} in the record (training is not "
                "reproducible here: different library versions or threads); rerun "
                "without --reuse"
            )


def load_reuse(path: Path, current: dict[str, Any], arms: tuple[str, ...]) -> Reuse:
    """Read ``path`` and keep what ``current`` (a record without runs) may reuse.

    Raises:
        ConfigError: unreadable record, or another scene, oracle, model or setting.
    """
    try:
        old = json.loads(path.read_text())
        old_config = dict(old["config"])
        old_arms = list(old_config["arms"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--reuse {path}: not a simulate record ({err})") from err
    for key in ("scene", "oracle", "model", "first_labels", "holdout_columns"):
        if old.get(key) != current.get(key):
            raise ConfigError(
                f"--reuse {path}: {key} differs ({old.get(key)!r} there, "
                f"{current.get(key)!r} here)"
            )
    new_config = current["config"]
    for key in sorted(set(old_config) | set(new_config)):
        if key not in _FREE and old_config.get(key) != new_config.get(key):
            raise ConfigError(
                f"--reuse {path}: setting {key} differs ({old_config.get(key)!r} "
                f"there, {new_config.get(key)!r} here)"
            )
    out = Reuse(str(path))
    for entry in old.get("full_labels", []):
        out.full[int(entry["seed"])] = entry
    for run in old.get("runs", []):
        name = str(run["arm"])
        arm = parse_arm(name)
        if is_alias(arm.strategy.name) or arm.name.endswith("/auto"):
            continue  # "auto" may mean something else now
        if name not in arms or name not in old_arms:
            continue
        if arms.index(name) != old_arms.index(name):
            continue
        if len(run["rounds"]) != int(new_config["rounds"]) + 1:
            continue
        out.runs[(int(run["seed"]), name)] = run
    return out
