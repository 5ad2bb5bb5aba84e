"""The run record, ``RUN_DIR/run.json``: one path rule for every writer and reader.

Every path in the record (``scenes[].scene``, ``scenes[].dir``, ``outputs[].scene``,
``outputs[].path``) is stored relative to the run folder, with ``/`` separators, so a
run folder reads the same from any working directory and can be moved together with
its inputs. URLs are kept as they are. Readers go through :func:`resolve_path`, which
also accepts the records older versions wrote (absolute paths, or paths relative to
the working directory of the ``predict`` call).

The record accumulates: ``predict a.tif -o RUN`` then ``predict b.tif -o RUN`` keeps
both scenes (:func:`merge_records`); re-running a scene replaces only its own entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from geolabel.errors import GeolabelError, RunStateError

__all__ = [
    "RUN_RECORD",
    "find_outputs",
    "matches_scene",
    "merge_records",
    "read_record",
    "record_path",
    "resolve_path",
    "scene_key",
    "to_record_paths",
    "write_record",
]

#: The record's file name inside a run folder.
RUN_RECORD = "run.json"
#: Keys of a scene entry and of an output entry that hold paths.
_SCENE_PATH_KEYS = ("scene", "dir")
_OUTPUT_PATH_KEYS = ("scene", "path")
#: Run-level output roles that each ``predict`` rewrites (not carried over).
_REWRITTEN_RUN_ROLES = frozenset({"project"})


def _is_url(value: str) -> bool:
    return "://" in value


def record_path(run_dir: str | Path, path: str | Path) -> str:
    """``path`` as the record stores it: relative to ``run_dir``, ``/``-separated.

    Both are made absolute against the working directory first (symbolic links are
    not followed, so a linked run folder keeps its own relative paths). URLs are
    returned unchanged.
    """
    text = str(path)
    if _is_url(text):
        return text
    rel = os.path.relpath(os.path.abspath(text), os.path.abspath(run_dir))
    return Path(rel).as_posix()


def resolve_path(run_dir: str | Path, value: str) -> Path:
    """The file a recorded path names, as a path usable from the working directory.

    Relative paths are taken against ``run_dir``. Records written before this rule
    held absolute paths (used as they are) or paths relative to the working directory
    of the ``predict`` call: when ``run_dir / value`` does not exist, ``value`` itself
    and then its trailing parts under ``run_dir`` (``tiles/run1/a/a_mask.tif`` ->
    ``RUN_DIR/a/a_mask.tif``) are tried. A path found nowhere is returned as
    ``run_dir / value``, so the caller's error names where it was looked for.
    """
    path = Path(value)
    if _is_url(value) or path.is_absolute():
        return path
    base = Path(run_dir)
    here = base / path
    if here.exists():
        return here
    if path.exists():
        return path
    parts = path.parts
    for k in range(1, len(parts)):
        tail = base.joinpath(*parts[k:])
        if tail.exists():
            return tail
    return here


def scene_key(run_dir: str | Path, value: str) -> str:
    """A scene's identity across calls: its absolute path (URLs as they are)."""
    if _is_url(value):
        return value
    return os.path.abspath(resolve_path(run_dir, value))


def matches_scene(run_dir: str | Path, recorded: str, query: str) -> bool:
    """True when ``query`` (a ``--scene`` value) names the recorded scene.

    A query matches the recorded path, the file's name or stem, or the same file
    given by any path from the working directory.
    """
    if query in (recorded, Path(recorded).name, Path(recorded).stem):
        return True
    return not _is_url(query) and scene_key(run_dir, recorded) == os.path.abspath(query)


