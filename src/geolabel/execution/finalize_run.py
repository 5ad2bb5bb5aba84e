"""``geolabel finalize RUN_DIR``: is a sharded run complete, and if not, what is missing.

The manifest is the truth: a run is ready when every tile of every scene is recorded
``done`` by some writer (whichever shard, or a resumed run). Then
:func:`geolabel.pipeline.finalize_run` finalizes the scenes exactly as a
single-process run would (the same code, nothing is re-run) and writes ``run.json``.
Otherwise :func:`check_run` says which tiles are missing and which shards own them,
and what each shard's status file says.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolabel.config import RunConfig
from geolabel.errors import GeolabelError, RunStateError
from geolabel.execution.plan import open_run_scene, plan_scene
from geolabel.execution.shards import read_shard_status, shard_of_batch
from geolabel.execution.tile_loop import batches_of
from geolabel.io.manifest import read_manifest
from geolabel.io.run_record import read_record
from geolabel.io.scene_dirs import SceneDirs
from geolabel.models.spec import load_spec

__all__ = ["RunCheck", "SceneCheck", "check_run"]


@dataclass(slots=True)
class SceneCheck:
    """Completeness of one scene of a sharded run.

    Attributes:
        scene: the scene path.
        tiles: tiles in the scene's grid.
        missing: ids of tiles not recorded ``done`` (row-major).
        failed: the missing tiles whose last record is ``failed``.
        by_shard: shard index -> its missing tile ids.
        error: why the scene could not be planned (it is then not counted as missing).
    """

    scene: str
    tiles: int = 0
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    by_shard: dict[int, list[str]] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class RunCheck:
    """Completeness of a sharded run folder.

    Attributes:
        out: the run folder.
        count: number of shards ``N``.
        shards: shard index -> status (``done``, ``incomplete``, ``running`` = started
            and not finished, or ``missing`` = no status file).
        scenes: per-scene completeness.
    """

    out: Path
    count: int
    shards: dict[int, str]
    scenes: list[SceneCheck]

    @property
    def ready(self) -> bool:
        """True when every tile of every plannable scene is done."""
        return all(not s.missing for s in self.scenes)

    @property
    def missing_shards(self) -> list[int]:
        """Shards that own tiles not done (sorted)."""
        return sorted({k for s in self.scenes for k in s.by_shard})

    def summary(self) -> str:
        """One line for the error message."""
        n_missing = sum(len(s.missing) for s in self.scenes)
        states = ", ".join(f"{k}: {self.shards[k]}" for k in self.missing_shards)
        return (
            f"{self.out}: not finalized: {n_missing} tiles not done, owned by shard(s) "
            f"{states} of {self.count}; re-submit those shards (--shard I/{self.count}, "
            "add --retry-failed for failed tiles) and finalize again"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report."""
        return {
            "run": str(self.out),
            "ready": self.ready,
            "shards": self.count,
            "shard_status": {str(k): v for k, v in sorted(self.shards.items())},
            "missing_shards": self.missing_shards,
            "scenes": [
                {
                    "scene": s.scene,
                    "tiles": s.tiles,
                    "missing": s.missing,
                    "failed": s.failed,
                    "error": s.error,
                    "missing_by_shard": {
                        str(k): v for k, v in sorted(s.by_shard.items())
                    },
                }
                for s in self.scenes
            ],
        }


def _config(doc: dict[str, Any]) -> RunConfig:
    names = {f.name for f in dataclasses.fields(RunConfig)}
    kw = {k: v for k, v in doc.items() if k in names}
    kw["scenes"] = tuple(kw["scenes"])
    if kw.get("bands") is not None:
        kw["bands"] = tuple(kw["bands"])
    return RunConfig(**kw)


def _load(out: Path) -> tuple[RunConfig, int, dict[int, str]]:
    docs = read_shard_status(out)
    if not docs:
        raise RunStateError(
            f"{out}: no shard status files in {out / 'shards'}; "
            "run `geolabel predict ... --shard I/N --out RUN_DIR` first"
        )
    counts = {int(d["count"]) for d in docs}
    if len(counts) != 1:
        raise RunStateError(
            f"{out}: shard status files disagree on the shard count "
            f"({sorted(counts)}); run all shards with one N"
        )
    count = counts.pop()
    shards = {i: "missing" for i in range(count)}
    for d in docs:
        shards[int(d["index"])] = str(d.get("status", "running"))
    return _config(docs[-1]["config"]), count, shards


def check_run(out: str | Path) -> tuple[RunConfig, RunCheck]:
    """The run's config and which tiles/shards are missing.

    Raises:
        RunStateError: no (or inconsistent) shard status files.
    """
    out = Path(out)
    config, count, shards = _load(out)
    spec = load_spec(config.model)
    names = SceneDirs.from_record(out, read_record(out, missing_ok=True))
    scenes = []
    for path in config.scenes:
        sc = SceneCheck(scene=str(path))
        scenes.append(sc)
        try:
            scene = open_run_scene(path, spec, config)
            grid, _ = plan_scene(scene, spec, config)
        except GeolabelError as err:
            sc.error = str(err)
            continue
        state = read_manifest(names.folder(scene) / "manifest")
        batches = batches_of(grid, config.batch_size)
        sc.tiles = len(grid)
        for k, batch in enumerate(batches):
            for t in batch:
                row = state.get(t.id, {})
                if row.get("status") == "done":
                    continue
                sc.missing.append(t.id)
                if row.get("status") == "failed":
                    sc.failed.append(t.id)
                sc.by_shard.setdefault(
                    shard_of_batch(k, len(batches), count), []
                ).append(t.id)
    return config, RunCheck(out, count, shards, scenes)
