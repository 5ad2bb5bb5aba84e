"""Style a scene's outputs and write the run's QGIS project (the finalize/predict hooks).

``style_scene_outputs`` runs at the end of finalize: class names for GDAL beside the
mask, ``.qml`` sidecars beside every raster, default styles inside every GeoPackage.
``write_run_project`` runs at the end of predict and writes ``RUN_DIR/run.qgs``.
``style_run`` does both again for a finished run folder from its ``run.json`` (for
outputs added later, such as ``next_to_label.gpkg``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rasterio

from geolabel.errors import GeolabelError
from geolabel.io.run_record import (
    RUN_RECORD,
    find_outputs,
    read_record,
    record_path,
    resolve_path,
    to_record_paths,
    write_record,
)
from geolabel.models.spec import load_spec
from geolabel.qgis._gpkg import ClassColours, embed_styles, layer_styles
from geolabel.qgis._project import build_groups, write_project
from geolabel.qgis._raster import (
    write_category_names,
    write_raster_qml,
)

__all__ = [
    "PROJECT_NAME",
    "SceneOutputs",
    "record_project",
    "recorded_scenes",
    "style_run",
    "style_scene_outputs",
    "style_unstyled",
    "write_run_project",
]

logger = logging.getLogger(__name__)

#: The project file of a run folder.
PROJECT_NAME = "run.qgs"

#: ``(scene name, scene path, role -> output path, bands used)``.
SceneOutputs = tuple[str, str, dict[str, str], Sequence[int] | None]


def _classes_of(spec: Any | None, mask: Path | None) -> tuple[list[str], ClassColours]:
    """Class names and colours: from the spec, else from the mask's tags and palette."""
    if spec is not None:
        names = list(spec.class_names)
        colours = {c.name: c.rgb for c in sorted(spec.classes, key=lambda c: c.index)}
        return names, colours
    if mask is None:
        return [], {}
    with rasterio.open(mask) as ds:
        names = [n for n in ds.tags().get("CLASSES", "").split(",") if n]
        cmap = ds.colormap(1)
    return names, {n: cmap[i][:3] for i, n in enumerate(names) if i in cmap}


def style_scene_outputs(
    outputs: Mapping[str, str], spec: Any | None = None
) -> dict[str, str]:
    """Style one scene's outputs for QGIS; returns the new files as ``role -> path``.

    Args:
        outputs: the scene's outputs, ``role -> path`` (as finalize returns them).
        spec: the model spec (class names and colours); ``None`` reads them from the
            mask's ``CLASSES`` tag and colour table.

    Returns:
        ``style:ROLE`` -> the ``.qml`` beside each raster, ``categories:mask`` -> the
        mask's ``.aux.xml``. GeoPackages are styled in place (``layer_styles``).

    Raises:
        GeolabelError: a mask without colour table, or a class missing from it.
    """
    mask = Path(outputs["mask"]) if "mask" in outputs else None
    names, colours = _classes_of(spec, mask)
    new: dict[str, str] = {}
    for role, p in sorted(outputs.items()):
        path = Path(p)
        if ":" in role or not path.is_file():
            continue
        if path.suffix == ".tif":
            new[f"style:{role}"] = str(write_raster_qml(path, role, class_names=names))
            if role == "mask":
                new["categories:mask"] = str(write_category_names(path, names))
        elif path.suffix == ".gpkg":
            embed_styles(path, layer_styles(path, class_colours=colours))
    logger.debug("styled %d outputs", len(new))
    return new


def write_run_project(
    out: Path, scenes: Sequence[SceneOutputs], spec: Any | None = None
) -> Path | None:
    """Write ``out/run.qgs`` holding every finished scene and the run-level layers.

    Run-level GeoPackages in ``out`` (``next_to_label.gpkg``) are styled in place first.
    Returns the project path, or ``None`` when no scene finished.

    Raises:
        GeolabelError: an output cannot be styled (see :func:`style_scene_outputs`).
    """
    if not scenes:
        return None
    first_mask = next((Path(o["mask"]) for _, _, o, _ in scenes if "mask" in o), None)
    names, colours = _classes_of(spec, first_mask)
    run_vectors = sorted(
        p for p in out.glob("*.gpkg") if not p.name.endswith(".partial.gpkg")
    )
    for p in run_vectors:
        embed_styles(p, layer_styles(p, class_colours=colours))
    groups = build_groups(
        scenes, class_names=names, class_colours=colours, run_vectors=run_vectors
    )
    return write_project(out / PROJECT_NAME, groups, title=f"geolabel {out.name}")


