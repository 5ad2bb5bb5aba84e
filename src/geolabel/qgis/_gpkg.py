"""Default QGIS styles embedded in a GeoPackage's ``layer_styles`` table.

QGIS opens a GeoPackage layer with the row of ``layer_styles`` that names the layer and
has ``useAsDefault`` set. The table is written through GDAL (pyogrio) as an
``attributes`` table, so it is registered in ``gpkg_contents`` the way GDAL's GeoPackage
validator expects, and the file stays GeoPackage 1.2. Columns follow the schema QGIS
creates itself (``id``, ``f_table_catalog`` … ``update_time``).

Styles are chosen from the layer's name and fields, so they work for whichever layers
a run produced:

* a ``class_name`` field: categorised by class (the model's colours), score labels,
  the ``background`` class listed but not drawn;
* ``next_to_label`` or a ``rank`` field: graduated by rank (rank 1 darkest red);
* the tile layer ``tiles`` (its ``mean`` uncertainty) or a field named like
  ``*uncert*``: graduated by uncertainty.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio

from geolabel.io.raster import atomic_replace
from geolabel.io.vector import FIXED_DATE
from geolabel.qgis._qml import (
    Category,
    Range,
    categorized_renderer,
    graduated_renderer,
    qml_document,
    ramp_color,
    score_labeling,
)
from geolabel.qgis._raster import is_background
from geolabel.qgis._review import (
    UNCERTAIN_BELOW,
    review_form,
    score_band_renderer,
    show_only,
)

__all__ = ["STYLE_NAME", "LayerStyle", "embed_styles", "layer_styles"]

logger = logging.getLogger(__name__)

#: ``styleName`` of the rows geolabel writes (replaced when styling again).
STYLE_NAME = "geolabel"

#: Colours per class name, ``(r, g, b)``.
ClassColours = dict[str, tuple[int, int, int]]


@dataclass(frozen=True, slots=True)
class LayerStyle:
    """A layer's default style: its renderer kind and the QML elements."""

    layer: str
    geometry_column: str
    renderer: str  # "categorizedSymbol" | "graduatedSymbol"
    field: str
    elements: tuple[ET.Element, ...]
    labels: bool

    @property
    def qml(self) -> str:
        """The style as a ``.qml`` document."""
        return qml_document(self.elements, labels=self.labels)


def _geometry_kind(geometry_type: str | None) -> str:
    g = (geometry_type or "").lower()
    if "point" in g:
        return "point"
    if "line" in g:
        return "line"
    return "polygon"


def _values(path: Path, layer: str, field: str) -> np.ndarray:
    df = pyogrio.read_dataframe(path, layer=layer, columns=[field], read_geometry=False)
    return np.asarray(df[field].to_numpy())


def _ranges(
    vals: np.ndarray, *, ramp: str, n: int, integer: bool, reverse: bool
) -> list[Range]:
    vals = vals[np.isfinite(vals.astype("float64"))].astype("float64")
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    if integer:
        n = max(1, min(n, int(hi - lo) + 1))
    edges = np.linspace(lo, hi, n + 1)
    out = []
    for i in range(n):
        a, b = float(edges[i]), float(edges[i + 1])
        if integer:
            a = float(np.ceil(a)) if i else lo
            b = float(np.floor(b)) if i < n - 1 else hi
        t = i / max(1, n - 1)
        label = (
            (f"{a:.0f}" if a == b else f"{a:.0f} - {b:.0f}")
            if integer
            else f"{a:.3g} - {b:.3g}"
        )
        out.append(Range(a, b, label, ramp_color(ramp, 1 - t if reverse else t)))
    return out


def layer_styles(
    path: Path, *, class_colours: ClassColours | None = None
) -> list[LayerStyle]:
    """The default style of each layer of ``path`` that geolabel knows how to style.

    Args:
        path: a GeoPackage.
        class_colours: colours of the model's classes by name (other class names found
            in the data get colours from a ramp).
    """
    styles = []
    for name, gtype in pyogrio.list_layers(path):
        if name == "layer_styles" or gtype is None:
            continue
        info = pyogrio.read_info(path, layer=name)
        fields = [str(f) for f in info["fields"]]
        geom_col = str(info.get("geometry_name") or "geom")
        kind = _geometry_kind(gtype)
        style = _style_for(path, name, fields, kind, geom_col, class_colours or {})
        if style is None:
            logger.debug("%s: layer %s has no geolabel style", path, name)
        else:
            styles.append(style)
    return styles


def _class_table(
    path: Path, layer: str, fields: Sequence[str], colours: ClassColours
) -> list[tuple[str, str, int]]:
    """``(label, class name, class id)`` per class: the model's, then the layer's own.

    The model's classes are ``colours`` in index order (labels default to the names);
    the layer adds the label each class was suggested under (a spec ``label_map``).
    """
    cols = [c for c in ("label", "class_name", "class_id") if c in fields]
    rows: dict[str, tuple[str, str, int]] = {}
    if {"label", "class_name", "class_id"} <= set(cols):
        df = pyogrio.read_dataframe(
            path, layer=layer, columns=cols, read_geometry=False
        )
        for lab, cname, cid in df[cols].drop_duplicates().itertuples(index=False):
            if lab is not None and cname is not None and cid == cid:
                rows.setdefault(str(lab).lower(), (str(lab), str(cname), int(cid)))
    for i, cname in enumerate(colours):
        rows.setdefault(cname.lower(), (cname, cname, i))
    return sorted(rows.values(), key=lambda r: (r[2], r[0]))


