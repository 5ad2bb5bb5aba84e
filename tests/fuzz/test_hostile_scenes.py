"""Hostile scenes among good ones: each refused in one line, fast and small; the good
scene's outputs are byte-identical to a run without them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ._hostile import error_lines, run_geolabel, write_hostile


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.tif"))
    }


def test_hostile_scenes_refused_and_others_unchanged(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    files = write_hostile(tmp_path / "in")
    assert max(p.stat().st_size for p in files.values()) < 1 << 20
    args = ["-m", str(toy_spec_path), "--bands", "1,2,3", "--no-vectors"]
    mixed = run_geolabel(
        "-q",
        "predict",
        str(scene_path),
        *map(str, files.values()),
        "-o",
        str(tmp_path / "mixed"),
        *args,
    )
    assert mixed.code == 1, mixed.stderr
    assert "Traceback" not in mixed.stderr
    lines = error_lines(mixed.stderr)
    assert len(lines) == len(files), mixed.stderr
    for line, (name, path) in zip(lines, files.items(), strict=True):
        assert line.startswith(f"geolabel: error: {path}: "), (name, line)
        assert line.count(str(path)) == 1
    assert mixed.seconds < 30 and mixed.max_rss_mib < 1024
    # nothing half-made for the refused scenes
    made = sorted(p.name for p in (tmp_path / "mixed").iterdir() if p.is_dir())
    assert made == [scene_path.stem]
    statuses = [s["status"] for s in json.loads(mixed.stdout)["scenes"]]
    assert statuses == ["done"] + ["failed"] * len(files)
    alone = run_geolabel(
        "-q", "predict", str(scene_path), "-o", str(tmp_path / "alone"), *args
    )
    assert alone.code == 0, alone.stderr
    assert _digests(tmp_path / "mixed") == _digests(tmp_path / "alone")
