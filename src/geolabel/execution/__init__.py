"""Execution beyond one process: dask.distributed, dask-jobqueue, array-job shards, preemption.

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
