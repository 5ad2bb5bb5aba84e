"""Scene folders of a run: each scene keeps the folder the run record gave it.

A recorded scene keeps its folder across ``predict`` calls; a new file stem gets a
unique name (``x``, ``x-1``, ...), and no folder may lie outside the run folder (a scene
named ``...tif`` has the stem ``..``; a link in the run folder may point elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolabel.errors import RunStateError
from geolabel.io.run_record import record_path, scene_key
from geolabel.io.scene import Scene

__all__ = ["SceneDirs"]


@dataclass(slots=True)
class SceneDirs:
    """Scene folder names of a run: a recorded scene keeps its folder; new stems are unique.

    Two scenes with one file stem (``a/x.tif``, ``b/x.tif``) get ``x`` and ``x-1``, also
    when they are added to the run folder by separate calls.
    """

    out: Path
    recorded: dict[str, str] = field(default_factory=dict)  # scene key -> folder name

    @classmethod
    def from_record(cls, out: Path, doc: dict[str, Any]) -> SceneDirs:
        """The folders the run record ``doc`` of ``out`` assigns."""
        dirs = cls(out)
        for s in doc.get("scenes", []):
            if s.get("dir") and s.get("scene"):
                key = scene_key(out, str(s["scene"]))
                dirs.recorded[key] = Path(str(s["dir"])).name
        return dirs

    def folder(self, scene: Scene) -> Path:
        """The folder of ``scene`` (assigned on first use)."""
        key = scene_key(self.out, record_path(self.out, str(scene.path)))
        if key not in self.recorded:
            taken = set(self.recorded.values())
            name, k = scene.name, 0
            while name in taken:
                k += 1
                name = f"{scene.name}-{k}"
            self.recorded[key] = name
        sdir = self.out / self.recorded[key]
        root = self.out.resolve()
        if sdir.resolve() == root or not sdir.resolve().is_relative_to(root):
            # a scene named "...tif" (stem ".."), or a link in the run folder elsewhere
            raise RunStateError(
                f"{scene.path}: its output folder {sdir} would lie outside the run "
                f"folder {self.out}; remove {sdir} or rename the scene"
            )
        return sdir
