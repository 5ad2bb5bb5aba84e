"""CPU seconds by stage of one ``predict`` run, measured in process.

Wraps the functions each stage runs (reads, the model call, weights, store chunk I/O,
blending, the finalize sinks, the COG publishing) and adds up their ``thread_time``:
CPU time of the thread that ran them, so work in stage threads is counted where it is
done and time spent waiting for a core is not. Prints one line per stage, largest
first, in seconds and milliseconds per tile.

Usage: .venv/bin/python benchmarks/stage_cpu.py SCENE SPEC [--tile 1024]
       [--precision bf16] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geolabel.execution.tile_loop as tile_loop
import geolabel.finalize as fin
import geolabel.io.raster as raster
import geolabel.io.store as store
import geolabel.stitch.outputs as outputs
import geolabel.stitch.stream as stream
import geolabel.tasks as tasks
import geolabel.uncertainty.sinks as sinks
from geolabel.config import RunConfig
from geolabel.models.torch_ import TorchBackend
from geolabel.pipeline import run_predict

CPU: defaultdict[str, float] = defaultdict(float)
_LOCK = threading.Lock()


def _timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its thread CPU time to ``label``."""
    func: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            with _LOCK:
                CPU[label] += time.thread_time() - t0

    setattr(owner, name, wrapper)


def main() -> None:
    """Run predict once and print the CPU seconds of each stage."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene")
    ap.add_argument("spec")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    for owner, name, label in (
        (tile_loop, "read_batch", "read + normalise"),
        (TorchBackend, "predict", "model (calling thread)"),
        (tasks, "split_contribution", "weights (split_contribution)"),
        (store.RunStore, "_write_chunk", "store write (encode + file)"),
        (store.RunStore, "read_core", "store read (core)"),
        (fin, "blend_core", "blend (gather + normalise + argmax)"),
        (stream, "blend_core", "blend (gather + normalise + argmax)"),
        (outputs.MaskSink, "write", "sink: mask"),
        (outputs.ProbSink, "write", "sink: confidence / probabilities"),
        (sinks.UncertaintySink, "write", "sink: uncertainty"),
        (sinks.TileLayerSink, "write", "sink: tile layer"),
        (raster.CogWriter, "close", "COG publish (calling threads)"),
    ):
        _timed(owner, name, label)
    out = Path(tempfile.mkdtemp(prefix="geolabel-stage-cpu-"))
    config = RunConfig(
        scenes=(a.scene,),
        model=a.spec,
        out=str(out),
        tile_size=a.tile,
        batch_size=1,
        device="cpu",
        precision=a.precision,
        threads=a.threads,
        probabilities=False,
        vectors=False,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_predict(config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    shutil.rmtree(out, ignore_errors=True)
    scene = res.scenes[0]
    print(
        f"wall {wall:.2f} s, process CPU {cpu:.2f} s, {scene.tiles} tiles, {scene.status}"
    )
    for label, seconds in sorted(CPU.items(), key=lambda kv: -kv[1]):
        print(
            f"  {label:50s} {seconds:7.2f} s {1000 * seconds / scene.tiles:7.1f} ms/tile"
        )


if __name__ == "__main__":
    main()
