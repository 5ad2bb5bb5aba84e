"""The per-tile run manifest: append-only JSON lines, one file per writer.

A tile is recorded ``done`` only after its store writes have returned. Each record is
one line, flushed and fsynced; a line cut short by a crash is ignored on reading. The
last record of a tile wins. Shards write their own files, so writers never share one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Manifest", "read_manifest"]


class Manifest:
    """An append-only record of tile states for one writer.

    Args:
        folder: the scene's manifest folder.
        writer: a name unique to this writer (``main``, ``shard-0003-of-0016``).
    """

    def __init__(self, folder: Path, writer: str = "main") -> None:
        """Open the writer's file for appending."""
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / f"{writer}.jsonl"
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived
        self._lock = threading.Lock()  # the pipeline records from two threads

    def record(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows (each needs ``tile_id`` and ``status``) durably."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        with self._lock:
            self._f.write(text)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> Manifest:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """The latest record of every tile over all writers' files (sorted by name)."""
    state: dict[str, dict[str, Any]] = {}
    if not folder.exists():
        return state
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn last line of a crashed writer
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                prev = state.get(row["tile_id"])
                if (
                    prev is None
                    or prev.get("status") != "done"
                    or row.get("status") == "done"
                ):
                    state[row["tile_id"]] = row
    return state
