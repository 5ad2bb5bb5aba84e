"""``geolabel accept``: turn reviewed suggestions into labels in a GeoPackage.

The suggestions layer (``predictions`` of ``*_predictions.gpkg``) may have been
edited in QGIS. Its ``status`` field decides first:

* ``rejected``: never accepted;
* ``accepted`` / ``edited``: the reviewer's decision, always taken, with the
  geometry and label as they are now in the file (edits included);
* ``queued`` (a ``next_to_label`` query of ``geolabel prioritize``): taken once the
  labeller has filled its ``label`` field, never before;
* ``suggested`` (or empty): taken only when the selection picks it: a score
  threshold (global and/or per class), a list of ids, polygons that must contain the
  feature's representative point; every criterion given must hold.

Labels are appended to a labels layer (GeoPackage 1.2). A suggestion already there
(same source run id and feature id) is not added again; if its geometry or label has
changed since (an edit after an earlier accept), the stored label is replaced. A
feature whose geometry and label equal an existing label's is not added either. The
file is rewritten through a temporary copy and a rename; other layers are kept.

In the labels layer, ``label`` is the authority (a reviewer may have changed it).
When the model's classes are known (``classes``: from ``--model`` or the run's
``run.json``), every taken label must name one of them (class name or project label,
any case) and ``class_name``/``class_id`` are derived from it, so a feature relabelled
in QGIS keeps them in step; otherwise they record what the model suggested.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geolabel.errors import ConfigError
from geolabel.io.vector import replace_layer
from geolabel.labels._rasterize import class_lookup, filled, read_labels

__all__ = ["STATUSES", "AcceptResult", "Selection", "accept_suggestions"]

logger = logging.getLogger(__name__)

#: Status values a suggestion may carry.
STATUSES = ("suggested", "accepted", "rejected", "edited", "queued")

_KEY = ("source_run_id", "source_id")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which ``suggested`` features to accept (every criterion given must hold).

    Attributes:
        threshold: minimum score for classes without their own threshold.
        class_thresholds: minimum score per class (class name or label, any case).
        ids: feature ids (the ``id`` field) to accept.
        inside: polygons (CRS of the suggestions) that must contain a feature's
            representative point.
    """

    threshold: float | None = None
    class_thresholds: Mapping[str, float] = field(default_factory=dict)
    ids: frozenset[int] | None = None
    inside: Any = None

    @property
    def is_empty(self) -> bool:
        """True when no criterion is given (only reviewed features are taken)."""
        return (
            self.threshold is None
            and not self.class_thresholds
            and self.ids is None
            and self.inside is None
        )


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """Counts of one accept: what was added, replaced, skipped and why."""

    labels: Path
    layer: str
    total: int
    added: int
    replaced: int
    duplicates: int
    rejected: int
    reviewed: int
    not_selected: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in ((n, getattr(self, n)) for n in self.__dataclass_fields__)
        }


def _statuses(gdf: gpd.GeoDataFrame, source: str) -> np.ndarray:
    if "status" not in gdf.columns:
        return np.full(len(gdf), "suggested", dtype=object)
    st = gdf["status"].fillna("suggested").astype(str).str.strip().str.lower()
    st = st.replace("", "suggested").to_numpy(dtype=object)
    unknown = sorted(set(st) - set(STATUSES))
    if unknown:
        raise ConfigError(
            f"{source}: unknown status values {unknown}; use one of {list(STATUSES)}"
        )
    return np.asarray(st, dtype=object)


