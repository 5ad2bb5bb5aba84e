"""Already-labelled footprints (``prioritize --exclude``) and moves between CRSs.

One reader for both ranking paths: every layer of a vector file, reprojected to the
scene CRS; :func:`read_labelled_classes` also maps each feature's ``label`` (class
name or project label) or ``class_id`` to a model class, so the labels a person gave
count for the class balance of the next queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS, Transformer

from geolabel.errors import ConfigError

__all__ = ["read_labelled", "read_labelled_classes", "to_crs", "transformer"]


def _frames(path: Path, crs: str | None) -> list[gpd.GeoDataFrame]:
    """The non-empty geometry layers of ``path`` in ``crs`` (empty geometries dropped).

    Raises:
        ConfigError: the file cannot be read or has no CRS while the scene has one.
    """
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        frames = [pyogrio.read_dataframe(path, layer=layer) for layer in layers]
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        OSError,
    ) as err:
        raise ConfigError(
            f"--exclude {path}: cannot read labelled footprints: {err}"
        ) from err
    out = []
    for df in frames:
        if not isinstance(df, gpd.GeoDataFrame) or df.geometry is None or df.empty:
            continue
        if crs is not None:
            if df.crs is None:
                raise ConfigError(
                    f"--exclude {path}: has no CRS; cannot reproject it to the scene CRS"
                )
            df = df.to_crs(crs)
        keep = df.geometry.notna().to_numpy() & ~df.geometry.is_empty.to_numpy()
        out.append(df[keep])
    return out


def read_labelled(path: Path, crs: str | None) -> list[Any]:
    """Every geometry of every layer of a vector file, reprojected to ``crs``.

    Raises:
        ConfigError: the file cannot be read or has no CRS while the scene has one.
    """
    return [g for df in _frames(path, crs) for g in df.geometry]


def read_labelled_classes(
    path: Path, crs: str | None, class_names: tuple[str, ...]
) -> list[tuple[Any, int | None]]:
    """:func:`read_labelled` with each feature's class index (``None``: no class).

    The class comes from ``label`` (a class name, any case), else from ``class_id``.
    """
    lookup = {n.lower(): i for i, n in enumerate(class_names)}
    out: list[tuple[Any, int | None]] = []
    for df in _frames(path, crs):
        n = len(df)
        by_name: list[int | None] = [None] * n
        if "label" in df.columns:
            by_name = [
                lookup.get(v.lower()) if isinstance(v, str) else None
                for v in df["label"]
            ]
        ids = (
            df["class_id"].to_numpy(dtype=float, na_value=np.nan)
            if "class_id" in df.columns
            else np.full(n, np.nan)
        )
        classes = [
            c if c is not None else (int(i) if np.isfinite(i) else None)
            for c, i in zip(by_name, ids, strict=True)
        ]
        out.extend(zip(df.geometry, classes, strict=True))
    return out


def transformer(src: str | None, dst: str | None) -> Transformer | None:
    """An ``always_xy`` transformer from ``src`` to ``dst``; ``None`` if there is
    nothing to do (either is unknown, or they are equal)."""
    if (
        src is None
        or dst is None
        or CRS.from_user_input(src) == CRS.from_user_input(dst)
    ):
        return None
    return Transformer.from_crs(src, dst, always_xy=True)


def to_crs(geom: Any, src: str | None, dst: str | None) -> Any:
    """``geom`` moved from ``src`` to ``dst`` (unchanged if either is unknown or equal)."""
    tr = transformer(src, dst)
    if tr is None:
        return geom
    return shapely.transform(geom, tr.transform, interleaved=False)
