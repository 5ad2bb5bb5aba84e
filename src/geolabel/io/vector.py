"""Vector outputs: GeoPackage 1.2 layers written atomically and reproducibly.

pyogrio's GDAL writes GeoPackage 1.4 by default, which QGIS 3.22 and GDAL 3.6's
validator reject, so every layer is written with ``VERSION=1.2``. ``OGR_CURRENT_DATE``
pins the timestamps GDAL stores, so the same features give the same bytes.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
from pyogrio.errors import DataSourceError

from geolabel.errors import innermost_cause
from geolabel.io._quiet import pixel_space_ok
from geolabel.io.disk import disk_problem, prepare_output
from geolabel.io.raster import atomic_replace
from geolabel.io.tempnames import drop_dead_partials, partial_path

__all__ = ["FIXED_DATE", "GpkgWriter", "replace_layer", "write_gpkg_layer"]

#: Timestamp written into gpkg_contents so outputs are byte-reproducible (with the
#: milliseconds GeoPackage requires: GDAL 3.6's validate_gpkg.py rejects it without).
FIXED_DATE = "2000-01-01T00:00:00.000Z"


def write_gpkg_layer(gdf: gpd.GeoDataFrame, path: Path, layer: str, **kw: Any) -> None:
    """``pyogrio.write_dataframe`` as every GeoPackage here is written: GPKG 1.2, the
    fixed timestamp (same features, same bytes), and no "no CRS" warning for a
    pixel-space layer (written so by choice). ``kw``: further pyogrio options."""
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    with pixel_space_ok(gdf.crs is None):
        pyogrio.write_dataframe(
            gdf,
            path,
            layer=layer,
            driver="GPKG",
            dataset_options={"VERSION": "1.2"},
            **kw,
        )


class GpkgWriter:
    """Append layers/batches to ``NAME.partial.gpkg``; :meth:`close` renames it in place.

    Args:
        path: final ``.gpkg`` path.
        crs: CRS (WKT) of every layer (``None`` for pixel space).
    """

    def __init__(self, path: Path, crs: str | None) -> None:
        """Start a fresh partial file."""
        self.path = path
        self.tmp = partial_path(path, ".partial.gpkg")  # per process
        drop_dead_partials(path, ".partial.gpkg")
        self._drop()
        self.crs = crs
        self._layers: set[str] = set()
        self._empty: dict[str, str] = {}

    def write(
        self,
        layer: str,
        records: Iterable[dict[str, Any]],
        geometries: list[Any],
        *,
        geometry_type: str = "MultiPolygon",
    ) -> int:
        """Append features to ``layer`` (created on first write); returns the count."""
        recs = list(records)
        if not recs:  # an empty first write would create the layer without its fields
            self._empty.setdefault(layer, geometry_type)
            return 0
        gdf = gpd.GeoDataFrame(recs, geometry=geometries, crs=self.crs)
        write_gpkg_layer(
            gdf,
            self.tmp,
            layer,
            append=layer in self._layers,
            promote_to_multi=geometry_type.startswith("Multi"),
            geometry_type=geometry_type,
        )
        self._layers.add(layer)
        return len(recs)

    def close(self) -> Path:
        """Publish the file under its final name."""
        for layer, gtype in sorted(self._empty.items()):  # layers that got no feature
            if layer in self._layers:
                continue
            write_gpkg_layer(
                gpd.GeoDataFrame([], geometry=[], crs=self.crs),
                self.tmp,
                layer,
                append=bool(self._layers),
                promote_to_multi=gtype.startswith("Multi"),
                geometry_type=gtype,
            )
            self._layers.add(layer)
        atomic_replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        self._drop()

    def _drop(self) -> None:
        # A run killed mid-transaction leaves SQLite's hot journal beside the partial
        # file; left in place it would be rolled back into the next partial file.
        for suffix in ("", "-journal", "-wal", "-shm"):
            self.tmp.with_name(self.tmp.name + suffix).unlink(missing_ok=True)


def replace_layer(path: Path, layer: str, gdf: gpd.GeoDataFrame) -> None:
    """Write ``layer`` (replacing one of that name) into a copy of the GeoPackage
    ``path`` (or a new GPKG 1.2), then rename the copy over ``path``: the file's other
    layers are kept, and a crash leaves the old file whole. A missing folder is
    created.

    Raises:
        OSError: the folder cannot be made or written (the message names ``path``).
    """
    prepare_output(path)
    tmp = path.with_name(f".{path.stem}.partial.gpkg")
    tmp.unlink(missing_ok=True)
    try:
        if path.exists():
            shutil.copy2(path, tmp)
        write_gpkg_layer(
            gdf, tmp, layer, promote_to_multi=True, layer_options={"OVERWRITE": "YES"}
        )
        os.replace(tmp, path)
    except DataSourceError as err:  # SQLite cannot create the file: say why
        why = disk_problem(path.parent) or innermost_cause(err)
        raise OSError(errno.EIO, f"cannot write: {why}", str(path)) from err
    finally:
        tmp.unlink(missing_ok=True)