def _selected(gdf: gpd.GeoDataFrame, sel: Selection, source: str) -> np.ndarray:
    """Boolean per feature: the selection picks it (ignoring status)."""
    ok = np.ones(len(gdf), dtype=bool)
    if sel.is_empty:
        return ~ok
    if sel.threshold is not None or sel.class_thresholds:
        if "score" not in gdf.columns:
            raise ConfigError(f"{source}: no 'score' field to apply a threshold to")
        per = {k.lower(): v for k, v in sel.class_thresholds.items()}
        names = [
            gdf[c].astype(str).str.lower().to_numpy()
            if c in gdf.columns
            else np.full(len(gdf), "", object)
            for c in ("class_name", "label")
        ]
        known = set(names[0]) | set(names[1])
        unknown = sorted(set(per) - known)
        if unknown:
            logger.warning("%s: no suggestion has class %s", source, unknown)
        thr = np.array(
            [per.get(a, per.get(b, np.nan)) for a, b in zip(*names, strict=True)],
            dtype=float,
        )
        if sel.threshold is not None:
            thr = np.where(np.isnan(thr), sel.threshold, thr)
        score = pd.to_numeric(gdf["score"], errors="coerce").to_numpy(dtype=float)
        ok &= ~np.isnan(thr) & (score >= np.nan_to_num(thr, nan=np.inf))
    if sel.ids is not None:
        if "id" not in gdf.columns:
            raise ConfigError(f"{source}: no 'id' field to select --ids from")
        ok &= gdf["id"].isin(list(sel.ids)).to_numpy()
    if sel.inside is not None:
        pts = shapely.point_on_surface(gdf.geometry.to_numpy())
        ok &= np.asarray(shapely.contains(sel.inside, pts), dtype=bool)
    return ok


def _as_labels(gdf: gpd.GeoDataFrame, status: np.ndarray) -> gpd.GeoDataFrame:
    """Label rows in the labels-layer schema (provenance kept)."""

    def col(name: str, default: Any = None) -> Any:
        return gdf[name].to_numpy() if name in gdf.columns else [default] * len(gdf)

    labels = col("label")
    names = col("class_name")
    label = [
        lab if lab is not None and lab == lab else n
        for lab, n in zip(labels, names, strict=True)
    ]
    out = gpd.GeoDataFrame(
        {
            "label": label,
            "class_name": names,
            "class_id": col("class_id"),
            "score": col("score"),
            "review": np.select(
                [status == "suggested", status == "queued"],
                ["threshold", "labelled"],
                status,
            ),
            "source_run_id": col("run_id"),
            "source_model_id": col("model_id"),
            "source_id": col("id"),
            "source_tile_id": col("tile_id"),
        },
        geometry=gdf.geometry.to_numpy(),
        crs=gdf.crs,
    )
    return out


def _derive_classes(
    new: gpd.GeoDataFrame,
    classes: Sequence[str],
    class_labels: Sequence[str | None],
    source: str,
) -> gpd.GeoDataFrame:
    """``class_name``/``class_id`` from each label; unknown labels refused in one line.

    Raises:
        ConfigError: a taken feature's label is not a class name or project label.
    """
    lookup = class_lookup(classes, class_labels)
    keys = [str(v).strip().lower() for v in new["label"]]
    unknown = sorted(
        {str(v) for v, k in zip(new["label"], keys, strict=True) if k not in lookup}
    )
    if unknown:
        extra = sorted({lab for lab in class_labels if lab and lab not in classes})
        raise ConfigError(
            f"{source}: unknown labels {unknown}; the model's classes are "
            f"{list(classes)}" + (f" (project labels {extra})" if extra else "")
        )
    ids = [lookup[k] for k in keys]
    out = new.copy()
    out["class_id"] = ids
    out["class_name"] = [classes[i] for i in ids]
    return out


def _geom_keys(gdf: gpd.GeoDataFrame) -> list[tuple[bytes, str]]:
    geoms = shapely.normalize(gdf.geometry.to_numpy())
    labels = (
        gdf["label"].astype(str).to_numpy()
        if "label" in gdf.columns
        else [""] * len(gdf)
    )
    return [(shapely.to_wkb(g), str(lab)) for g, lab in zip(geoms, labels, strict=True)]


