"""Run stores are built under a temporary name; a killed builder's leftovers are removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from geolabel.grid import SceneGrid, TileGrid
from geolabel.io.store import RunStore
from geolabel.io.tempnames import host_tag
from geolabel.stitch._halo import halo_size


def _grid() -> TileGrid:
    from affine import Affine

    return TileGrid(
        SceneGrid((100, 90), Affine(10, 0, 0, 0, -10, 0), "EPSG:32633"), 32, 4
    )


def test_half_built_store_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = host_tag()
    path = tmp_path / "store.zarr"
    stale = tmp_path / f"store.zarr.{host}-{int(dead.stdout)}.partial"
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")  # a group without its token
    live = tmp_path / f"store.zarr.{host}-{os.getppid()}.partial"
    live.mkdir()
    other = tmp_path / "store.zarr.otherhost-1.partial"
    other.mkdir()
    grid = _grid()
    s = RunStore(path, grid, 3, halo_size(grid), "tok")
    assert s.root.attrs["token"] == "tok"
    assert not stale.exists() and live.exists() and other.exists()
    assert not list(tmp_path.glob(f"store.zarr.{host}-{os.getpid()}.partial"))
    again = RunStore(path, grid, 3, halo_size(grid), "tok")  # reopens, no rebuild
    assert again.root.attrs["token"] == "tok"
