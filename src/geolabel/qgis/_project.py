"""A QGIS project (``.qgs``) per run: every scene with its outputs, grouped and styled.

The project is plain XML in the schema QGIS 3.22 reads. Paths are stored relative to
the project file (``./scene/x_mask.tif``), so a run folder can be moved or shared. Each
scene is a group holding its vector layers on top, then the class mask (drawn at 70 %
over the image), the continuous rasters (off by default) and the scene image.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyogrio
import rasterio
from rasterio.crs import CRS as RioCRS

from geolabel.qgis._gpkg import ClassColours, layer_styles
from geolabel.qgis._qml import QGIS_VERSION
from geolabel.qgis._raster import raster_style, scene_style, write_text_atomic

__all__ = ["ProjectLayer", "SceneGroup", "build_groups", "write_project"]

#: Mask opacity inside the project (the image shows through).
MASK_OPACITY = 0.7
#: Roles shown when the project opens; the others are listed but switched off.
VISIBLE = {"scene", "mask", "vectors", "detections", "next_to_label"}
#: Draw order inside a group, top first (unknown roles go between rasters and the image).
ORDER = (
    "next_to_label",
    "vectors",
    "detections",
    "tiles",
    "mask",
    "uncertainty",
    "confidence",
    "probabilities",
)


@dataclass(slots=True)
class ProjectLayer:
    """One layer of the project: a raster file or one layer of a GeoPackage."""

    role: str
    name: str
    path: Path | str
    kind: str  # "raster" | "vector"
    elements: list[ET.Element]
    layer: str | None = None  # GeoPackage layer
    geometry: str | None = None
    labels: bool = False
    visible: bool = True


@dataclass(slots=True)
class SceneGroup:
    """The layers of one scene (or of the run, for run-level outputs)."""

    name: str
    layers: list[ProjectLayer] = field(default_factory=list)


def _order(role: str) -> int:
    return ORDER.index(role) if role in ORDER else len(ORDER) - 3


def build_groups(
    scenes: Sequence[tuple[str, str, dict[str, str], Sequence[int] | None]],
    *,
    class_names: Sequence[str],
    class_colours: ClassColours,
    run_vectors: Sequence[Path] = (),
) -> list[SceneGroup]:
    """Project groups from each scene's ``(name, scene path, role -> output, bands)``.

    Rasters (``.tif``) and every styled layer of each GeoPackage become layers; other
    outputs (styles, stores) are skipped. ``run_vectors`` (``next_to_label.gpkg``) go
    into a first group named ``run``.
    """
    groups = []
    if run_vectors:
        g = SceneGroup("run")
        for p in run_vectors:
            g.layers.extend(_vector_layers("run", p, "", class_colours))
        groups.append(g)
    for name, scene_path, outputs, bands in scenes:
        g = SceneGroup(name)
        for role, out in outputs.items():
            p = Path(out)
            if ":" in role or not p.is_file():
                continue
            if p.suffix == ".tif":
                els = raster_style(p, role, class_names=class_names)
                if role == "mask":
                    _set_opacity(els, MASK_OPACITY)
                g.layers.append(
                    ProjectLayer(
                        role,
                        f"{name} {role}",
                        p,
                        "raster",
                        els,
                        visible=role in VISIBLE,
                    )
                )
            elif p.suffix == ".gpkg":
                g.layers.extend(_vector_layers(role, p, name, class_colours))
        g.layers.sort(key=lambda lyr: _order(lyr.role))
        base = scene_path.split("#", 1)[0]
        if "://" in scene_path or base.lower().endswith(".json"):
            # a URL or a STAC item: not read again for a preview layer
            groups.append(g)
            continue
        g.layers.append(
            ProjectLayer(
                "scene",
                f"{name} image",
                scene_path,
                "raster",
                scene_style(scene_path, bands),
            )
        )
        groups.append(g)
    return groups


def _vector_layers(
    role: str, path: Path, prefix: str, colours: ClassColours
) -> list[ProjectLayer]:
    out = []
    gtypes = {str(n): g for n, g in pyogrio.list_layers(path)}
    for st in layer_styles(path, class_colours=colours):
        r = st.layer if st.layer in ORDER else role
        out.append(
            ProjectLayer(
                r,
                f"{prefix} {st.layer}".strip(),
                path,
                "vector",
                list(st.elements),
                layer=st.layer,
                geometry=gtypes.get(st.layer),
                labels=st.labels,
                visible=r in VISIBLE,
            )
        )
    return out


def _set_opacity(elements: list[ET.Element], opacity: float) -> None:
    for el in elements:
        for r in el.iter("rasterrenderer"):
            r.set("opacity", f"{opacity:g}")


def _srs(parent: ET.Element, crs: RioCRS | None) -> None:
    """A ``spatialrefsys`` from GDAL's WKT of ``crs`` (what QGIS's GDAL/OGR providers see)."""
    srs = ET.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    if crs is None:
        return
    ET.SubElement(srs, "wkt").text = crs.to_wkt()
    epsg = crs.to_epsg()
    ET.SubElement(srs, "authid").text = f"EPSG:{epsg}" if epsg else ""
    ET.SubElement(srs, "description").text = f"EPSG:{epsg}" if epsg else "scene CRS"
    ET.SubElement(srs, "geographicflag").text = "true" if crs.is_geographic else "false"


def _extent(parent: ET.Element, tag: str, b: tuple[float, float, float, float]) -> None:
    ext = ET.SubElement(parent, tag)
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), b, strict=True):
        ET.SubElement(ext, k).text = repr(float(v))


def _source(path: Path | str, project_dir: Path) -> str:
    s = str(path)
    if s.startswith(("/vsi", "http://", "https://")):
        return s
    p = Path(s).resolve()
    try:
        rel = os.path.relpath(p, project_dir.resolve())
    except ValueError:  # another drive
        return str(p)
    return rel if rel.startswith("..") else "./" + rel


def _layer_id(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", name)
    lid, i = base, 1
    while lid in used:
        i += 1
        lid = f"{base}_{i}"
    used.add(lid)
    return lid


def write_project(path: Path, groups: Sequence[SceneGroup], *, title: str) -> Path:
    """Write the ``.qgs`` project for ``groups`` to ``path`` (atomically).

    The project CRS and the initial view are those of the first scene image.
    """
    crs: RioCRS | None = None
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    for g in groups:
        for lyr in g.layers:
            if lyr.role == "scene":
                with rasterio.open(lyr.path) as ds:
                    crs = ds.crs
                    b = ds.bounds
                    bounds = (b.left, b.bottom, b.right, b.top)
                break
        if crs is not None:
            break
    pdir = path.parent
    root = ET.Element("qgis", projectname=title, version=QGIS_VERSION)
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title
    _srs(ET.SubElement(root, "projectCrs"), crs)
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    layers_el = ET.Element("projectlayers")
    order_el = ET.Element("layerorder")
    used: set[str] = set()
    for g in groups:
        tg = ET.SubElement(
            tree, "layer-tree-group", name=g.name, checked="Qt::Checked", expanded="1"
        )
        ET.SubElement(tg, "customproperties")
        for lyr in g.layers:
            lid = _layer_id(lyr.name, used)
            src = _source(lyr.path, pdir)
            if lyr.layer is not None:
                src += f"|layername={lyr.layer}"
            provider = "gdal" if lyr.kind == "raster" else "ogr"
            tl = ET.SubElement(
                tg,
                "layer-tree-layer",
                id=lid,
                name=lyr.name,
                source=src,
                providerKey=provider,
                expanded="0",
                checked="Qt::Checked" if lyr.visible else "Qt::Unchecked",
            )
            ET.SubElement(tl, "customproperties")
            ET.SubElement(order_el, "layer", id=lid)
            layers_el.append(_maplayer(lyr, lid, src, provider))
    canvas = ET.SubElement(
        root, "mapcanvas", name="theMapCanvas", annotationsVisible="1"
    )
    ET.SubElement(canvas, "units").text = (
        "degrees" if crs is not None and crs.is_geographic else "meters"
    )
    _extent(canvas, "extent", bounds)
    ET.SubElement(canvas, "rotation").text = "0"
    _srs(ET.SubElement(canvas, "destinationsrs"), crs)
    root.append(layers_el)
    root.append(order_el)
    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    # QGIS 3.22 reads <projectCrs> only when on-the-fly projection is enabled
    srs_props = ET.SubElement(props, "SpatialRefSys")
    ET.SubElement(srs_props, "ProjectionsEnabled", type="int").text = "1"
    ET.indent(root)
    doc = (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        + ET.tostring(root, encoding="unicode")
        + "\n"
    )
    return write_text_atomic(path, doc)


def _maplayer(lyr: ProjectLayer, lid: str, src: str, provider: str) -> ET.Element:
    attrs = {
        "type": lyr.kind,
        "hasScaleBasedVisibilityFlag": "0",
        "minScale": "1e+08",
        "maxScale": "0",
        "styleCategories": "AllStyleCategories",
        "refreshOnNotifyEnabled": "0",
        "autoRefreshEnabled": "0",
    }
    if lyr.kind == "vector":
        g = (lyr.geometry or "Polygon").replace("Multi", "")
        attrs.update(
            geometry=g,
            wkbType=lyr.geometry or "MultiPolygon",
            labelsEnabled="1" if lyr.labels else "0",
            simplifyDrawingHints="1",
            simplifyDrawingTol="1",
            simplifyAlgorithm="0",
            simplifyLocal="1",
            simplifyMaxScale="1",
            readOnly="0",
        )
    ml = ET.Element("maplayer", attrs)
    ET.SubElement(ml, "id").text = lid
    ET.SubElement(ml, "datasource").text = src
    ET.SubElement(ml, "layername").text = lyr.name
    crs = _layer_crs(lyr)
    _srs(ET.SubElement(ml, "srs"), crs)
    prov = ET.SubElement(ml, "provider")
    prov.text = provider
    if provider == "ogr":
        prov.set("encoding", "UTF-8")
    ml.extend(lyr.elements)
    if lyr.kind == "vector":
        ET.SubElement(ml, "blendMode").text = "0"
        ET.SubElement(ml, "featureBlendMode").text = "0"
        ET.SubElement(ml, "layerOpacity").text = "1"
    return ml


def _layer_crs(lyr: ProjectLayer) -> RioCRS | None:
    if lyr.kind == "raster":
        with rasterio.open(lyr.path) as ds:
            return ds.crs
    info = pyogrio.read_info(lyr.path, layer=lyr.layer)
    return RioCRS.from_user_input(info["crs"]) if info.get("crs") else None
