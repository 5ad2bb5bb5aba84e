"""Fixtures of the cluster tests: a small smooth scene, the toy model, a reference run.

The reference is a plain single-process run; every distributed/sharded run must give
byte-identical COGs and GeoPackages.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from geolabel.config import RunConfig
from geolabel.pipeline import run_predict
from geolabel.testing import make_scene, write_toy_spec
from geolabel.testing.detectors import draw_square, write_square_detector_spec

BATCH = 2
SLEEP = 0.25


@dataclass(frozen=True)
class Case:
    """A scene, its toy spec and the outputs of a single-process run."""

    scene: Path
    spec: Path
    reference: Path

    def config(self, out: Path, **kw: object) -> RunConfig:
        """The run settings every test uses (only ``out`` and ``kw`` differ)."""
        return RunConfig(
            scenes=(str(self.scene),),
            model=str(self.spec),
            out=str(out),
            batch_size=BATCH,
            **kw,
        )  # type: ignore[arg-type]


def smooth_scene(path: Path, shape: tuple[int, int], seed: int = 0) -> Path:
    """A 3-band scene of smooth waves (few polygons: vectorising stays quick)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rng = np.random.default_rng(seed)
    bands = []
    for _ in range(3):
        fy, fx = rng.uniform(0.01, 0.04, 2).tolist()
        ph = float(rng.uniform(0, 6.28))
        bands.append(100 + 25 * np.sin(fy * rows + ph) * np.cos(fx * cols))
    return make_scene(path, data=np.stack(bands).astype(np.float32))


def done_rows(run: Path) -> Counter[str]:
    """How often each tile is recorded done in a run's manifests (safe during a run).

    Only the scenes' ``manifest/`` folders are read (never a walk of the run tree, whose
    ``.partial`` folders are renamed under a concurrent reader), and a line still being
    appended is skipped.
    """
    c: Counter[str] = Counter()
    for p in run.glob("*/manifest/*.jsonl"):
        try:
            text = p.read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("status") == "done":
                c[row["tile_id"]] += 1
    return c


def output_digests(run: Path) -> dict[str, str]:
    """sha256 of every published raster/vector output under a run folder."""
    files = [
        p
        for p in sorted(run.rglob("*"))
        if p.suffix in (".tif", ".gpkg") and ".partial" not in p.name
    ]
    return {
        p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
    }


def make_case(root: Path, shape: tuple[int, int], **spec_kw: object) -> Case:
    """Write the scene and spec and run the reference once."""
    root.mkdir(parents=True, exist_ok=True)
    scene = smooth_scene(root / "scene.tif", shape)
    spec = write_toy_spec(root / "toy.yaml", **spec_kw)  # type: ignore[arg-type]
    case = Case(scene, spec, root / "reference")
    result = run_predict(case.config(case.reference))
    assert result.ok, [s.error for s in result.scenes]
    assert len(output_digests(case.reference)) >= 4
    return case


def squares_case(root: Path, task: str) -> tuple[Path, Path]:
    """Three drawn squares and the square detector spec of ``task`` (object tasks):
    a 90 x 101 scene, 48-px tiles with 10 px overlap, 16 tiles."""
    img = np.zeros((3, 90, 101), np.float32)
    for r, c, label, score in [(5, 23, 0, 0.9), (51, 51, 1, 0.65), (80, 92, 0, 0.4)]:
        draw_square(img, r, c, 9, label=label, score=score)
    scene = make_scene(root / "squares.tif", data=img, nodata=-1.0)
    spec = write_square_detector_spec(
        root / "spec.yaml", tile_size=48, overlap=10, task=task
    )
    return scene, spec


@pytest.fixture(scope="session")
def small_case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A 150 x 190 scene, 64-px tiles: 20 tiles in 10 batches of 2, 0.25 s per batch.

    The sleep leaves time to kill a worker or send SIGTERM while batches run.
    """
    return make_case(
        tmp_path_factory.mktemp("cluster-small"), (150, 190), tile_size=64, sleep=SLEEP
    )


def slurm_ready() -> str | None:
    """``None`` when a SLURM controller answers and a node is idle, else why not."""
    for tool in ("sbatch", "sinfo", "squeue"):
        if shutil.which(tool) is None:
            return f"{tool} not found (run .ci/slurm-up.sh as root to install and start SLURM)"
    try:
        r = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo failed: {err}"
    states = r.stdout.split()
    if r.returncode != 0 or not any(s.startswith(("idle", "mix")) for s in states):
        return f"no idle SLURM node (sinfo: {r.stdout.strip() or r.stderr.strip()}); run .ci/slurm-up.sh"
    return None


requires_slurm = pytest.mark.skipif(
    slurm_ready() is not None, reason=str(slurm_ready())
)
