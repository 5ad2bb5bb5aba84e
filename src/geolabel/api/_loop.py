"""The labelling loop as functions that return data: prioritize, accept, train, evaluate.

Each is what its CLI command does, minus the printing: ``geolabel prioritize`` prints
the rows :func:`prioritize` returns as a GeoDataFrame, ``geolabel accept`` the counts of
:func:`accept`, ``geolabel train`` the :class:`~geolabel.train.TrainResult` of
:func:`train`, ``geolabel evaluate`` the scores of :func:`evaluate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import shapely

from geolabel.errors import ConfigError
from geolabel.evaluation import EvalOptions
from geolabel.evaluation import evaluate as _evaluate
from geolabel.execution.plan import open_model_scene
from geolabel.io.run_record import RUN_RECORD, read_record
from geolabel.labels import (
    AcceptResult,
    Selection,
    accept_suggestions,
    class_lookup,
    merge_labels,
    rasterize_labels,
    read_labels,
)
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.priority import prioritize as _prioritize
from geolabel.priority.select import Spread
from geolabel.train import FitConfig, TrainResult, train_model

__all__ = ["accept", "evaluate", "prioritize", "train", "LabelSource"]

#: What ``prioritize`` asks a labeller to label.
QueueUnit = Literal["auto", "points", "superpixels", "regions", "boxes", "tiles"]

#: A labels file, or ``(file, layer)``.
LabelSource = str | os.PathLike[str] | tuple[str | os.PathLike[str], str | None]


def prioritize(
    run: str | os.PathLike[str],
    budget: int,
    *,
    strategy: str = "auto",
    unit: QueueUnit | None = None,
    region_size: int | None = None,
    superpixel_size: int = 12,
    min_distance: float = 0.0,
    spread: Spread = "none",
    pool_factor: int = 10,
    balance_classes: bool = False,
    exclude: Sequence[str | os.PathLike[str]] = (),
    min_valid: float = 0.5,
    max_pixels: int = 4_000_000,
    cold_labels: int = 100,
    seed: int = 0,
) -> gpd.GeoDataFrame:
    """Rank what to label next in a run folder, as ``geolabel prioritize`` does.

    Writes ``RUN/next_to_label.gpkg`` and ``.csv`` (recorded in ``run.json``) and
    returns the queue: one row per pick (rank, score, strategy, unit, reason, scene,
    unit id, predicted class, empty ``label``, status ``queued``) with its footprint,
    in the CRS of the run's first scene. ``unit`` defaults to ``auto`` for a
    segmentation run (points on pixels of 5 m or more, superpixels on finer ones),
    ``boxes`` for detection and ``tiles`` for tile classification (whose queues are
    their most uncertain predictions). ``attrs["gpkg"]`` and
    ``attrs["csv"]`` name the files, ``attrs["priority"]`` is the record of the pick (shortfall reasons).
    See :func:`geolabel.priority.prioritize` for the options.

    Raises:
        RunStateError: not a run folder, or no finished scene in it.
        ConfigError: an unknown strategy or unit, a bad exclusion file.

    .. versionadded:: 0.1
    """
    res = _prioritize(
        Path(run),
        budget,
        strategy=strategy,
        unit=unit,
        region_size=region_size,
        superpixel_size=superpixel_size,
        min_distance=min_distance,
        spread=spread,
        pool_factor=pool_factor,
        balance_classes=balance_classes,
        exclude=tuple(Path(e) for e in exclude),
        min_valid=min_valid,
        max_pixels=max_pixels,
        cold_labels=cold_labels,
        seed=seed,
    )
    gdf = read_labels(res.gpkg, layer="next_to_label")
    gdf.attrs.update(
        gpkg=str(res.gpkg),
        csv=str(res.csv),
        priority=read_record(Path(run)).get("priority") or {},
    )
    return gdf


def run_classes(
    model: str | os.PathLike[str] | ModelSpec | None, suggestions: Path
) -> tuple[list[str] | None, list[str | None]]:
    """Class names and project labels: of ``model``, else of the run the suggestions
    lie in (``RUN/SCENE/SCENE_predictions.gpkg``), else ``(None, [])``."""
    if model is not None:
        spec = (
            model
            if isinstance(model, ModelSpec)
            else load_spec(Path(model), require_weights=False)
        )
        return list(spec.class_names), list(spec.labels())
    run_dir = suggestions.resolve().parent.parent
    if not (run_dir / RUN_RECORD).is_file():
        return None, []
    recorded = read_record(run_dir).get("model") or {}
    names = recorded.get("classes")
    return (list(names) if names else None), list(recorded.get("labels") or [])


def accept(
    suggestions: LabelSource,
    labels: str | os.PathLike[str],
    *,
    threshold: float | None = None,
    class_thresholds: Mapping[str, float] | None = None,
    ids: Sequence[int] | None = None,
    inside: LabelSource | None = None,
    labels_layer: str = "labels",
    model: str | os.PathLike[str] | ModelSpec | None = None,
) -> AcceptResult:
    """Append accepted suggestions to a labels GeoPackage, as ``geolabel accept`` does.

    Rejected features are never taken, accepted/edited ones always; ``suggested``
    ones when every given criterion holds (``threshold``, ``class_thresholds``,
    ``ids``, ``inside`` polygons). Labels must name the model's classes (``model``,
    or the run's). Running again adds nothing twice.

    Returns:
        The counts (added, replaced, duplicates, rejected, ...); ``.to_dict()`` is
        what the CLI prints.

    Raises:
        ConfigError: unreadable files, thresholds outside [0, 1], unknown statuses or
            labels that are not the model's classes.

    .. versionadded:: 0.1
    """
    spath, slayer = _layer(suggestions, "predictions")
    per = dict(class_thresholds or {})
    for name, x in [("threshold", threshold), *per.items()]:
        if x is not None and not 0.0 <= x <= 1.0:
            raise ConfigError(f"{name}={x!r}: thresholds are scores in [0, 1]")
    area: Any = None
    if inside is not None:
        ipath, ilayer = _layer(inside, None)
        polys = read_labels(ipath, layer=ilayer)
        sugg_crs = read_labels(spath, layer=slayer).crs
        if (
            polys.crs is not None
            and sugg_crs is not None
            and not polys.crs.equals(sugg_crs)
        ):
            polys = polys.to_crs(sugg_crs)
        area = shapely.union_all(polys.geometry.to_numpy())
    selection = Selection(
        threshold=threshold,
        class_thresholds=per,
        ids=frozenset(ids) if ids is not None else None,
        inside=area,
    )
    classes, class_labels = run_classes(model, spath)
    return accept_suggestions(
        spath,
        Path(labels),
        selection=selection,
        suggestions_layer=slayer,
        labels_layer=labels_layer,
        classes=classes,
        class_labels=class_labels,
    )


def _layer(src: LabelSource, default: str | None) -> tuple[Path, str | None]:
    if isinstance(src, tuple):
        return Path(src[0]), src[1] or default
    return Path(src), default


def train(
    scene: str | os.PathLike[str],
    labels: LabelSource | Sequence[LabelSource],
    model: str | os.PathLike[str] | ModelSpec,
    out: str | os.PathLike[str],
    *,
    class_field: str = "label",
    class_offset: int = 0,
    point_buffer: int = 0,
    from_scratch: bool = False,
    config: FitConfig | None = None,
    name: str | None = None,
    version: str | None = None,
    bands: Sequence[int] | None = None,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune a model on the labelled pixels of a scene, as ``geolabel train`` does.

    Args:
        scene: the scene the labels lie on.
        labels: label files (``path`` or ``(path, layer)``), rasterised and merged.
        model: the base spec (path or loaded).
        out: the new spec YAML (weights beside it, ``.safetensors``).
        class_field: field holding class names or codes.
        class_offset: added to integer codes.
        point_buffer: grow points to ``(2N+1)^2`` pixel squares.
        from_scratch: fresh weights instead of the spec's.
        config: training settings (steps, batch size, chip size, lr, sampler, seed).
        name: model name of the new spec.
        version: its version (default: bumped).
        bands: 1-based band indexes in model order.
        allow_vrt: accept a VRT scene (it can reference any file).
        allow_pixel_space: accept a scene without a CRS (labels without one too).
        overwrite: replace existing outputs.
        progress: ``progress(step, steps, loss)``.

    Returns:
        The new spec and weights paths, the model id and the training metrics.

    Raises:
        ModelSpecError: a bad spec; ConfigError: ``out`` not ``.yaml``, no labelled
        pixels; SceneReadError: a bad scene.

    .. versionadded:: 0.1
    """
    if isinstance(model, ModelSpec):
        spec = model
    else:
        spec = load_spec(Path(model), require_weights=not from_scratch)
    out_path = Path(out)
    if out_path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"{str(out_path)!r}: the new spec must end in .yaml")
    sources: list[LabelSource] = (
        [labels] if isinstance(labels, (str, os.PathLike, tuple)) else list(labels)
    )
    sc = open_model_scene(
        os.fspath(scene),
        spec,
        bands=tuple(bands) if bands else None,
        allow_vrt=allow_vrt,
        allow_pixel_space=allow_pixel_space,
    )
    lookup = class_lookup(spec.class_names, spec.labels())
    layers = []
    for src in sources:
        p, layer = _layer(src, None)
        layers.append(
            rasterize_labels(
                read_labels(p, layer=layer),
                sc.grid,
                num_classes=spec.num_classes,
                class_field=class_field,
                lookup=lookup,
                class_offset=class_offset,
                point_buffer=point_buffer,
                source=f"{p}:{layer or ''}",
            )
        )
    return train_model(
        sc,
        merge_labels(*layers),
        spec,
        out_path,
        config or FitConfig(),
        from_scratch=from_scratch,
        name=name,
        version=version,
        overwrite=overwrite,
        progress=progress,
    )


def evaluate(
    prediction: str | os.PathLike[str],
    reference: LabelSource,
    *,
    kind: str | None = None,
    scene: str | None = None,
    model: str | os.PathLike[str] | ModelSpec | None = None,
    class_field: str = "label",
    class_offset: int = 0,
    point_buffer: int = 0,
) -> dict[str, Any]:
    """Score a run (or mask GeoTIFF) against a reference, as ``geolabel evaluate``.

    Returns:
        The scores as a dict: per-class IoU/F1, ``miou``, ``confusion_matrix`` (or
        AP50, precision, recall for boxes).

    Raises:
        ConfigError: missing files, unknown kind, classes out of range.
        CRSMismatchError: a raster reference on another grid.

    .. versionadded:: 0.1
    """
    ref, layer = _layer(reference, None)
    names = None
    if model is not None:
        spec = model if isinstance(model, ModelSpec) else load_spec(Path(model))
        names = spec.class_names
    opts = EvalOptions(
        scene=scene,
        class_names=names,
        reference_layer=layer,
        class_field=class_field,
        class_offset=class_offset,
        point_buffer=point_buffer,
    )
    return _evaluate(Path(prediction), ref, kind=kind, options=opts)
