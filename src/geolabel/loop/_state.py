"""``loop.json``: what a labelling loop has done, written after each durable step.

A round's steps are ``trained`` (round 0 uses the base model as it is),
``predicted`` and ``prioritized``; each is recorded only after its outputs are on disk,
and the file itself is replaced atomically (write, fsync, rename), so after a kill
the loop redoes at most the step that was running. Every model version stays in
``models/`` and its metrics stay in its round's entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geolabel.errors import RunStateError

__all__ = ["LoopState", "RoundState"]

VERSION = 1


@dataclass(slots=True)
class RoundState:
    """One round: the model it used and the steps done."""

    index: int
    model: str  # spec path, relative to the loop folder where inside it
    model_id: str
    labels_at_start: int
    trained: bool = False
    predicted: bool = False
    prioritized: bool = False
    train_metrics: dict[str, Any] = field(default_factory=dict)
    predict_metrics: dict[str, Any] = field(default_factory=dict)
    run: str = ""
    queue: str = ""
    queued: int = 0
    scenes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Every step of the round is recorded."""
        return self.trained and self.predicted and self.prioritized


@dataclass(slots=True)
class LoopState:
    """The whole loop (see the module doc)."""

    path: Path
    settings: dict[str, Any]
    rounds: list[RoundState] = field(default_factory=list)

    @classmethod
    def load_or_new(cls, out: Path, settings: dict[str, Any]) -> LoopState:
        """Read ``out/loop.json`` or start a new loop with ``settings``.

        Raises:
            RunStateError: the file is unreadable, or holds a loop with other
                settings (scenes, base model, labels).
        """
        path = out / "loop.json"
        if not path.exists():
            return cls(path, dict(settings))
        try:
            doc = json.loads(path.read_text())
            rounds = [RoundState(**r) for r in doc["rounds"]]
            recorded = doc["settings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunStateError(f"{path}: unreadable loop record: {err}") from err
        keys = ("scenes", "model", "labels")
        if any(recorded.get(k) != settings.get(k) for k in keys):
            diff = [k for k in keys if recorded.get(k) != settings.get(k)]
            raise RunStateError(
                f"{path}: holds a loop with other {', '.join(diff)}; "
                "choose another --out"
            )
        return cls(path, recorded | dict(settings), rounds)

    def save(self) -> None:
        """Write atomically (the previous record stays whole until the rename)."""
        doc = {
            "version": VERSION,
            "settings": self.settings,
            "rounds": [asdict(r) for r in self.rounds],
        }
        tmp = self.path.with_name(self.path.name + ".partial")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "loop": str(self.path),
            "rounds": [asdict(r) for r in self.rounds],
        }
