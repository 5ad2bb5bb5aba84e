"""The record that a scene's outputs are finished, so a re-run does not rewrite them.

Re-running a finished run used to finalize every scene again: the outputs were
rewritten (new modification times, and a failure on a read-only copy). After a scene
is finalized, ``SCENE_DIR/.finished.json`` records the run token, the settings that
only finalize reads (compression, which outputs) and the outputs; a re-run whose token
and settings match and whose outputs all exist reuses them untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["FINISHED_NAME", "read_finished", "write_finished"]

FINISHED_NAME = ".finished.json"


def read_finished(
    sdir: Path, token: str, settings: dict[str, Any]
) -> dict[str, str] | None:
    """The finished outputs (role -> path) of ``sdir`` if they fit, else ``None``."""
    try:
        doc = json.loads((sdir / FINISHED_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("token") != token:
        return None
    if doc.get("settings") != json.loads(json.dumps(settings, default=str)):
        return None
    outputs = doc.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    if not all(isinstance(p, str) and Path(p).is_file() for p in outputs.values()):
        return None
    return {str(k): str(v) for k, v in outputs.items()}


def write_finished(
    sdir: Path, token: str, settings: dict[str, Any], outputs: dict[str, str]
) -> None:
    """Record ``outputs`` as finished (written to a temporary name, then renamed)."""
    doc = {"token": token, "settings": settings, "outputs": outputs}
    tmp = sdir / f"{FINISHED_NAME}.{os.getpid()}.partial"
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    tmp.replace(sdir / FINISHED_NAME)
