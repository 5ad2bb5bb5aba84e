"""Style a scene's outputs and write the run's QGIS project (the finalize/predict hooks).

``style_scene_outputs`` runs at the end of finalize: class names for GDAL beside the
mask, ``.qml`` sidecars beside every raster, default styles inside every GeoPackage.
``write_run_project`` runs at the end of predict and writes ``RUN_DIR/run.qgs``.
``style_run`` does both again for a finished run folder from its ``run.json`` (for
outputs added later, such as ``next_to_label.gpkg``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rasterio

from geolabel.errors import GeolabelError
from geolabel.qgis._gpkg import ClassColours, embed_styles, layer_styles
from geolabel.qgis._project import build_groups, write_project
from geolabel.qgis._raster import (
    write_category_names,
    write_raster_qml,
    write_text_atomic,
)

__all__ = [
    "PROJECT_NAME",
    "SceneOutputs",
    "project_entries",
    "style_run",
    "style_scene_outputs",
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


def project_entries(
    out: Path, results: Sequence[Any], spec: Any | None = None
) -> list[dict[str, Any]]:
    """Write the run's project from predict's scene results; returns its run.json entry.

    Args:
        out: the run folder.
        results: :class:`geolabel.pipeline.SceneResult` objects (finished ones are used).
        spec: the model spec (class names and colours).

    Scenes that finalize did not style (detection and classification runs) are styled
    here.

    Returns:
        run.json entries: those styles and ``{"scene": None, "role": "project", ...}``
        (none when no scene finished).
    """
    scenes: list[SceneOutputs] = []
    entries: list[dict[str, Any]] = []
    for r in results:
        files = [Path(p) for p in r.outputs.values()]
        if r.status != "done" or not files:
            continue
        if not any(role.startswith("style:") for role in r.outputs):
            # detection / classification scenes are not finalized by finalize_scene
            styled = style_scene_outputs(r.outputs, spec)
            entries += [
                {"scene": r.scene, "role": k, "path": v} for k, v in styled.items()
            ]
        name = Path(r.info.get("dir") or files[0].parent).name
        scenes.append((name, str(r.scene), dict(r.outputs), r.info.get("bands")))
    project = write_run_project(out, scenes, spec)
    if project is not None:
        entries.append({"scene": None, "role": "project", "path": str(project)})
    return entries


def _resolve(run_dir: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() or q.exists() else run_dir / q


def _run_spec(doc: dict[str, Any]) -> Any | None:
    """The run's model spec if its file is still there (for class colours), else ``None``."""
    from geolabel.models.spec import load_spec

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
    rj = run_dir / "run.json"
    try:
        doc = json.loads(rj.read_text())
    except FileNotFoundError as err:
        raise GeolabelError(
            f"{rj}: no run.json; run `geolabel predict` into {run_dir} first"
        ) from err
    except json.JSONDecodeError as err:
        raise GeolabelError(f"{rj}: not valid JSON: {err}") from err
    entries = [
        o
        for o in doc.get("outputs", [])
        if not str(o.get("role", "")).startswith(("style:", "categories:", "project"))
    ]
    spec = _run_spec(doc)
    scenes: list[SceneOutputs] = []
    new_entries = []
    for s in doc.get("scenes", []):
        if s.get("status") != "done":
            continue
        outs = {
            o["role"]: str(_resolve(run_dir, o["path"]))
            for o in entries
            if o.get("scene") == s["scene"]
        }
        if not outs:
            continue
        styled = style_scene_outputs(outs, spec)
        new_entries += [
            {"scene": s["scene"], "role": r, "path": p} for r, p in styled.items()
        ]
        name = Path(s.get("dir") or Path(next(iter(outs.values()))).parent).name
        scenes.append((name, str(s["scene"]), outs, s.get("bands")))
    if not scenes:
        raise GeolabelError(f"{rj}: no finished scene with outputs to style")
    project = write_run_project(run_dir, scenes, spec)
    assert project is not None
    new_entries.append({"scene": None, "role": "project", "path": str(project)})
    doc["outputs"] = entries + new_entries
    write_text_atomic(rj, json.dumps(doc, indent=2, default=str) + "\n")
    return {"project": str(project), "styled": [e["path"] for e in new_entries]}
