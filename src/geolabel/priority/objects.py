"""Detection and tile-classification runs: which predictions to review next.

A segmentation run is ranked on its pixel maps (:mod:`geolabel.priority.queue`); an
object run has none, only scored predictions, so its queue is made of them:

* unit ``boxes`` (detection): each predicted box of ``SCENE_detections.gpkg``; a
  reviewer confirms it (sets ``label``), corrects its outline, or rejects it;
* unit ``tiles`` (classification): each classified tile of ``SCENE_tiles.gpkg``; a
  reviewer sets the tile's class.

Uncertainty per prediction: the measures of :mod:`geolabel.uncertainty.measures`
over a box's two outcomes, object or not (highest for a score of 0.5: a box there is
as likely a false positive as a hit), or over a tile's normalised class scores
(``margin``: ``1 - (p1 - p2)``, smallest class margin first).
``auto`` is ``margin`` with class balance (picks alternate between predicted classes,
the class with the fewest labelled footprints (``--exclude``) first) and without
overlap between picks; ``random`` draws uniformly. Predictions that overlap labelled
footprints are left out; ``min_distance`` keeps picks apart (CRS units).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import shapely

from geolabel.errors import ConfigError, RunStateError
from geolabel.io.run_record import RUN_RECORD, read_record, resolve_path
from geolabel.priority.footprints import read_labelled_classes, to_crs
from geolabel.priority.select import excluded_mask
from geolabel.priority.strategy import parse_strategy
from geolabel.uncertainty.measures import compute_measure

__all__ = ["OBJECT_UNITS", "ObjectScene", "load_object_run", "object_queue"]

#: unit of each object task
OBJECT_UNITS = {"detection": "boxes", "classification": "tiles"}
_MEASURES = ("margin", "least-confidence", "entropy")


@dataclass(frozen=True, slots=True)
class ObjectScene:
    """One finished scene of an object run: its scored predictions."""

    scene: str
    name: str
    path: Path
    layer: str
    tiles: Path | None = None


def load_object_run(run_dir: Path) -> tuple[str, list[ObjectScene], tuple[str, ...]]:
    """``(task, scenes, class names)`` of a detection or classification run.

    Raises:
        RunStateError: no finished scene with predictions.
    """
    doc = read_record(run_dir)
    model = doc.get("model", {})
    task = str(model.get("task", "segmentation"))
    role, layer = ("detections", "detections")
    if task == "classification":
        role, layer = ("tiles", "tiles")
    done = {s["scene"] for s in doc.get("scenes", []) if s.get("status") == "done"}
    outs = [o for o in doc.get("outputs", []) if o.get("scene") in done]
    tiles = {
        o["scene"]: Path(resolve_path(run_dir, o["path"]))
        for o in outs
        if o.get("role") == "tiles"
    }
    scenes = [
        ObjectScene(
            str(o["scene"]),
            Path(resolve_path(run_dir, o["path"])).parent.name,
            Path(resolve_path(run_dir, o["path"])),
            str(o.get("layer") or layer),
            tiles.get(o["scene"]),
        )
        for o in outs
        if o.get("role") == role
    ]
    if not scenes:
        raise RunStateError(
            f"{run_dir / RUN_RECORD}: no finished {task} scene to prioritise"
        )
    return task, scenes, tuple(model.get("classes", []))


def _uncertainty(
    df: gpd.GeoDataFrame, task: str, measure: str
) -> npt.NDArray[np.float64]:
    """Per-prediction uncertainty in [0, 1] (see the module docstring): the pixel
    measures of :mod:`geolabel.uncertainty.measures` over each box's two outcomes
    (object or not) or each tile's normalised class scores."""
    s = np.clip(df["score"].to_numpy(dtype=float), 0.0, 1.0)
    cols = [c for c in df.columns if str(c).startswith("score_")]
    if task == "detection" or not cols:
        probs = np.stack([s, 1.0 - s])
    else:
        p = np.clip(df[cols].to_numpy(dtype=float), 0.0, None)
        probs = (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)).T
    return np.asarray(compute_measure(measure, probs), dtype=np.float64)