def _style_for(
    path: Path,
    name: str,
    fields: Sequence[str],
    kind: str,
    geom_col: str,
    colours: ClassColours,
) -> LayerStyle | None:
    if name == "next_to_label" or "rank" in fields:
        ranges = _ranges(
            _values(path, name, "rank"), ramp="ylorrd", n=5, integer=True, reverse=True
        )
        rend = graduated_renderer(
            "rank", ranges, geometry=kind, ramp="ylorrd", precision=0, fill_alpha=70
        )
        lab = score_labeling('"rank"', geometry=kind)
        # the queue is labelled by picking a class for `label` (a drop-down of the classes)
        form = review_form(
            [f for f in fields if f == "label"],
            [(n, n, i) for i, n in enumerate(colours)],
        )
        return LayerStyle(
            name, geom_col, "graduatedSymbol", "rank", (rend, lab, *form), True
        )
    if "class_name" in fields:
        seen = sorted(
            {str(v) for v in _values(path, name, "class_name") if v is not None}
        )
        names = list(colours) + [n for n in seen if n not in colours]
        rgbas = [
            (
                n,
                (
                    *(
                        colours.get(n)
                        or ramp_color("viridis", i / max(1, len(names) - 1))[:3]
                    ),
                    255,
                ),
            )
            for i, n in enumerate(names)
        ]
        detections = name == "detections"
        if detections:
            rend = score_band_renderer(rgbas, geometry=kind)
        else:
            cats = [Category(n, n, c, render=not is_background(n)) for n, c in rgbas]
            rend = categorized_renderer("class_name", cats, geometry=kind, fill_alpha=0)
        elements: tuple[ET.Element, ...] = (rend,)
        if "score" in fields:
            band = '"score" >= 0.3 AND ' if detections else ""
            lab = score_labeling('format_number("score", 2)', geometry=kind)
            elements += (show_only(lab, f'{band}"score" < {UNCERTAIN_BELOW}'),)
        elements += tuple(
            review_form(fields, _class_table(path, name, fields, colours))
        )
        return LayerStyle(
            name,
            geom_col,
            "RuleRenderer" if detections else "categorizedSymbol",
            "score" if detections else "class_name",
            elements,
            "score" in fields,
        )
    unc = [f for f in fields if "uncert" in f.lower()]
    if name == "tiles" and "mean" in fields:
        unc = ["mean"]  # the tile layer: mean of the run's uncertainty measure per tile
    if unc:
        field = "uncertainty" if "uncertainty" in unc else unc[0]
        ranges = _ranges(
            _values(path, name, field), ramp="ylorrd", n=5, integer=False, reverse=False
        )
        rend = graduated_renderer(
            field, ranges, geometry=kind, ramp="ylorrd", precision=4, fill_alpha=90
        )
        return LayerStyle(name, geom_col, "graduatedSymbol", field, (rend,), False)
    return None


def embed_styles(path: Path, styles: Sequence[LayerStyle]) -> Path:
    """Write ``styles`` as the default rows of ``path``'s ``layer_styles`` table.

    Rows geolabel wrote before (``styleName`` :data:`STYLE_NAME`) are replaced, rows from
    others (a user's own QGIS styles) are kept but no longer default for these layers.
    The file is changed on a copy that is renamed into place.
    """
    if not styles:
        return path
    tmp = path.with_name(path.stem + ".styling.gpkg")
    shutil.copyfile(path, tmp)
    try:
        has_table = "layer_styles" in {str(n) for n, _ in pyogrio.list_layers(tmp)}
        if has_table:
            with sqlite3.connect(tmp) as con:
                con.execute(
                    "DELETE FROM layer_styles WHERE styleName = ?", (STYLE_NAME,)
                )
                con.executemany(
                    "UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?",
                    [(s.layer,) for s in styles],
                )
            con.close()
        rows = pd.DataFrame(
            {
                "f_table_catalog": ["" for _ in styles],
                "f_table_schema": ["" for _ in styles],
                "f_table_name": [s.layer for s in styles],
                "f_geometry_column": [s.geometry_column for s in styles],
                "styleName": [STYLE_NAME for _ in styles],
                "styleQML": [s.qml for s in styles],
                "styleSLD": ["" for _ in styles],
                "useAsDefault": [True for _ in styles],
                "description": [f"geolabel: {s.renderer} by {s.field}" for s in styles],
                "owner": ["geolabel" for _ in styles],
                "ui": [None for _ in styles],
                "update_time": [pd.Timestamp(FIXED_DATE) for _ in styles],
            }
        )
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
        pyogrio.write_dataframe(
            rows,
            tmp,
            layer="layer_styles",
            driver="GPKG",
            append=has_table,
            layer_options={"FID": "id"},
        )
        # GPKG DATETIME is YYYY-MM-DDTHH:MM:SS.SSSZ; newer GDAL drops zero milliseconds,
        # which GDAL 3.6 (QGIS 3.22's) reads with a "non-conformant content" warning.
        with sqlite3.connect(tmp) as con:
            con.execute(
                "UPDATE layer_styles SET update_time = ? WHERE styleName = ?",
                (FIXED_DATE, STYLE_NAME),
            )
        con.close()
        atomic_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