def accept_suggestions(
    suggestions: str | Path,
    labels: str | Path,
    *,
    selection: Selection,
    suggestions_layer: str | None = "predictions",
    labels_layer: str = "labels",
    classes: Sequence[str] | None = None,
    class_labels: Sequence[str | None] = (),
) -> AcceptResult:
    """Append the accepted suggestions to ``labels`` (see the module docstring).

    Args:
        suggestions: a ``*_predictions.gpkg`` (possibly edited in QGIS).
        labels: the labels GeoPackage (created if missing).
        selection: which ``suggested`` features to take.
        suggestions_layer: layer of the suggestions (``None``: the first).
        labels_layer: layer of the labels.
        classes: the model's class names by index (``None``: labels are not checked
            and class name/id are kept as suggested).
        class_labels: project label per class (a spec's ``labels()``), also accepted.

    Returns:
        Counts of added, replaced, duplicate, rejected and unselected features.

    Raises:
        ConfigError: unreadable files, unknown status values, a threshold without
            scores or ids without an ``id`` field, labels that are not ``classes``.

    .. versionadded:: 0.1
    """
    spath, lpath = Path(suggestions), Path(labels)
    sugg = read_labels(spath, layer=suggestions_layer)
    source = f"{spath}:{suggestions_layer or ''}"
    status = _statuses(sugg, source)
    reviewed = np.isin(status, ("accepted", "edited"))
    picked = (status == "suggested") & _selected(sugg, selection, source)
    answered = (status == "queued") & filled(sugg, "label")
    take = reviewed | picked | answered
    new = _as_labels(sugg[take], status[take])
    if classes is not None:
        new = _derive_classes(new, classes, class_labels, source)
    existing: gpd.GeoDataFrame | None = None
    if lpath.exists() and labels_layer in [
        str(n) for n, _ in pyogrio.list_layers(lpath)
    ]:
        existing = read_labels(lpath, layer=labels_layer)
        if (
            existing.crs is not None
            and new.crs is not None
            and not existing.crs.equals(new.crs)
        ):
            new = new.to_crs(existing.crs)
    replaced = duplicates = 0
    if existing is not None and len(existing):
        keep_new = np.ones(len(new), dtype=bool)
        drop_old: list[int] = []
        row_of: dict[tuple[str, str], int] = {}
        if all(c in existing.columns for c in _KEY):
            for i, (r, f) in enumerate(
                zip(existing["source_run_id"], existing["source_id"], strict=True)
            ):
                if r is not None and r == r and f is not None and f == f:
                    row_of[(str(r), str(int(f)))] = i
        old_keys = _geom_keys(existing)
        geom_set = set(old_keys)
        for j, (key, gk) in enumerate(
            zip(
                zip(
                    new["source_run_id"].astype(str),
                    pd.to_numeric(new["source_id"], errors="coerce")
                    .fillna(-1)
                    .astype(int)
                    .astype(str),
                    strict=True,
                ),
                _geom_keys(new),
                strict=True,
            )
        ):
            hit = row_of.get(key)
            if hit is not None:
                if old_keys[hit] == gk:
                    keep_new[j] = False
                    duplicates += 1
                else:
                    drop_old.append(hit)
                    replaced += 1
            elif gk in geom_set:
                keep_new[j] = False
                duplicates += 1
        existing = existing.drop(index=existing.index[drop_old])
        new = new[keep_new]
    added = len(new) - replaced
    if len(new) or replaced:
        frames = [f for f in (existing, new) if f is not None and len(f)]
        merged = gpd.GeoDataFrame(
            pd.concat(frames, ignore_index=True), crs=frames[0].crs
        )
        replace_layer(lpath, labels_layer, merged)
    result = AcceptResult(
        labels=lpath,
        layer=labels_layer,
        total=len(sugg),
        added=added,
        replaced=replaced,
        duplicates=duplicates,
        rejected=int((status == "rejected").sum()),
        reviewed=int(reviewed.sum()),
        not_selected=int(((status == "suggested") & ~picked).sum()),
    )
    logger.info("accept %s -> %s: %s", spath, lpath, result.to_dict())
    return result
