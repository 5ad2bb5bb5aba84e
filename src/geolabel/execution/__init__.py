"""How a scene's tiles run: its plan, the tile loop, executors (in process, dask.distributed,
dask-jobqueue), array-job shards, preemption and loading the run's model.

``plan.py`` (open and plan a scene, which tiles are pending), ``tile_loop.py`` (the one
read / model / write loop into a task's sink), ``executors.py`` and ``worker.py`` (where
batches run), ``shards.py``, ``preempt.py``, ``model_load.py``, ``finalize_run.py``
(is a sharded run complete). The scene runner above them is ``geolabel.scene_runner``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from geolabel.execution.preempt import (
    PREEMPTED_EXIT,
    Preempted,
    check_preempted,
    preemption_guard,
)
from geolabel.execution.shards import (
    Shard,
    resolve_shard_option,
    shard_batches,
    writer_name,
)

__all__ = [
    "PREEMPTED_EXIT",
    "Preempted",
    "Shard",
    "check_preempted",
    "preemption_guard",
    "resolve_shard_option",
    "shard_batches",
    "writer_name",
]
