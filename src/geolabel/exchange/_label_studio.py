"""Label Studio round trip: a run's suggestions out as tasks, an export back as labels.

**Out** (:func:`export_tasks`): every finished scene of a run (segmentation polygons,
or detection boxes and instances, all sent as polygons) is cut into
``chip_size`` chips (the grid of ``export-chips``); a chip with at least one
suggestion (``score >= min_score``) becomes a task: a PNG of three bands
(``rgb``, stretched 2-98 % over the scene) in ``OUT/images/``, its georeference in
``data.geolabel`` and the suggestions clipped to the chip as a pre-annotation
(``predictions``: polygon results with their scores and the run's ``model_version``).
``OUT/tasks.json`` is imported into a project that uses ``OUT/label_config.xml``.
Label Studio polygons have no holes: a suggestion's holes are not sent.

**Back** (:func:`import_annotations`): a Label Studio JSON export (``tasks.json``
form) becomes a labels layer in the scenes' CRS: per task the latest annotation
that was not cancelled, each polygon or rectangle result one feature, its label
mapped through the model's classes (``class_name``/``class_id``, as ``accept``
writes them). The layer is replaced (the export is the project's whole state);
other layers of the file are kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window as RioWindow

from geolabel.errors import ConfigError, OutputExistsError
from geolabel.exchange._chips import chip_windows
from geolabel.exchange._geo import apply_affine
from geolabel.exchange._ls_format import (
    ChipRef,
    ConfigNames,
    labelling_config,
    polygon_result,
    result_geometry,
)
from geolabel.grid import Window
from geolabel.io.run_record import find_outputs, read_record, resolve_path
from geolabel.io.scene import Scene, open_scene
from geolabel.io.vector import replace_layer
from geolabel.labels import class_lookup, read_labels

__all__ = ["LabelStudioExport", "export_tasks", "import_annotations"]

logger = logging.getLogger(__name__)

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclass(frozen=True, slots=True)
class LabelStudioExport:
    """What :func:`export_tasks` wrote."""

    out: Path
    tasks: int
    regions: int
    config: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "out": str(self.out),
            "tasks": self.tasks,
            "regions": self.regions,
            "tasks_json": str(self.out / "tasks.json"),
            "label_config": str(self.config),
        }


def _stretch(
    scene: Scene, bands: Sequence[int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """2 and 98 % of each display band over a decimated read of the scene."""
    h, w = scene.grid.shape
    f = max(1, int(np.ceil(max(h, w) / 1024)))
    with scene.open() as ds:
        arr = ds.read(
            list(bands), out_shape=(len(bands), max(1, h // f), max(1, w // f))
        ).astype(np.float64)
        valid = np.isfinite(arr).all(axis=0)
        if scene.nodata is not None:
            valid &= ~(arr == scene.nodata).any(axis=0)
    vals = arr[:, valid] if valid.any() else arr.reshape(len(bands), -1)
    lo, hi = np.percentile(vals, [2, 98], axis=1)
    return lo, np.where(hi > lo, hi, lo + 1)


def _write_png(
    path: Path,
    scene: Scene,
    win: Window,
    bands: Sequence[int],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
) -> None:
    """An 8-bit PNG of ``bands`` over ``win``, stretched from ``lo`` to ``hi``."""
    with scene.open() as ds:
        raw = ds.read(
            list(bands),
            window=RioWindow(win.col_off, win.row_off, win.width, win.height),
        ).astype(np.float64)
    img = (raw - lo[:, None, None]) / (hi - lo)[:, None, None] * 255.0
    img = np.clip(np.nan_to_num(img), 0, 255).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path,
            "w",
            driver="PNG",
            width=win.width,
            height=win.height,
            count=img.shape[0],
            dtype="uint8",
        ) as dst:
            dst.write(img)


def _scene_tasks(
    scene: Scene,
    sugg: gpd.GeoDataFrame,
    out: Path,
    *,
    model_version: str,
    chip_size: int,
    rgb: Sequence[int],
    url_prefix: str,
    names: ConfigNames,
) -> list[dict[str, Any]]:
    grid = scene.grid
    tree = shapely.STRtree(sugg.geometry.to_numpy())
    lo, hi = _stretch(scene, rgb)
    tasks = []
    for win in chip_windows(grid, chip_size, chip_size):
        t = grid.window_transform(win)
        (x0, y0), (x1, y1) = t @ (0, 0), t @ (win.width, win.height)
        box = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        hits = np.sort(tree.query(box, predicate="intersects"))
        inv = ~t
        results, scores = [], []
        for i in hits:
            row = sugg.iloc[int(i)]
            clipped = shapely.intersection(row.geometry, box)
            parts = [
                p
                for p in getattr(clipped, "geoms", [clipped])
                if isinstance(p, shapely.Polygon) and p.area > 0
            ]
            for k, part in enumerate(parts):
                ring = np.asarray(part.exterior.coords)
                cols, rows = apply_affine(inv, ring[:, 0], ring[:, 1])
                score = None if row.get("score") is None else float(row["score"])
                results.append(
                    polygon_result(
                        np.column_stack([cols, rows]),
                        width=win.width,
                        height=win.height,
                        label=str(row.get("class_name") or row.get("label")),
                        score=score,
                        region_id=f"s{row.get('id', i)}-{k}",
                        names=names,
                    )
                )
                if score is not None:
                    scores.append(score)
        if not results:
            continue
        name = f"{scene.name}_r{win.row_off:06d}_c{win.col_off:06d}.png"
        _write_png(out / "images" / name, scene, win, rgb, lo, hi)
        ref = ChipRef(  # a local scene by absolute path, a URL or STAC item as given
            str(scene.path.resolve() if isinstance(scene.path, Path) else scene.path),
            (win.row_off, win.col_off, win.height, win.width),
            t,
            grid.crs,
        )
        tasks.append(
            {
                "data": {
                    "image": f"{url_prefix}images/{name}",
                    "geolabel": ref.to_json(),
                },
                "predictions": [
                    {
                        "model_version": model_version,
                        "score": float(np.mean(scores)) if scores else None,
                        "result": results,
                    }
                ],
            }
        )
    return tasks


def export_tasks(
    run_dir: str | Path,
    out: str | Path,
    *,
    chip_size: int = 512,
    min_score: float = 0.0,
    rgb: Sequence[int] | None = None,
    url_prefix: str = "/data/local-files/?d=",
    overwrite: bool = False,
) -> LabelStudioExport:
    """Write Label Studio tasks with pre-annotations for a run's suggestions.

    Args:
        run_dir: a run folder written by ``geolabel predict`` (segmentation).
        out: output folder (``tasks.json``, ``label_config.xml``, ``images/``).
        chip_size: chip side in pixels.
        min_score: suggestions below this score are not sent.
        rgb: three 1-based scene bands to show (default: the model's first three).
        url_prefix: prefix of ``data.image`` before ``images/NAME.png`` (Label
            Studio's local-files URL by default).
        overwrite: replace an existing ``out``.

    Raises:
        ConfigError: not a run folder, no finished scene, bad bands.
        OutputExistsError: ``out`` exists and ``overwrite`` is off.

    .. versionadded:: 0.1
    """
    run = Path(run_dir)
    out = Path(out)
    record = read_record(run)
    model = record.get("model") or {}
    classes = list(model.get("classes") or [])
    if not classes:
        raise ConfigError(f"{run}: run.json names no model classes")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists; pass --overwrite to replace it")
    names = ConfigNames("label", "image", tuple(classes))
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    tasks: list[dict[str, Any]] = []
    try:
        for s in record.get("scenes", []):
            if s.get("status") != "done":
                continue
            # segmentation polygons, or detection boxes/instances (sent as polygons)
            found = [
                (path, layer)
                for role, layer in (
                    ("vectors", "predictions"),
                    ("detections", "detections"),
                )
                for _, _, path in find_outputs(
                    run, record, role=role, scene=str(s["scene"])
                )
            ]
            if not found:
                continue
            sugg = read_labels(found[0][0], layer=found[0][1])
            if "score" in sugg.columns and min_score > 0:
                sugg = sugg[sugg["score"].fillna(0) >= min_score]
            if sugg.empty:
                continue
            bands = tuple(int(b) for b in s.get("bands") or (1,))
            scene = open_scene(resolve_path(run, str(s["scene"])), bands=bands)
            show = tuple(rgb) if rgb is not None else tuple(bands[:3])
            tasks += _scene_tasks(
                scene,
                sugg,
                tmp,
                model_version=str(model.get("id")),
                chip_size=chip_size,
                rgb=show,
                url_prefix=url_prefix,
                names=names,
            )
        colors = list(_PALETTE * (len(classes) // len(_PALETTE) + 1))[: len(classes)]
        (tmp / "label_config.xml").write_text(labelling_config(classes, colors))
        (tmp / "tasks.json").write_text(json.dumps(tasks))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    regions = sum(len(t["predictions"][0]["result"]) for t in tasks)
    return LabelStudioExport(out, len(tasks), regions, out / "label_config.xml")


def _latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    anns = [
        a
        for a in task.get("annotations") or []
        if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    if not anns:
        return None
    return max(
        anns, key=lambda a: (str(a.get("updated_at") or ""), int(a.get("id") or 0))
    )


def import_annotations(
    export: str | Path,
    labels: str | Path,
    *,
    classes: Sequence[str],
    class_labels: Sequence[str | None] = (),
    layer: str = "labels",
) -> gpd.GeoDataFrame:
    """Turn a Label Studio JSON export into a labels layer (see the module doc).

    Args:
        export: the JSON export (a list of tasks with ``annotations``).
        labels: the GeoPackage to write (created, or its ``layer`` replaced).
        classes: the model's class names by index.
        class_labels: project label per class (also accepted as labels).
        layer: the labels layer.

    Returns:
        The features written.

    Raises:
        ConfigError: unreadable export, tasks without geolabel georeference,
            labels that name no class, no annotated region.

    .. versionadded:: 0.1
    """
    src = Path(export)
    try:
        tasks = json.loads(src.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{src}: not a Label Studio JSON export: {err}") from None
    if not isinstance(tasks, list):
        raise ConfigError(f"{src}: a Label Studio JSON export is a list of tasks")
    lookup = class_lookup(classes, class_labels)
    rows: list[dict[str, Any]] = []
    crs: str | None = None
    for n, task in enumerate(tasks):
        where = f"{src}: task {task.get('id', n) if isinstance(task, dict) else n}"
        if not isinstance(task, dict):
            raise ConfigError(f"{where}: not an object")
        ann = _latest_annotation(task)
        if ann is None:
            continue
        ref = ChipRef.from_task(task, where)
        crs = crs or ref.crs
        for res in ann.get("result") or []:
            got = result_geometry(res, ref, where) if isinstance(res, dict) else None
            if got is None:
                continue
            geom, label = got
            if ref.crs is not None and crs is not None and ref.crs != crs:
                geom = gpd.GeoSeries([geom], crs=ref.crs).to_crs(crs).iloc[0]
            rows.append(
                {
                    "label": label,
                    "review": "label-studio",
                    "task_id": task.get("id"),
                    "annotation_id": ann.get("id"),
                    "region_id": str(res.get("id") or ""),
                    "annotator": str(ann.get("completed_by") or ""),
                    "updated_at": str(ann.get("updated_at") or ""),
                    "scene": ref.scene,
                    "image": str(task["data"].get("image") or ""),
                    "geometry": geom,
                }
            )
    if not rows:
        raise ConfigError(
            f"{src}: no annotated polygon or rectangle in {len(tasks)} tasks"
        )
    unknown = sorted(
        {r["label"] for r in rows if r["label"].strip().lower() not in lookup}
    )
    if unknown:
        raise ConfigError(
            f"{src}: unknown labels {unknown}; the model's classes are {list(classes)}"
        )
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    ids = [lookup[str(v).strip().lower()] for v in gdf["label"]]
    gdf.insert(1, "class_name", [classes[i] for i in ids])
    gdf.insert(2, "class_id", ids)
    replace_layer(Path(labels), layer, gdf)
    return gdf