def style_unstyled(
    results: Sequence[Any], spec: Any | None = None
) -> list[dict[str, Any]]:
    """Style the finished scenes that finalize did not style (detection, classification).

    Args:
        results: :class:`geolabel.pipeline.SceneResult` objects.
        spec: the model spec (class names and colours).

    Returns:
        run.json entries ``{"scene", "role": "style:ROLE", "path"}`` of the new files
        (paths as written, not yet in the record's form).
    """
    entries: list[dict[str, Any]] = []
    for r in results:
        if r.status != "done" or not r.outputs:
            continue
        if not any(role.startswith("style:") for role in r.outputs):
            styled = style_scene_outputs(r.outputs, spec)
            entries += [
                {"scene": r.scene, "role": k, "path": v} for k, v in styled.items()
            ]
    return entries


def _is_style(role: str) -> bool:
    return role.startswith(("style:", "categories:")) or role == "project"


def recorded_scenes(run_dir: Path, doc: Mapping[str, Any]) -> list[SceneOutputs]:
    """The finished scenes of a run record with their outputs (paths resolved).

    Style entries are left out; scenes without outputs are skipped.
    """
    scenes: list[SceneOutputs] = []
    for s in doc.get("scenes", []):
        if s.get("status") != "done":
            continue
        outs = {
            role: str(path)
            for rec, role, path in find_outputs(run_dir, doc)
            if rec == s["scene"] and not _is_style(role)
        }
        if not outs:
            continue
        folder = resolve_path(run_dir, s["dir"]) if s.get("dir") else None
        name = (folder or Path(next(iter(outs.values()))).parent).name
        recorded = str(s["scene"])  # URLs stay URLs (a Path would mangle https://)
        scene = recorded if "://" in recorded else str(resolve_path(run_dir, recorded))
        scenes.append((name, scene, outs, s.get("bands")))
    return scenes


def record_project(
    run_dir: Path, doc: Mapping[str, Any], spec: Any | None = None
) -> list[dict[str, Any]]:
    """Write ``run_dir/run.qgs`` over every finished scene of the record ``doc``.

    Returns:
        the run.json entry ``{"scene": None, "role": "project", "path": ...}`` (path in
        the record's form), or none when no scene finished.

    Raises:
        GeolabelError: an output cannot be styled (see :func:`style_scene_outputs`).
    """
    project = write_run_project(run_dir, recorded_scenes(run_dir, doc), spec)
    if project is None:
        return []
    return [{"scene": None, "role": "project", "path": record_path(run_dir, project)}]


def _run_spec(doc: dict[str, Any]) -> Any | None:
    """The run's model spec if its file is still there (for class colours), else ``None``."""
    src = doc.get("model", {}).get("spec")
    if not src or not Path(str(src)).is_file():
        return None
    try:
        return load_spec(str(src))
    except GeolabelError as err:
        logger.info(
            "run spec %s not loadable (%s); class colours come from the mask", src, err
        )
        return None


def style_run(run_dir: Path) -> dict[str, Any]:
    """Style every output of a finished run folder and (re)write its project.

    ``run.json`` gets the ``style``/``categories``/``project`` entries (rewritten
    atomically). Returns ``{"project": path, "styled": [paths...]}``.

    Raises:
        GeolabelError: no ``run.json`` (or not JSON), or no finished scene.
    """
    doc = to_record_paths(run_dir, read_record(run_dir, error=GeolabelError))
    entries = [o for o in doc.get("outputs", []) if not _is_style(str(o.get("role")))]
    doc["outputs"] = entries
    spec = _run_spec(doc)
    scenes = recorded_scenes(run_dir, doc)
    if not scenes:
        raise GeolabelError(
            f"{run_dir / RUN_RECORD}: no finished scene with outputs to style"
        )
    styled = []
    for s in doc.get("scenes", []):
        outs = {
            role: str(path)
            for rec, role, path in find_outputs(run_dir, doc)
            if rec == s["scene"]
        }
        if s.get("status") == "done" and outs:
            styled += [
                {"scene": s["scene"], "role": r, "path": record_path(run_dir, p)}
                for r, p in style_scene_outputs(outs, spec).items()
            ]
    doc["outputs"] = entries + styled
    project = record_project(run_dir, doc, spec)
    doc["outputs"] += project
    write_record(run_dir, doc)
    return {
        "project": str(run_dir / PROJECT_NAME),
        "styled": [str(resolve_path(run_dir, e["path"])) for e in styled + project],
    }
