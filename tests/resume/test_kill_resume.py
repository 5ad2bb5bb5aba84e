"""SIGKILL a real ``geolabel predict`` at several points, resume, compare bytes.

Each case kills the CLI subprocess at one moment (right at start, after some tiles are
recorded done, while finalize writes each output), re-runs the same command and checks
that every output is byte-identical to an uninterrupted run, that only unfinished tiles
were redone and that no partial file is left under a final name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geolabel.io.manifest import read_manifest
from geolabel.testing import write_toy_spec

from ..conftest import LANDSAT8

GEOLABEL = str(Path(sys.executable).with_name("geolabel"))
OUTPUTS = ("_mask.tif", "_confidence.tif", "_probabilities.tif", "_predictions.gpkg")
BATCH = 2


class Case:
    """A scene, a slow toy model and the outputs of an uninterrupted run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scene = root / "foz.tif"
        with rasterio.open(LANDSAT8) as src:
            data = src.read(window=((600, 800), (900, 1130)))
            profile = src.profile | {
                "width": 230,
                "height": 200,
                "nodata": 0,
                "transform": src.window_transform(((600, 800), (900, 1130))),
            }
        data[:, :25, :40] = 0  # a nodata corner
        with rasterio.open(self.scene, "w", **profile) as dst:
            dst.write(data)
        self.spec = write_toy_spec(
            root / "toy.yaml", tile_size=64, mean=4200.0, std=3700.0, sleep=0.05
        )
        self.ref = root / "ref"
        run = subprocess.run(
            self.command(self.ref), capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        self.ref_bytes = {
            name: (self.ref / "foz" / f"foz{name}").read_bytes() for name in OUTPUTS
        }
        self.tiles = json.loads((self.ref / "run.json").read_text())["scenes"][0][
            "tiles"
        ]

    def command(self, out: Path) -> list[str]:
        """The predict command line writing into ``out``."""
        return [
            GEOLABEL,
            "-q",
            "predict",
            str(self.scene),
            "-m",
            str(self.spec),
            "-o",
            str(out),
            "--batch-size",
            str(BATCH),
        ]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """Reference run shared by the kill cases."""
    return Case(tmp_path_factory.mktemp("resume"))


def _kill_when(
    case: Case, out: Path, ready: Callable[[], bool], timeout: float = 60.0
) -> None:
    """Start predict, SIGKILL it as soon as ``ready()``; the run must not have ended."""
    proc = subprocess.Popen(
        case.command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, (
                f"run ended before the kill point: {proc.stderr.read()!r}"
            )  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _done(out: Path) -> set[str]:
    return {
        t
        for t, r in read_manifest(out / "foz" / "manifest").items()
        if r.get("status") == "done"
    }


def _finals_are_whole(case: Case, out: Path) -> None:
    """Every output under its final name is complete: byte-identical to the reference."""
    for name in OUTPUTS:
        path = out / "foz" / f"foz{name}"
        if path.exists():
            assert path.read_bytes() == case.ref_bytes[name], (
                f"{path.name} is not whole"
            )


def _resume_and_compare(case: Case, out: Path, done_before: set[str]) -> dict:
    lines_before = _manifest_lines(out)
    run = subprocess.run(case.command(out), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for name in OUTPUTS:
        got = (out / "foz" / f"foz{name}").read_bytes()
        assert got == case.ref_bytes[name], (
            f"foz{name} differs from the uninterrupted run"
        )
    leftovers = [p for p in out.rglob("*") if ".partial" in p.name]
    assert not leftovers, leftovers
    scene = json.loads((out / "run.json").read_text())["scenes"][0]
    assert scene["status"] == "done"
    assert scene["tiles_run"] == case.tiles - len(done_before)
    redone = {
        json.loads(line)["tile_id"]
        for line in _manifest_lines(out)[len(lines_before) :]
    }
    assert not redone & done_before, "finished tiles were redone"
    return scene


def _manifest_lines(out: Path) -> list[str]:
    path = out / "foz" / "manifest" / "main.jsonl"
    if not path.exists():
        return []
    return [
        line
        for line in path.read_text().splitlines(keepends=True)
        if line.endswith("\n")
    ]


def test_reference_covers_nodata_and_classes(case: Case) -> None:
    with rasterio.open(case.ref / "foz" / "foz_mask.tif") as ds:
        mask, nodata = ds.read(1), ds.nodata
    assert (mask[:25, :40] == nodata).all() and (
        mask != nodata
    ).sum() > 0.9 * mask.size - 25 * 40
    assert len(np.unique(mask[mask != nodata])) > 1
    assert case.tiles > 4 * BATCH


def test_kill_right_at_start(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _kill_when(case, out, lambda: (out / "foz").exists())
    _finals_are_whole(case, out)
    _resume_and_compare(case, out, _done(out))


def test_kill_during_tiles(case: Case, tmp_path: Path) -> None:
    out, k = tmp_path / "run", 5
    _kill_when(case, out, lambda: len(_done(out)) >= k)
    done = _done(out)
    assert k <= len(done) < case.tiles
    _finals_are_whole(case, out)
    scene = _resume_and_compare(case, out, done)
    assert 0 < scene["tiles_run"] < case.tiles


@pytest.mark.parametrize(
    "partial",
    [
        "foz_mask.partial.tif",
        "foz_probabilities.partial.cog",
        "foz_predictions.partial.gpkg",
    ],
)
def test_kill_during_finalize(case: Case, tmp_path: Path, partial: str) -> None:
    out = tmp_path / "run"
    stem, _, suffix = partial.partition(".")  # temporaries are NAME.HOST-PID.SUFFIX
    _kill_when(case, out, lambda: any((out / "foz").glob(f"{stem}.*.{suffix}")))
    done = _done(out)
    _finals_are_whole(case, out)
    scene = _resume_and_compare(case, out, done)
    if suffix == "partial.tif":  # written while the tiles run (streamed finalize)
        assert scene["tiles_run"] == case.tiles - len(done)
    else:  # made only once every tile is done: the COG copy, the vectors
        assert len(done) == case.tiles and scene["tiles_run"] == 0


def test_killed_twice_then_resumed(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _kill_when(case, out, lambda: len(_done(out)) >= 3)
    _kill_when(
        case, out, lambda: any((out / "foz").glob("foz_confidence.*.partial.tif"))
    )
    _finals_are_whole(case, out)
    _resume_and_compare(case, out, _done(out))
