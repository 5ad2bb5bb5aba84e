"""The read-only ceiling: decode the same windows geolabel reads, and nothing else.

``read_windows(scene, windows, threads)`` reads every window (in the file's own data
type, all bands) with ``threads`` threads, each with its own rasterio dataset, and
returns the scene's Mpix/s over the wall time. bench_predict.py reports geolabel's
throughput with a near-null model divided by this: how close geolabel's machinery
(normalising, the model call, softmax, blending, the run store, the COGs) comes to
the disk and the decoder.

Usage: .venv/bin/python benchmarks/read_only.py SCENE --tile 1024 --overlap 64 --threads 2
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import rasterio
from rasterio.windows import Window

from geolabel.grid import SceneGrid, TileGrid


def grid_windows(
    scene: Path, tile: int | tuple[int, int], overlap: int
) -> list[Window]:
    """The read windows of geolabel's tile grid over ``scene``."""
    with rasterio.open(scene) as ds:
        scene_grid = SceneGrid((ds.height, ds.width), ds.transform, None)
        grid = TileGrid(scene_grid, tile, overlap)
    return [
        Window(t.read_window.col_off, t.read_window.row_off, *t.read_window.shape[::-1])
        for t in grid
    ]


def read_windows(scene: Path, windows: list[Window], threads: int) -> dict[str, Any]:
    """Read ``windows`` in ``threads`` threads; seconds and Mpix/s of the scene."""
    local = threading.local()
    opened: list[Any] = []
    lock = threading.Lock()

    def read(w: Window) -> int:
        ds = getattr(local, "ds", None)
        if ds is None:
            ds = local.ds = rasterio.open(scene)
            with lock:
                opened.append(ds)
        return int(ds.read(window=w).nbytes)

    with rasterio.open(scene) as ds:
        mpix = ds.width * ds.height / 1e6
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        nbytes = sum(pool.map(read, windows))
    seconds = time.perf_counter() - t0
    for ds in opened:
        ds.close()
    return {
        "threads": threads,
        "windows": len(windows),
        "seconds": seconds,
        "mpix_s": mpix / seconds,
        "decoded_mib": nbytes / 2**20,
    }


def main() -> None:
    """Print the read-only throughput of SCENE as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene", type=Path)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    wins = grid_windows(a.scene, a.tile, a.overlap)
    print(json.dumps(read_windows(a.scene, wins, a.threads)))


if __name__ == "__main__":
    main()