def _read(scene: ObjectScene) -> gpd.GeoDataFrame:
    try:
        df = pyogrio.read_dataframe(scene.path, layer=scene.layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise RunStateError(f"{scene.path}: cannot read predictions: {err}") from err
    if "score" not in df.columns:
        raise RunStateError(f"{scene.path}: predictions carry no 'score' field")
    df = df[df.geometry.notna() & ~df.geometry.is_empty].reset_index(drop=True)
    b = df.geometry.bounds.to_numpy()  # boxes (MultiPolygon on disk) as rectangles
    df["geometry"] = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    if "row_off" not in df.columns and scene.tiles is not None and len(df):
        _add_windows(df, scene.tiles)
    return df


def _add_windows(df: gpd.GeoDataFrame, tiles: Path) -> None:
    """Pixel windows of boxes, from the scene grid that a tile of the run's tile
    layer (pixel window + footprint) pins down (north-up grids)."""
    try:
        t = pyogrio.read_dataframe(tiles, layer="tiles", max_features=1)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        return
    if not len(t) or not {"row_off", "col_off", "height", "width"} <= set(t.columns):
        return
    x0, y0, x1, y1 = t.geometry.iloc[0].bounds
    rec = t.iloc[0]
    a, e = (x1 - x0) / int(rec["width"]), (y0 - y1) / int(rec["height"])
    c, f = x0 - int(rec["col_off"]) * a, y1 - int(rec["row_off"]) * e
    b = df.geometry.bounds.to_numpy()
    cols = np.floor((b[:, [0, 2]] - c) / a + 1e-6).astype(int)
    rows = np.floor((b[:, [3, 1]] - f) / e + 1e-6).astype(int)
    df["row_off"], df["col_off"] = rows[:, 0], cols[:, 0]
    df["height"] = np.maximum(rows[:, 1] - rows[:, 0], 1)
    df["width"] = np.maximum(cols[:, 1] - cols[:, 0], 1)


def _order(
    unc: npt.NDArray[Any],
    cls: npt.NDArray[Any],
    labelled: dict[int, int],
    balance: bool,
    rng: np.random.Generator | None,
) -> list[int]:
    """Candidate order: by uncertainty (or random), classes taking turns if ``balance``."""
    n = len(unc)
    if n == 0:
        return []
    key = rng.random(n) if rng is not None else unc
    by_score = list(np.lexsort((np.arange(n), -key)))
    if not balance:
        return [int(i) for i in by_score]
    queues: dict[int, list[int]] = {}
    for i in by_score:
        queues.setdefault(int(cls[i]), []).append(int(i))
    turn = sorted(queues, key=lambda c: (labelled.get(c, 0), c))
    out: list[int] = []
    for k in range(max(len(q) for q in queues.values())):
        out.extend(queues[c][k] for c in turn if k < len(queues[c]))
    return out


def _check_strategy(strategy: str) -> str | None:
    """The measure of a strategy objects can be ranked by (``None``: random).

    Raises:
        ConfigError: a strategy that needs pixel maps, features or model passes.
    """
    st = parse_strategy(strategy)
    if strategy == "auto":
        return "margin"
    extra = st.diverse or st.cold or st.power or st.typical or st.context
    if extra or (st.measure is not None and st.measure not in _MEASURES):
        raise ConfigError(
            f"--strategy {strategy}: detection and classification runs are ranked by "
            f"their scores; use auto, random or {', '.join(_MEASURES)} (+balance)"
        )
    return st.measure


def object_queue(
    run_dir: Path,
    budget: int,
    *,
    strategy: str,
    exclude: tuple[str | Path, ...] = (),
    min_distance: float = 0.0,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], str | None, str, dict[str, int]]:
    """The ranked rows of an object run's queue, its CRS, its unit and counts.

    Raises:
        ConfigError: a strategy that needs pixel maps or model passes.
        RunStateError: no finished object scene, or unreadable predictions.
    """
    measure = _check_strategy(strategy)
    balance = strategy == "auto" or parse_strategy(strategy).balance
    task, scenes, classes = load_object_run(run_dir)
    unit = OBJECT_UNITS.get(task, "boxes")
    frames: list[gpd.GeoDataFrame] = []
    out_crs: str | None = None
    counts: dict[int, int] = {}  # labelled footprints per class (--exclude)
    for k, sc in enumerate(scenes):
        df = _read(sc)
        crs = df.crs.to_wkt() if df.crs is not None else None
        if k == 0:
            out_crs = crs
        labelled = [
            lc for p in exclude for lc in read_labelled_classes(Path(p), crs, classes)
        ]
        if k == 0:
            for _, c in labelled:
                if c is not None:
                    counts[c] = counts.get(c, 0) + 1
        df["_scene"], df["_name"] = sc.scene, sc.name
        df["_excluded"] = excluded_mask(list(df.geometry), [g for g, _ in labelled])
        df["_geom"] = [to_crs(g, crs, out_crs) for g in df.geometry]
        frames.append(df)
    df = gpd.pd.concat(frames, ignore_index=True)
    unc = _uncertainty(df, task, measure or "margin") if len(df) else np.zeros(0)
    cls = df["class_id"].to_numpy(dtype=int) if "class_id" in df else np.zeros(len(df))
    rng = np.random.default_rng(seed) if measure is None else None
    keep = ~df["_excluded"].to_numpy(dtype=bool)
    geoms = list(df["_geom"])
    picked: list[int] = []
    open_ = np.flatnonzero(keep)  # labelled ones take no class's turn
    for k in _order(unc[open_], cls[open_], counts, balance, rng):
        if len(picked) >= budget:
            break
        i = int(open_[k])
        g = geoms[i]
        if any(
            # overlapping: the same object, or one the reviewer sees there anyway
            (g.intersects(geoms[j]) and not g.touches(geoms[j]))
            or (min_distance > 0 and g.distance(geoms[j]) < min_distance)
            for j in picked
        ):
            continue
        picked.append(i)
    rows = [_row(df, i, r, float(unc[i]), strategy, unit) for r, i in enumerate(picked)]
    return rows, out_crs, unit, {"candidates": len(df), "excluded": int((~keep).sum())}


def _row(
    df: gpd.GeoDataFrame, i: int, rank: int, u: float, strategy: str, unit: str
) -> dict[str, Any]:
    rec = df.iloc[i]
    name = str(rec.get("class_name") or "") or None
    score = float(rec["score"])
    what = "box" if unit == "boxes" else "tile"
    ident = rec["tile_id"] if unit == "tiles" else f"{rec['_name']}/box{rec['id']}"
    why = f"{what} scored {score:.3f} as {name or '?'}"
    return {
        "rank": rank + 1,
        "score": round(u, 6),
        "strategy": strategy,
        "unit": unit,
        "reason": f"random draw; {why}"
        if strategy == "random"
        else (f"{why}: uncertainty {u:.3f}"),
        "scene": str(rec["_scene"]),
        "region_id": str(ident),
        "dominant_class": name,
        "valid_fraction": 1.0,
        # pixel window in the scene (-1: the run has no tile layer to place it)
        **{k: int(rec[k]) if k in df else -1 for k in _WINDOW},
        "geometry": df["_geom"][i],
    }


_WINDOW = ("row_off", "col_off", "height", "width")
