"""Temporary output names are per process; dead processes' temporaries are removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from affine import Affine

from geolabel.grid import SceneGrid
from geolabel.io.raster import CogWriter
from geolabel.io.tempnames import host_tag
from geolabel.io.vector import GpkgWriter


def _dead_pid() -> int:
    r = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(r.stdout)


def test_writers_use_their_own_temporaries(tmp_path: Path) -> None:
    host, dead, live = host_tag(), _dead_pid(), os.getppid()
    stale = tmp_path / f"a_mask.{host}-{dead}.partial.tif"
    other = tmp_path / f"a_mask.{host}-{live}.partial.tif"
    remote = tmp_path / "a_mask.otherhost-1.partial.tif"
    for p in (stale, other, remote):
        p.write_bytes(b"x")
    grid = SceneGrid((32, 32), Affine(10, 0, 0, 0, -10, 0), "EPSG:32633")
    w = CogWriter(tmp_path / "a_mask.tif", grid, count=1, dtype="uint8", nodata=None)
    assert w.tmp.name == f"a_mask.{host}-{os.getpid()}.partial.tif"
    assert not stale.exists() and other.exists() and remote.exists()
    w.abort()
    assert other.read_bytes() == b"x"  # another live writer's file is untouched
    g = GpkgWriter(tmp_path / "a.gpkg", None)
    assert g.tmp.name == f"a.{host}-{os.getpid()}.partial.gpkg"
