"""Hook for further per-core outputs (uncertainty maps); none by default yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def extra_sinks(scene: Any, grid: Any, spec: Any, sdir: Path, config: Any, tags: dict[str, str]) -> list[Any]:
    """Sinks that finalize feeds besides the mask and probabilities."""
    return []