def to_record_paths(run_dir: str | Path, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a record whose scene and output paths follow the record's rule.

    Paths already in the rule's form are unchanged; older forms are resolved with
    :func:`resolve_path` first.
    """

    def fix(entry: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
        out = dict(entry)
        for k in keys:
            v = out.get(k)
            if isinstance(v, str) and v and not _is_url(v):
                out[k] = record_path(run_dir, resolve_path(run_dir, v))
        return out

    new = dict(doc)
    new["scenes"] = [fix(s, _SCENE_PATH_KEYS) for s in doc.get("scenes", [])]
    new["outputs"] = [fix(o, _OUTPUT_PATH_KEYS) for o in doc.get("outputs", [])]
    return new


def merge_records(
    run_dir: str | Path,
    previous: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    untouched: Iterable[str] = (),
) -> dict[str, Any]:
    """The record after a call that wrote ``new`` into a run folder holding ``previous``.

    Scenes of ``new`` replace their earlier entries (in place, keeping the order of
    first appearance); earlier scenes not in ``new`` keep their entries and outputs,
    and so do the ``untouched`` scenes of ``new`` (refused before the call changed
    anything of theirs on disk) that have an earlier entry.
    Run-level outputs (``scene: null``) are kept unless ``new`` rewrote them
    (``project``). Everything else (config, model, timings) is ``new``'s.
    """
    cur = to_record_paths(run_dir, new)
    if not previous:
        return cur
    old = to_record_paths(run_dir, previous)
    known = {scene_key(run_dir, s["scene"]) for s in old["scenes"]}
    keep = {scene_key(run_dir, record_path(run_dir, s)) for s in untouched} & known
    cur["scenes"] = [
        s for s in cur["scenes"] if scene_key(run_dir, s["scene"]) not in keep
    ]
    cur["outputs"] = [
        o
        for o in cur["outputs"]
        if o.get("scene") is None or scene_key(run_dir, o["scene"]) not in keep
    ]
    fresh = {scene_key(run_dir, s["scene"]): s for s in cur["scenes"]}
    scenes = []
    for s in old["scenes"]:
        key = scene_key(run_dir, s["scene"])
        scenes.append(fresh.pop(key, s))
    scenes.extend(fresh.values())
    replaced = {scene_key(run_dir, s["scene"]) for s in cur["scenes"]}
    rewritten = {o.get("role") for o in cur["outputs"] if o.get("scene") is None}
    kept = [
        o
        for o in old["outputs"]
        if (
            o.get("scene") is None
            and o.get("role") not in rewritten | _REWRITTEN_RUN_ROLES
        )
        or (
            o.get("scene") is not None
            and scene_key(run_dir, o["scene"]) not in replaced
        )
    ]
    return {**cur, "scenes": scenes, "outputs": kept + cur["outputs"]}


def read_record(
    run_dir: str | Path,
    *,
    error: type[GeolabelError] = RunStateError,
    missing_ok: bool = False,
) -> dict[str, Any]:
    """The record of ``run_dir`` as a dict (``{}`` if absent and ``missing_ok``).

    Raises:
        GeolabelError: (of class ``error``) no ``run.json`` (unless ``missing_ok``),
            or not a JSON object.
    """
    rj = Path(run_dir) / RUN_RECORD
    try:
        text = rj.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        if missing_ok:
            return {}
        raise error(
            f"{run_dir}: no {RUN_RECORD}; run `geolabel predict` into it first"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{rj}: cannot read the run record: {err}") from err
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{rj}: not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise error(f"{rj}: not a run record (a JSON object)")
    return doc


def write_record(run_dir: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` (paths in the record's form) as ``run_dir/run.json``, atomically."""
    rj = Path(run_dir) / RUN_RECORD
    tmp = rj.with_name(f".{RUN_RECORD}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(rj)
    return rj


def find_outputs(
    run_dir: str | Path,
    doc: Mapping[str, Any],
    *,
    role: str | None = None,
    scene: str | None = None,
) -> list[tuple[str, str, Path]]:
    """``(recorded scene, role, resolved path)`` of the record's outputs.

    ``role`` keeps one role; ``scene`` keeps the outputs of the scenes it names
    (:func:`matches_scene`). Run-level outputs have the scene ``""``.
    """
    found = []
    for o in doc.get("outputs", []):
        if role is not None and o.get("role") != role:
            continue
        rec = o.get("scene") or ""
        if scene is not None and not (rec and matches_scene(run_dir, rec, scene)):
            continue
        found.append((rec, str(o.get("role")), resolve_path(run_dir, o["path"])))
    return found
