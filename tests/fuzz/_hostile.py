"""The hostile files of issue 16, written at test time (a few KB each), and a runner."""

from __future__ import annotations

import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .._tiff import write_tiff

#: name -> write_tiff keywords: what each file declares.
HOSTILE = {
    "bands": {"samples": 40000, "width": 4, "height": 4},
    "huge": {"width": 10**6, "height": 10**6, "tile": 1 << 16, "sparse": True},
    "bomb": {
        "width": 100_000,
        "height": 100_000,
        "tile": 1024,
        "compression": 8,
        "payload": bytes(1 << 20),
    },
    "strip": {
        "width": 20000,
        "height": 20000,
        "compression": 8,
        "payload": bytes(1 << 16),
    },
    "complex": {"bits": 64, "sample_format": 6, "samples": 3},
}


def write_hostile(folder: Path) -> dict[str, Path]:
    """Write every :data:`HOSTILE` file into ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {k: write_tiff(folder / f"{k}.tif", **kw) for k, kw in HOSTILE.items()}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mib: float


def run_geolabel(*args: str, timeout: float = 120) -> Outcome:
    """``geolabel ARGS`` in a fresh process: exit code, output, wall time, peak RSS.

    The peak RSS is the largest of all children waited for so far (it never
    decreases), so it bounds this run's from above.
    """
    code = "from geolabel.cli.main import main; main()"
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    took = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Outcome(r.returncode, r.stdout, r.stderr, took, rss)


def error_lines(stderr: str) -> list[str]:
    """The ``geolabel: error:`` lines of a run's stderr."""
    return [ln for ln in stderr.splitlines() if ln.startswith("geolabel: error:")]


def mutate(original: bytes, rng: random.Random, i: int) -> bytes:
    """Mutation ``i`` of a real file: byte flips where the IFDs and tag arrays live,
    a truncation, or a 4-byte value (an offset, a count) pointed anywhere."""
    data = bytearray(original)
    kind = i % 3
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(min(len(data), 8192))] = rng.randrange(256)
    elif kind == 1:
        data = data[: rng.randrange(8, len(data))]
    else:
        at = rng.randrange(4, min(len(data), 4096) - 4)
        data[at : at + 4] = rng.randrange(2**32).to_bytes(4, "little")
    return bytes(data)
