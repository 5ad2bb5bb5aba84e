"""How many threads each I/O stage of a run gets, and at what CPU priority.

Shared by the tile loop (``execution/tile_loop.py``: decode and store stages) and
finalize (``finalize.py``: blend look-ahead), which sit on different layers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["STAGE_NICE", "lower_priority", "stage_depth", "stage_threads"]


def stage_threads() -> int:
    """Threads of each I/O stage (decode, store): half the cores, 1 to 4.

    The model's own threads (torch, ONNX) take the other half; on a 2-core machine
    each stage has one thread and the stages overlap with the model.
    """
    return max(1, min(4, (os.cpu_count() or 2) // 2))


#: How much lower than the model's the I/O stages' CPU priority is (Linux ``nice``).
STAGE_NICE = 10


def lower_priority() -> None:
    """Lower this thread's CPU priority by :data:`STAGE_NICE` (Linux; else nothing).

    The writer threads run so: the model's threads (torch, ONNX) then keep the cores
    they compute on (a 2-thread forward whose core is taken by a store write waits for
    it at every barrier), and the writes run in the gaps the model leaves, at full
    speed wherever a core is idle (e.g. beside a GPU model). They are off the model's
    path: only a full write queue stops the loop. The readers keep the model's
    priority: they feed it, and at a lower priority other processes on a shared
    machine starve them (measured: 151 s for 11 s of reads at 20000²).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), STAGE_NICE)


def stage_depth() -> int:
    """Batches waiting on each side of the model (bounds the loop's memory)."""
    return stage_threads() + 1
