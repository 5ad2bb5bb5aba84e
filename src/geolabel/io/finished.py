"""The record that a scene's outputs are finished, so a re-run does not rewrite them.

Re-running a finished run used to finalize every scene again: the outputs were
rewritten (new modification times, and a failure on a read-only copy). After a scene
is finalized, ``SCENE_DIR/.finished.json`` records the run token, the settings that
only finalize reads (compression, which outputs) and the outputs; a re-run whose token
and settings match and whose outputs all exist reuses them untouched.

``SCENE_DIR/.source.json`` records the size and modification time of a local scene
file when its scene folder is first used: a re-run or resume on a file changed in
place since (the same grid, other pixels) is refused in one line instead of keeping
stale outputs or mixing tiles of two versions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from geolabel.errors import SceneReadError

__all__ = [
    "FINISHED_NAME",
    "check_source",
    "read_finished",
    "record_source",
    "write_finished",
]

FINISHED_NAME = ".finished.json"
SOURCE_NAME = ".source.json"


def _identity(path: object) -> dict[str, int] | None:
    if not isinstance(path, Path):  # URLs and STAC items: no local file to compare
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_source(sdir: Path, path: object) -> None:
    """Refuse a scene file that changed since ``sdir`` was made from it.

    Raises:
        SceneReadError: size or modification time differ from ``.source.json``.
    """
    now = _identity(path)
    try:
        was = json.loads((sdir / SOURCE_NAME).read_text())
    except (OSError, ValueError):
        return
    if now is None or not isinstance(was, dict) or was == now:
        return
    raise SceneReadError(
        f"{path}: changed since its outputs in {sdir} were started (size or "
        "modification time differ); re-run with --overwrite to redo it, or use a new --out"
    )


def record_source(sdir: Path, path: object) -> None:
    """Record the scene file's size and modification time (once per scene folder)."""
    now = _identity(path)
    target = sdir / SOURCE_NAME
    if now is None or target.exists():
        return
    tmp = sdir / f"{SOURCE_NAME}.{os.getpid()}.partial"
    tmp.write_text(json.dumps(now) + "\n")
    tmp.replace(target)


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
