"""Array-job shards: a deterministic share of a scene's batches, per-shard status files.

A run split into ``N`` shards (``geolabel predict ... --shard I/N``, or ``--shard auto``
inside a SLURM array job) gives shard ``I`` a contiguous block of the scene's *batches*
(the fixed partition of the row-major tile list), never a re-cut of the tiles, so every
batch the model sees is the same as in a single-process run and the store bytes match.
Each shard records its tiles in its own manifest file (``shard-IIII-of-NNNN.jsonl``) and
its status in ``RUN_DIR/shards/shard-IIII-of-NNNN.json``; no shard writes ``run.json``
and none finalizes: ``geolabel finalize RUN_DIR`` does both once every tile is done.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from geolabel.errors import ConfigError

__all__ = [
    "SHARDS_DIR",
    "Shard",
    "begin_shard",
    "read_shard_status",
    "resolve_shard_option",
    "shard_batches",
    "shard_of_batch",
    "writer_name",
    "write_shard_status",
]

T = TypeVar("T")

#: folder of the per-shard status files inside a run folder.
SHARDS_DIR = "shards"

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``.

    .. versionadded:: 0.1
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        """Check ``0 <= index < count``."""
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"--shard {self.index}/{self.count}: needs 0 <= I < N (I is 0-based)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"3/16"`` -> ``Shard(3, 16)``.

        Raises:
            ConfigError: not of the form ``I/N`` with ``0 <= I < N``.
        """
        m = _SPEC.match(text)
        if m is None:
            raise ConfigError(f"--shard {text!r}: expected I/N (e.g. 0/4) or 'auto'")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Shard:
        """The shard of a SLURM array task (``SLURM_ARRAY_TASK_ID``/``_COUNT``/``_MIN``).

        Raises:
            ConfigError: the variables are missing or inconsistent.
        """
        try:
            task = int(env["SLURM_ARRAY_TASK_ID"])
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
            low = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        except (KeyError, ValueError) as err:
            raise ConfigError(
                "--shard auto: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set "
                "(not inside a SLURM array job); pass --shard I/N"
            ) from err
        index = task - low
        if not 0 <= index < count:
            raise ConfigError(
                f"--shard auto: array task {task} (min {low}, count {count}) is not in a "
                "contiguous range; submit with --array=0-(N-1)"
            )
        return cls(index, count)

    @property
    def name(self) -> str:
        """``shard-IIII-of-NNNN`` (the manifest writer and status file name)."""
        return f"shard-{self.index:04d}-of-{self.count:04d}"

    def __str__(self) -> str:
        """``I/N``."""
        return f"{self.index}/{self.count}"


def resolve_shard_option(
    value: str | None, env: Mapping[str, str] | None = None
) -> str | None:
    """The ``--shard`` option as ``I/N`` (``auto`` read from the SLURM environment).

    Raises:
        ConfigError: a malformed value, or ``auto`` outside an array job.
    """
    if value is None:
        return None
    if value.strip().lower() == "auto":
        return str(Shard.from_env(os.environ if env is None else env))
    return str(Shard.parse(value))


def _as_shard(shard: Shard | str | None) -> Shard | None:
    if shard is None or isinstance(shard, Shard):
        return shard
    return Shard.parse(shard)


def shard_of_batch(k: int, n_batches: int, count: int) -> int:
    """The shard that owns batch ``k`` of ``n_batches`` (contiguous blocks)."""
    return (k * count) // n_batches if n_batches else 0


def shard_batches(batches: Sequence[T], shard: Shard | str | None) -> list[T]:
    """The shard's contiguous block of ``batches`` (all of them when unsharded)."""
    s = _as_shard(shard)
    if s is None:
        return list(batches)
    n = len(batches)
    return [
        b for k, b in enumerate(batches) if shard_of_batch(k, n, s.count) == s.index
    ]


def writer_name(shard: Shard | str | None) -> str:
    """The manifest writer of a (possibly unsharded) run."""
    s = _as_shard(shard)
    return "main" if s is None else s.name


def _write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def begin_shard(
    out: Path, shard: Shard | str, config: dict[str, Any], model: dict[str, Any]
) -> Path:
    """Record that a shard started (status ``running``), with the run's config."""
    s = _as_shard(shard)
    assert s is not None
    doc = {
        "shard": s.name,
        "index": s.index,
        "count": s.count,
        "status": "running",
        "started": time.time(),
        "pid": os.getpid(),
        "config": config,
        "model": model,
    }
    return _write_json(out / SHARDS_DIR / f"{s.name}.json", doc)


def write_shard_status(out: Path, shard: Shard | str, doc: dict[str, Any]) -> Path:
    """Write a finished shard's status file (the run.json a shard would write).

    ``status`` is ``done`` when every tile of the shard's share is done, else
    ``incomplete``.
    """
    s = _as_shard(shard)
    assert s is not None
    ok = all(sc.get("status") == "done" for sc in doc.get("scenes", []))
    full = {
        "shard": s.name,
        "index": s.index,
        "count": s.count,
        "status": "done" if ok else "incomplete",
        "finished": time.time(),
        **doc,
    }
    return _write_json(out / SHARDS_DIR / f"{s.name}.json", full)


def read_shard_status(out: Path) -> list[dict[str, Any]]:
    """Every shard status file of a run folder, sorted by name (unreadable ones skipped)."""
    folder = out / SHARDS_DIR
    docs = []
    for p in sorted(folder.glob("shard-*.json")) if folder.is_dir() else []:
        try:
            docs.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return docs
